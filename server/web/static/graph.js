// Pan and zoom for the lineage graph: wheel zooms around the pointer, drag pans,
// and the keyboard does both (+ - 0 and the arrow keys) when the frame has focus.
// It only changes the SVG's viewBox; the graph itself is drawn by the server.
(function () {
  "use strict";
  function setup(frame) {
    var svg = frame.querySelector("svg[data-panzoom]");
    if (!svg) return;
    var full = svg.viewBox.baseVal;
    var home = { x: full.x, y: full.y, w: full.width, h: full.height };
    var view = Object.assign({}, home);
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    // As tall as the graph needs at the frame's width, within a band the screen can hold.
    function fitHeight() {
      var width = svg.getBoundingClientRect().width || 1;
      var wanted = (width * home.h) / home.w;
      var most = Math.min(window.innerHeight * 0.7, 720);
      svg.style.height = Math.max(Math.min(wanted, most), 220) + "px";
    }
    fitHeight();
    window.addEventListener("resize", fitHeight);
    function apply() {
      svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
    }
    function zoom(factor, cx, cy) {
      var w = Math.min(Math.max(view.w * factor, 80), home.w * 4);
      var f = w / view.w;
      view.x = cx - (cx - view.x) * f;
      view.y = cy - (cy - view.y) * f;
      view.w = w;
      view.h = view.h * f;
      apply();
    }
    function point(event) {
      var box = svg.getBoundingClientRect();
      return {
        x: view.x + ((event.clientX - box.left) / box.width) * view.w,
        y: view.y + ((event.clientY - box.top) / box.height) * view.h,
      };
    }
    svg.addEventListener("wheel", function (event) {
      event.preventDefault();
      var p = point(event);
      zoom(event.deltaY > 0 ? 1.15 : 1 / 1.15, p.x, p.y);
    }, { passive: false });
    var drag = null;
    svg.addEventListener("pointerdown", function (event) {
      if (event.button !== 0 || event.target.closest("a")) return;
      drag = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y };
      svg.setPointerCapture(event.pointerId);
      svg.classList.add("dragging");
    });
    svg.addEventListener("pointermove", function (event) {
      if (!drag) return;
      var box = svg.getBoundingClientRect();
      var scale = Math.max(view.w / box.width, view.h / box.height);
      view.x = drag.vx - (event.clientX - drag.x) * scale;
      view.y = drag.vy - (event.clientY - drag.y) * scale;
      apply();
    });
    function stop() { drag = null; svg.classList.remove("dragging"); }
    svg.addEventListener("pointerup", stop);
    svg.addEventListener("pointercancel", stop);
    function key(name) {
      var cx = view.x + view.w / 2, cy = view.y + view.h / 2, step = view.w / 8;
      if (name === "+" || name === "=") zoom(1 / 1.25, cx, cy);
      else if (name === "-" || name === "_") zoom(1.25, cx, cy);
      else if (name === "0") { view = Object.assign({}, home); apply(); }
      else if (name === "ArrowLeft") { view.x -= step; apply(); }
      else if (name === "ArrowRight") { view.x += step; apply(); }
      else if (name === "ArrowUp") { view.y -= step; apply(); }
      else if (name === "ArrowDown") { view.y += step; apply(); }
      else return false;
      return true;
    }
    frame.addEventListener("keydown", function (event) {
      if (event.target !== frame) return;  // a focused node link keeps its keys
      if (key(event.key)) event.preventDefault();
    });
    frame.querySelectorAll("button[data-zoom]").forEach(function (button) {
      button.addEventListener("click", function () { key(button.dataset.zoom); });
    });
  }
  document.querySelectorAll("[data-graph-frame]").forEach(setup);
})();
