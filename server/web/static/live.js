// Live updates without a reload: listen to the server's event stream and, when an
// event touches what this page lists, fetch the page's own fragment again and swap
// it in. Pages opt in with data-live="TYPE-PREFIXES" and data-fragment="URL" on the
// element to refresh; a past (as-of) view never does.
(function () {
  "use strict";
  var target = document.querySelector("[data-live]");
  if (!target || !window.EventSource) return;
  var prefixes = target.dataset.live.split(",");
  var fragment = target.dataset.fragment;
  var status = document.getElementById("live-status");
  var pending = false, busy = false;
  function refresh() {
    if (busy) { pending = true; return; }
    busy = true;
    fetch(fragment, { headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html !== null) target.innerHTML = html; })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (pending) { pending = false; refresh(); }
      });
  }
  var from = target.dataset.from || "";
  var url = target.dataset.stream + (from ? "?from=" + encodeURIComponent(from) : "");
  var source = new EventSource(url);
  source.onopen = function () { if (status) status.textContent = "live"; };
  source.onerror = function () { if (status) status.textContent = "reconnecting\u2026"; };
  source.onmessage = function (message) { handle(message.data); };
  function handle(data) {
    var type = "";
    try { type = JSON.parse(data).type || ""; } catch (e) { return; }
    for (var i = 0; i < prefixes.length; i++) {
      if (type.indexOf(prefixes[i]) === 0) { refresh(); return; }
    }
  }
  window.addEventListener("pagehide", function () { source.close(); });
})();
