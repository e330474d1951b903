// The inbox stays current without a reload: every few seconds it asks the server for the list (and the
// open conversation) with If-None-Match. While nothing changed the answer is an empty 304; otherwise the
// HTML fragment replaces the old one. Without JavaScript the page still works, one reload at a time.
(function () {
  "use strict";
  var live = document.getElementById("inbox-live");
  var source = document.querySelector("select[data-autosubmit]");
  if (source) {
    source.addEventListener("change", function () { source.form.submit(); });
  }
  if (!live || !window.fetch) return;
  var url = live.getAttribute("data-live-url");
  var every = Math.max(1, parseInt(live.getAttribute("data-poll-seconds"), 10) || 4) * 1000;
  var etag = null;
  var failures = 0;

  function moveThread() {
    var template = live.querySelector("template[data-thread]");
    var thread = document.getElementById("inbox-thread-live");
    if (!template) return;
    if (thread) {
      var stuck = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 40;
      thread.innerHTML = template.innerHTML;
      if (stuck) thread.scrollTop = thread.scrollHeight;
    }
    template.parentNode.removeChild(template);
  }

  function schedule() {
    window.setTimeout(poll, every * Math.min(8, Math.pow(2, failures)));
  }

  function poll() {
    if (document.hidden) { schedule(); return; }
    var headers = { "X-Requested-With": "fetch" };
    if (etag) headers["If-None-Match"] = etag;
    fetch(url, { headers: headers, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 304) { failures = 0; return null; }
        if (!response.ok) throw new Error("inbox poll answered " + response.status);
        etag = response.headers.get("ETag");
        failures = 0;
        return response.text();
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          live.innerHTML = html;
          moveThread();
        }
      })
      .catch(function () { failures += 1; })
      .then(schedule);
  }

  moveThread();
  document.addEventListener("visibilitychange", function () { if (!document.hidden) poll(); });
  schedule();
})();
