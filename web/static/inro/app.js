// Progressive enhancement only: every page works without it.
// The workspace switcher (<details>) closes on Escape and on a click outside, like a menu should.
(function () {
  "use strict";
  var switcher = document.querySelector("details.switcher");
  if (!switcher) return;
  document.addEventListener("click", function (event) {
    if (switcher.open && !switcher.contains(event.target)) switcher.open = false;
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && switcher.open) {
      switcher.open = false;
      switcher.querySelector("summary").focus();
    }
  });
})();

// The forms of the automation builders show only the inputs of the chosen trigger and of each step's
// type (without this script every input shows, and the server ignores those that do not apply).
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  function follow(select, scope) {
    function update() {
      scope.querySelectorAll("[data-for]").forEach(function (element) {
        var wanted = element.getAttribute("data-for").split(" ");
        element.classList.toggle("shown", wanted.indexOf(select.value) !== -1);
      });
    }
    select.addEventListener("change", update);
    update();
  }
  document.querySelectorAll(".step-row").forEach(function (row) {
    var select = row.querySelector("select[name$='-type']");
    if (select) follow(select, row);
  });
  var trigger = document.querySelector(".trigger-fields");
  var triggerSelect = document.getElementById("id_trigger_type");
  if (trigger && triggerSelect) follow(triggerSelect, trigger);
})();

// A region that scrolls (a wide table on a phone, a long conversation) must be reachable with the
// keyboard: one that holds nothing focusable becomes focusable itself, named after its section.
(function () {
  "use strict";
  var FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";
  function nameFor(element) {
    var section = element.closest("section, [aria-label]");
    var heading = section && section.querySelector("h1, h2, h3");
    return (heading && heading.textContent.trim()) || (section && section.getAttribute("aria-label")) || "Scrollable content";
  }
  function check() {
    document.querySelectorAll(".table-wrap, .conversation, .scrolls").forEach(function (element) {
      var scrolls = element.scrollWidth > element.clientWidth + 1 || element.scrollHeight > element.clientHeight + 1;
      if (scrolls && !element.hasAttribute("tabindex") && !element.querySelector(FOCUSABLE)) {
        element.setAttribute("tabindex", "0");
        // A list stays a list (its items need it); a plain box becomes a named region.
        if (element.tagName === "DIV" && !element.hasAttribute("role")) element.setAttribute("role", "region");
        if (!element.hasAttribute("aria-label")) element.setAttribute("aria-label", nameFor(element));
      }
    });
  }
  check();
  window.addEventListener("resize", check);
})();
