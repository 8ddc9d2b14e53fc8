// Pan and zoom for the lineage graph: wheel zooms around the pointer, drag pans,
// and the keyboard does both (+ - 0 f and the arrow keys) when the frame has focus.
// It only changes the SVG's viewBox; the graph itself is drawn by the server.
(function () {
  "use strict";
  function setup(frame) {
    var svg = frame.querySelector("svg[data-panzoom]");
    if (!svg) return;
    var full = svg.viewBox.baseVal;
    var home = { x: full.x, y: full.y, w: full.width, h: full.height };
    // Below this scale the labels are too small to read: start there, not at "fit".
    var LEGIBLE = 0.8;
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    var start, view;
    // A whole graph that fits at this scale or more opens fitted (labels stay
    // readable); never enlarged past the most, so a small graph is not blown up.
    var FIT_LEGIBLE = 0.7, MOST = 1.25;
    function initial() {
      var width = svg.getBoundingClientRect().width || 1;
      var most = Math.max(Math.min(window.innerHeight * 0.7, 720), 240);
      var fits = Math.min(width / home.w, most / home.h);
      var scale = fits >= FIT_LEGIBLE ? Math.min(fits, MOST) : Math.max(width / home.w, LEGIBLE);
      var height = Math.min(Math.max(home.h * scale, 220), most);
      svg.style.height = height + "px";
      var w = width / scale, h = height / scale;
      if (fits >= FIT_LEGIBLE) {
        return { x: home.x - (w - home.w) / 2, y: home.y - (h - home.h) / 2, w: w, h: h };
      }
      // Centre on the page's subject (the focused node), else start from the sources.
      var focus = svg.querySelector(".node.focus");
      var cx = home.x + w / 2, cy = home.y + home.h / 2;
      if (focus) {
        // The node's drawing sits at its own origin; its transform places it.
        var shift = focus.transform.baseVal.consolidate();
        var box = focus.querySelector("rect").getBBox();
        cx = (shift ? shift.matrix.e : 0) + box.x + box.width / 2;
        cy = (shift ? shift.matrix.f : 0) + box.y + box.height / 2;
      }
      // Start from the sources when the subject is in view from there: nothing is
      // cut at the left; else centre the subject.
      var x;
      if (w >= home.w) x = home.x - (w - home.w) / 2;
      else if (!focus || cx + 110 - home.x <= w) x = home.x;
      else x = Math.min(Math.max(cx - w / 2, home.x), home.x + home.w - w);
      var y = h >= home.h ? home.y - (h - home.h) / 2 : Math.min(Math.max(cy - h / 2, home.y), home.y + home.h - h);
      return { x: x, y: y, w: w, h: h };
    }
    function fit() {
      var box = svg.getBoundingClientRect();
      var ratio = (box.height || 1) / (box.width || 1);
      var w = Math.max(home.w, home.h / ratio), h = w * ratio;
      return { x: home.x - (w - home.w) / 2, y: home.y - (h - home.h) / 2, w: w, h: h };
    }
    function apply() {
      svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].map(function (v) { return Math.round(v * 10) / 10; }).join(" "));
    }
    // Say so when the opening view shows only part of the graph (it is too big to
    // fit at a readable scale), so no one takes the part for the whole.
    var hint = frame.querySelector("[data-graph-hint]");
    function tell() {
      if (!hint) return;
      var part = start.x > home.x + 1 || start.y > home.y + 1 ||
        start.x + start.w < home.x + home.w - 1 || start.y + start.h < home.y + home.h - 1;
      hint.textContent = part ? "(part of the graph: Fit all shows the whole)" : "";
    }
    start = initial();
    view = Object.assign({}, start);
    apply();
    tell();
    window.addEventListener("resize", function () { start = initial(); view = Object.assign({}, start); apply(); tell(); });
    function zoom(factor, cx, cy) {
      var w = Math.min(Math.max(view.w * factor, 80), Math.max(home.w, home.h) * 4);
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
      else if (name === "0") { view = Object.assign({}, start); apply(); }
      else if (name === "fit" || name === "f") { view = fit(); apply(); }
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
