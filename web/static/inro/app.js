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
