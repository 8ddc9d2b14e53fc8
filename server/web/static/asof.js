// The header's time-travel control: the slider and the text box name the same
// position; moving the slider fills the box, and the form submits as a GET so the
// URL (?as_of=...) can be shared.
(function () {
  "use strict";
  var slider = document.getElementById("as-of-slider");
  var box = document.getElementById("as-of");
  if (!slider || !box) return;
  slider.addEventListener("input", function () { box.value = slider.value; });
  slider.addEventListener("change", function () { box.form.requestSubmit(); });
})();
