// Live updates without a reload: listen to the server's event stream and, when an
// event touches what this page lists, fetch the page's own fragment again and swap
// it in. Pages opt in with data-live="TYPE-PREFIXES" and data-fragment="URL" on the
// element to refresh; a past (as-of) view never does. The stream comes from the log
// and the fragment from the views, which follow the log a moment behind: a fragment
// that says (X-Views-Position) it does not include the last event seen is fetched
// again a little later, until it does.
(function () {
  "use strict";
  var target = document.querySelector("[data-live]");
  if (!target || !window.EventSource) return;
  var prefixes = target.dataset.live.split(",");
  var fragment = target.dataset.fragment;
  var status = document.getElementById("live-status");
  var pending = false, busy = false, wanted = 0, retry = null, delay = 250;
  function behind(response) {
    var at = parseInt(response.headers.get("X-Views-Position") || "", 10);
    return !isNaN(at) && at < wanted;
  }
  function refresh() {
    if (busy) { pending = true; return; }
    busy = true;
    if (retry !== null) { clearTimeout(retry); retry = null; }
    var again = false;
    fetch(fragment, { headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) return null;
        again = behind(response);
        return response.text();
      })
      .then(function (html) { if (html !== null) target.innerHTML = html; })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (pending) { pending = false; delay = 250; refresh(); return; }
        if (again) {
          retry = setTimeout(refresh, delay);
          delay = Math.min(delay * 2, 4000);
        } else {
          delay = 250;
        }
      });
  }
  var from = target.dataset.from || "";
  var url = target.dataset.stream + (from ? "?from=" + encodeURIComponent(from) : "");
  var source = new EventSource(url);
  source.onopen = function () { if (status) status.textContent = "live"; };
  source.onerror = function () { if (status) status.textContent = "reconnecting\u2026"; };
  source.onmessage = function (message) { handle(message.data, message.lastEventId); };
  function handle(data, id) {
    var type = "";
    try { type = JSON.parse(data).type || ""; } catch (e) { return; }
    for (var i = 0; i < prefixes.length; i++) {
      if (type.indexOf(prefixes[i]) === 0) {
        var position = parseInt(id, 10);  // the stream's ids are log positions
        if (!isNaN(position) && position > wanted) {
          wanted = position;
          target.dataset.seen = String(position);  // for tests and the curious
        }
        refresh();
        return;
      }
    }
  }
  window.addEventListener("pagehide", function () { source.close(); });
})();
