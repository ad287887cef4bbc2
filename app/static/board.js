// Leadboard live board: keeps rows in order as SSE events arrive, shows the connection state,
// and keeps relative times ticking. Everything is driven by htmx and its sse extension; this file
// only adds what htmx cannot know (row order, page size, which event the page saw last).
(function () {
  "use strict";

  var lastEventId = null;
  var LIVE_EVENTS = ["lead", "refresh"];

  function withAfter(url) {
    if (lastEventId === null) return url;
    var u = new URL(url, window.location.href);
    u.searchParams.set("after", lastEventId);
    return u.pathname + u.search;
  }

  function installEventSourceFactory() {
    // htmx's sse extension creates a fresh EventSource after a hard failure, which would forget
    // the last event id; resume from it explicitly so nothing missed is lost.
    htmx.createEventSource = function (url) {
      var source = new EventSource(withAfter(url), { withCredentials: true });
      LIVE_EVENTS.forEach(function (name) {
        source.addEventListener(name, function (ev) {
          if (ev.lastEventId) lastEventId = ev.lastEventId;
        });
      });
      return source;
    };
  }

  function setLive(state) {
    var el = document.getElementById("live-status");
    var banner = document.getElementById("offline-banner");
    if (!el) return;
    el.dataset.state = state;
    el.querySelector(".label").textContent =
      state === "live" ? "Live" : state === "down" ? "Reconnecting…" : "Connecting…";
    if (banner) banner.hidden = state !== "down";
    document.body.dataset.live = state;
  }

  function board() { return document.getElementById("board"); }

  function rowIdFromHtml(html) {
    var m = /<tr[^>]*\sid="(lead-\d+)"/.exec(html);
    return m ? m[1] : null;
  }

  // Before htmx inserts a row: drop its old copy, so an update moves the row instead of doubling it.
  document.addEventListener("htmx:sseBeforeMessage", function (evt) {
    var ev = evt.detail;
    if (!ev || ev.type !== "lead") return;
    var id = rowIdFromHtml(ev.data || "");
    var b = board();
    var existing = id && document.getElementById(id);
    if (b && b.dataset.firstPage !== "true" && !existing) {
      // Deeper pages only update rows they show; new activity belongs to page one.
      evt.preventDefault();
      return;
    }
    if (existing) existing.remove();
    var empty = document.getElementById("empty-state");
    if (empty) empty.remove();
  });

  // After the swap: put the row where the sort puts it, keep the page size, flash it.
  document.addEventListener("htmx:sseMessage", function (evt) {
    var ev = evt.detail;
    if (!ev || ev.type !== "lead") return;
    var id = rowIdFromHtml(ev.data || "");
    var row = id && document.getElementById(id);
    var tbody = document.getElementById("lead-rows");
    if (!row || !tbody) return;
    var key = row.dataset.sort || "";
    var next = row.nextElementSibling;
    while (next && (next.dataset.sort || "") > key) {
      next = next.nextElementSibling;
    }
    if (next !== row.nextElementSibling) tbody.insertBefore(row, next);
    var size = parseInt((board() || {}).dataset ? board().dataset.pageSize : "50", 10) || 50;
    while (tbody.rows.length > size) tbody.deleteRow(tbody.rows.length - 1);
    row.classList.remove("flash");
    void row.offsetWidth;
    row.classList.add("flash");
    tick(row);
  });

  document.addEventListener("htmx:sseOpen", function () { setLive("live"); });
  document.addEventListener("htmx:sseError", function () { setLive("down"); });
  document.addEventListener("htmx:sseClose", function () { setLive("down"); });

  function ago(iso, now) {
    var t = Date.parse(iso);
    if (isNaN(t)) return null;
    var s = Math.round((now - t) / 1000);
    if (s < 45) return "just now";
    var m = Math.round(s / 60);
    if (m < 60) return m + " min ago";
    var h = Math.round(s / 3600);
    if (h < 24) return h + " h ago";
    var d = Math.round(s / 86400);
    if (d < 30) return d + " d ago";
    return null; // older: keep the server's date
  }

  function tick(root) {
    var now = Date.now();
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var text = ago(el.getAttribute("datetime"), now);
      if (text && el.textContent !== text) el.textContent = text;
    });
  }

  // Deferred scripts run in order before DOMContentLoaded: sse.js has registered its factory,
  // htmx has not yet connected; replace the factory now.
  if (window.htmx) installEventSourceFactory();

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 15000);
  });
  window.addEventListener("offline", function () { setLive("down"); });
})();
