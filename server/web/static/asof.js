// The header's time-travel control: the slider and the text box name the same
// position; moving the slider fills the box. Letting go of the slider with the
// pointer shows that position at once; from the keyboard, arrows move it and Go
// (or Enter in the box) shows it, so each key press does not load a page. The
// form submits as a GET, so the URL (?as_of=...) can be shared.
(function () {
  "use strict";
  var slider = document.getElementById("as-of-slider");
  var box = document.getElementById("as-of");
  if (!slider || !box) return;
  var pointer = false;
  slider.addEventListener("pointerdown", function () { pointer = true; });
  slider.addEventListener("keydown", function () { pointer = false; });
  slider.addEventListener("input", function () { box.value = slider.value; });
  slider.addEventListener("change", function () {
    if (pointer) box.form.requestSubmit();
  });
})();
