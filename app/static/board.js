// Leadboard in the browser: htmx and its sse extension do the swapping; this file adds what
// htmx cannot know: where a live row belongs, page size, hot-lead toasts, the connection state,
// ticking times, keyboard moves, and drag-and-drop in the pipeline. No inline scripts (CSP).
(function () {
  "use strict";

  var lastEventId = null;
  var LIVE_EVENTS = ["lead", "refresh"];
  var seenHot = {};
  var refreshTimer = null;

  // ---- the event stream ---------------------------------------------------------------------
  function withAfter(url) {
    if (lastEventId === null) return url;
    var u = new URL(url, window.location.href);
    u.searchParams.set("after", lastEventId);
    return u.pathname + u.search;
  }

  // htmx's sse extension opens a fresh EventSource after a hard failure, which would forget the
  // last event id; resume from it explicitly so nothing missed is lost.
  if (window.htmx) {
    htmx.createEventSource = function (url) {
      var source = new EventSource(withAfter(url), { withCredentials: true });
      LIVE_EVENTS.forEach(function (name) {
        source.addEventListener(name, function (ev) {
          if (ev.lastEventId) lastEventId = ev.lastEventId;
        });
      });
      // The server says how current this stream is: live, catching-up (more than a second
      // behind) or delayed (it cannot hear the other app processes; changes come seconds late).
      source.addEventListener("status", function (ev) { setLive(ev.data); });
      source.addEventListener("view", function (ev) { applyView(ev.data); });
      return source;
    };
  }

  function live() { return document.getElementById("live"); }
  function view() { return document.getElementById("board-view"); }

  function setLive(state) {
    var el = document.getElementById("live-status");
    var banner = document.getElementById("offline-banner");
    var root = live();
    if (!el) return;
    el.dataset.state = state;
    var key = "label" + state.replace(/(^|-)(\w)/g, function (_, _dash, c) { return c.toUpperCase(); });
    var label = root && root.dataset[key];
    el.querySelector(".label").textContent = label || state;
    if (banner) banner.hidden = state !== "down";
    var delayed = document.getElementById("delayed-banner");
    if (delayed) delayed.hidden = state !== "delayed";
    document.body.dataset.live = state;
  }
  // An open stream is not yet "live": the server's first status event says whether it is.
  document.addEventListener("htmx:sseOpen", function () {
    var el = document.getElementById("live-status");
    if (el && el.dataset.state === "down") setLive("connecting");
  });
  document.addEventListener("htmx:sseError", function () { setLive("down"); });
  document.addEventListener("htmx:sseClose", function () { setLive("down"); });
  window.addEventListener("offline", function () { setLive("down"); });

  function rowIdFromHtml(html) {
    var m = /<tr[^>]*\sid="lead-(\d+)"/.exec(html);
    return m ? m[1] : null;
  }

  function scheduleRefresh(target, eventName) {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      if (target && document.body.contains(target)) htmx.trigger(target, eventName);
    }, 400);
  }

  // A new view is a new stream, resumed from the position the new fragment was read at (its
  // sse-connect URL), not from the last event the old view's stream saw.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail && evt.detail.target;
    if (target && target.id === "board-view") lastEventId = null;
  });

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (e) { return ""; }
  }

  function fragment(html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    return t.content;
  }

  function flash(row) {
    row.classList.remove("flash");
    void row.offsetWidth;
    row.classList.add("flash");
  }

  // A server-kept view (filtered, sorted, the pipeline): the server read it once for every
  // browser on it and says which leads it shows now. Rows already here are moved, never
  // re-created, so a selection or an open menu in them stays.
  var pendingPipeline = null;
  function applyView(raw) {
    var v = view();
    var data;
    try { data = JSON.parse(raw); } catch (e) { return; }
    if (data.lead !== undefined) { applyLead(data); return; }
    if (!v || v.dataset.liveView !== data.view) return; // a view this page has left
    if (data.pipeline !== undefined) { swapPipeline(data.pipeline); return; }
    var tbody = document.getElementById("lead-rows");
    if (!tbody) return;
    var fresh = {};
    Array.prototype.forEach.call(fragment(data.rows || "").querySelectorAll("tr.lead-row"), function (tr) {
      fresh[tr.id.slice(5)] = tr;
    });
    var wanted = {};
    data.ids.forEach(function (id) { wanted[id] = true; });
    Array.prototype.slice.call(tbody.rows).forEach(function (tr) {
      if (!wanted[tr.id.slice(5)]) tr.remove();
    });
    var missing = false;
    var cursor = tbody.firstElementChild;
    data.ids.forEach(function (id) {
      var current = document.getElementById("lead-" + id);
      var row = fresh[id] || current;
      if (!row) { missing = true; return; }
      var renewed = Boolean(fresh[id]);
      if (renewed && current) {
        if (current.contains(document.activeElement)) { row = current; renewed = false; } // never from under focus
        else {
          if (current.classList.contains("selected")) { row.classList.add("selected"); row.setAttribute("aria-selected", "true"); }
          current.replaceWith(row);
          if (cursor === current) cursor = row;
        }
      }
      if (row === cursor) cursor = cursor.nextElementSibling;
      else tbody.insertBefore(row, cursor);
      if (renewed) { flash(row); tick(row); toastIfHot(row.outerHTML, row); }
    });
    var empty = document.getElementById("empty-state");
    if (empty && data.ids.length) empty.remove();
    var next = v.querySelector("a[rel=next]");
    if (next && data.next) { next.setAttribute("href", data.next); next.setAttribute("hx-get", data.next); }
    // A lead this page never had and the server did not send (this page was read between two
    // of the server's reads): fetch the view once.
    if (missing || (!data.ids.length && !empty)) scheduleRefresh(v, "refresh-view");
  }

  // ---- a lead's page: its live part, without touching what a person is doing ---------------
  // A form is busy while a field in it has the focus (a menu open, a caret in it) or a draft
  // typed into it. A focused button is not: it was just pressed, and its result may remove it.
  function busy(el) {
    var active = document.activeElement;
    if (active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName) && el.contains(active)) return true;
    var typed = Array.prototype.some.call(el.querySelectorAll("textarea, input[type=text], input:not([type])"), function (f) {
      return f.value !== f.defaultValue;
    });
    return typed || Array.prototype.some.call(el.querySelectorAll("select"), function (sel) {
      var initial = 0; // a select without a `selected` option starts on its first one
      Array.prototype.some.call(sel.options, function (o, i) { if (o.defaultSelected) { initial = i; return true; } return false; });
      return sel.options.length > 0 && sel.selectedIndex !== initial;
    });
  }

  // Replace `old` by `next`, except inside busy forms, which stay exactly as they are (a moved
  // node would lose its focus): descend into what holds one, swap everything around it.
  function patch(old, next) {
    if (!busy(old)) { old.replaceWith(next); return next; }
    if (old.tagName === "FORM" || old.children.length !== next.children.length) return old;
    Array.prototype.forEach.call(next.attributes, function (a) {
      if (old.getAttribute(a.name) !== a.value) old.setAttribute(a.name, a.value);
    });
    var olds = Array.prototype.slice.call(old.children), nexts = Array.prototype.slice.call(next.children);
    olds.forEach(function (child, i) { patch(child, nexts[i]); });
    return old;
  }

  function applyLead(data) {
    var page = live();
    var current = document.getElementById("lead-live");
    if (!page || !current || page.dataset.lead !== String(data.lead)) return;
    var next = fragment(data.html).firstElementChild;
    if (!next) return;
    var token = csrfToken();
    next.querySelectorAll("input[name=_csrf_token]").forEach(function (input) { input.value = token; });
    var swapped = patch(current, next);
    htmx.process(swapped);
    tick(swapped);
  }

  function swapPipeline(html) {
    var old = document.getElementById("pipeline");
    if (!old) return;
    // Never while a card is dragged or a status menu is open: after that.
    if (dragged || old.contains(document.activeElement)) { pendingPipeline = html; return; }
    pendingPipeline = null;
    var next = fragment(html).firstElementChild;
    if (!next) return;
    var token = csrfToken();
    next.querySelectorAll("input[name=_csrf_token]").forEach(function (input) { input.value = token; });
    old.replaceWith(next);
    htmx.process(next);
    tick(next);
  }
  document.addEventListener("focusout", function () {
    setTimeout(function () { if (pendingPipeline !== null) swapPipeline(pendingPipeline); }, 0);
  });

  // Before htmx inserts a row: decide whether this view shows it, and drop its old copy.
  document.addEventListener("htmx:sseBeforeMessage", function (evt) {
    var ev = evt.detail;
    if (!ev || ev.type !== "lead") return;
    var id = rowIdFromHtml(ev.data || "");
    var page = live();
    if (page && page.classList.contains("lead-page")) {
      evt.preventDefault(); // the server's view event brings this lead's page when it changed
      return;
    }
    var v = view();
    if (!v) { evt.preventDefault(); return; }
    if (v.dataset.view === "pipeline") {
      evt.preventDefault(); // the server's view event brings the columns
      toastIfHot(ev.data);
      return;
    }
    var existing = id && document.getElementById("lead-" + id);
    if (v.dataset.liveView) {
      // Where the row belongs is the server's view event's to say; here it is only updated.
      evt.preventDefault();
      if (existing && !existing.contains(document.activeElement)) {
        var row = fragment(ev.data).querySelector("tr.lead-row");
        if (row) {
          if (existing.classList.contains("selected")) { row.classList.add("selected"); row.setAttribute("aria-selected", "true"); }
          existing.replaceWith(row);
          flash(row);
          tick(row);
        }
      }
      toastIfHot(ev.data, existing || undefined);
      return;
    }
    if (v.dataset.liveInsert !== "true" && !existing) {
      // A filtered or re-sorted view: membership may have changed; reload it (cheap, keyset).
      evt.preventDefault();
      if (v.dataset.firstPage === "true") scheduleRefresh(v, "refresh-view");
      toastIfHot(ev.data);
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
    var row = id && document.getElementById("lead-" + id);
    var tbody = document.getElementById("lead-rows");
    var v = view();
    if (!row || !tbody || !v) return;
    var attr = "sort" + v.dataset.sort.charAt(0).toUpperCase() + v.dataset.sort.slice(1);
    var key = row.dataset[attr] || "";
    var next = row.nextElementSibling;
    while (next && (next.dataset[attr] || "") > key) next = next.nextElementSibling;
    if (next !== row.nextElementSibling) tbody.insertBefore(row, next);
    var size = parseInt(v.dataset.pageSize, 10) || 50;
    while (tbody.rows.length > size) tbody.deleteRow(tbody.rows.length - 1);
    flash(row);
    tick(row);
    toastIfHot(ev.data, row);
  });

  // ---- hot-lead toasts ------------------------------------------------------------------------
  function toastIfHot(html, row) {
    var m = /data-hot-since="([^"]+)"/.exec(html || "");
    var id = rowIdFromHtml(html || "");
    if (!m || !id || seenHot[id] === m[1]) return;
    seenHot[id] = m[1];
    if (Date.now() - Date.parse(m[1]) > 5 * 60 * 1000) return; // old news, no toast
    var name = (/data-name="([^"]*)"/.exec(html) || [])[1] || "";
    var box = document.getElementById("toasts");
    if (!box) return;
    var div = document.createElement("div");
    div.className = "toast";
    div.setAttribute("role", "alert");
    var link = document.createElement("a");
    link.href = "/leads/" + id;
    // textContent, never innerHTML: names come from strangers.
    var tmp = document.createElement("textarea");
    tmp.innerHTML = name; // decode the attribute's entities without running anything
    link.textContent = "🔥 " + tmp.value;
    var sub = document.createElement("span");
    sub.className = "subtle";
    sub.textContent = box.dataset.labelHot || "just turned hot";
    div.appendChild(link);
    div.appendChild(sub);
    box.appendChild(div);
    setTimeout(function () { div.remove(); }, 10000);
  }

  // ---- ticking times --------------------------------------------------------------------------
  var lang = document.documentElement.lang || "en";
  var WORDS = lang === "id"
    ? { now: "baru saja", min: " mnt lalu", h: " jam lalu", d: " hari lalu", m: " mnt", hr: " jam" }
    : { now: "just now", min: " min ago", h: " h ago", d: " d ago", m: " min", hr: " h" };

  function ago(iso, now) {
    var t = Date.parse(iso);
    if (isNaN(t)) return null;
    var s = Math.round((now - t) / 1000);
    if (s < 45) return WORDS.now;
    var m = Math.round(s / 60);
    if (m < 60) return m + WORDS.min;
    var h = Math.round(s / 3600);
    if (h < 24) return h + WORDS.h;
    var d = Math.round(s / 86400);
    if (d < 30) return d + WORDS.d;
    return null;
  }

  function since(iso, now) {
    var m = Math.max(0, Math.round((now - Date.parse(iso)) / 60000));
    return m < 60 ? m + WORDS.m : Math.floor(m / 60) + WORDS.hr + " " + (m % 60) + WORDS.m;
  }

  function tick(root) {
    var now = Date.now();
    (root || document).querySelectorAll("time.ago[datetime]").forEach(function (el) {
      var text = ago(el.getAttribute("datetime"), now);
      if (text && el.textContent !== text) el.textContent = text;
    });
    (root || document).querySelectorAll("time.since[datetime]").forEach(function (el) {
      el.textContent = since(el.getAttribute("datetime"), now);
    });
    (root || document).querySelectorAll(".window[data-ends]").forEach(function (el) {
      var left = Date.parse(el.dataset.ends) - now;
      el.classList.toggle("closed", left <= 0);
      el.classList.toggle("closing", left > 0 && left < 2 * 3600 * 1000);
      if (left <= 0) { el.textContent = el.dataset.labelClosed; return; }
      var h = Math.floor(left / 3600000), m = Math.floor((left % 3600000) / 60000);
      el.textContent = el.dataset.labelLeft.replace("{t}", h > 0 ? h + WORDS.hr + " " + m + WORDS.m : m + WORDS.m);
    });
  }
  document.addEventListener("htmx:afterSettle", function (evt) { tick(evt.target); });

  // ---- keyboard: j/k move, Enter opens, / searches ---------------------------------------------
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#lead-rows tr.lead-row")); }
  function select(index) {
    var list = rows();
    if (!list.length) return;
    index = Math.max(0, Math.min(list.length - 1, index));
    list.forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); });
    list[index].classList.add("selected");
    list[index].setAttribute("aria-selected", "true");
    list[index].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    var list = rows();
    var current = list.findIndex(function (r) { return r.classList.contains("selected"); });
    if (e.key === "j") { select(current + 1); e.preventDefault(); }
    else if (e.key === "k") { select(current < 0 ? 0 : current - 1); e.preventDefault(); }
    else if (e.key === "Enter" && current >= 0) {
      var link = list[current].querySelector("a.lead-name");
      if (link) { window.location.href = link.href; e.preventDefault(); }
    } else if (e.key === "/") {
      var search = document.getElementById("search");
      if (search) { search.focus(); search.select(); e.preventDefault(); }
    }
  });

  // ---- pipeline drag and drop (the select on each card does the same by keyboard) --------------
  var dragged = null;
  document.addEventListener("dragstart", function (e) {
    var card = e.target.closest && e.target.closest(".card[data-lead]");
    if (!card) return;
    dragged = card;
    card.classList.add("dragging");
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", card.dataset.lead);
  });
  document.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    if (pendingPipeline !== null) setTimeout(function () { swapPipeline(pendingPipeline); }, 0);
    document.querySelectorAll(".pipeline-col.drop-target").forEach(function (c) { c.classList.remove("drop-target"); });
  });
  document.addEventListener("dragover", function (e) {
    var col = e.target.closest && e.target.closest(".pipeline-col");
    if (!col || !dragged) return;
    e.preventDefault();
    col.classList.add("drop-target");
  });
  document.addEventListener("dragleave", function (e) {
    var col = e.target.closest && e.target.closest(".pipeline-col");
    if (col && !col.contains(e.relatedTarget)) col.classList.remove("drop-target");
  });
  document.addEventListener("drop", function (e) {
    var col = e.target.closest && e.target.closest(".pipeline-col");
    if (!col || !dragged) return;
    e.preventDefault();
    var leadId = dragged.dataset.lead;
    // A live refresh may have replaced the card mid-drag: work with the one on the page now.
    var card = document.getElementById("card-" + leadId) || dragged;
    var status = col.dataset.status;
    if (card.dataset.status === status) return;
    col.querySelector("ol.cards").prepend(card); // optimistic; the live event confirms
    card.dataset.status = status;
    var sel = card.querySelector("select[name=status]");
    if (sel) sel.value = status;
    htmx.ajax("POST", "/leads/" + leadId + "/status", { values: { status: status }, swap: "none", source: col });
  });

  // ---- small things ---------------------------------------------------------------------------
  // Filter URLs carry only what is set, like the links the server renders.
  document.addEventListener("htmx:configRequest", function (evt) {
    if (!evt.target || evt.target.id !== "filters") return;
    var params = evt.detail.parameters;
    Object.keys(params).forEach(function (key) {
      if (params[key] === "" || (key === "view" && params[key] === "table") ||
          (key === "sort" && params[key] === "activity") || (key === "size" && params[key] === "50")) {
        delete params[key];
      }
    });
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.target;
    if (form && form.classList && form.classList.contains("note-form") && evt.detail.successful) form.reset();
    // A choice that was sent is no longer a person's unsent choice: live updates may show it.
    if (form && form.tagName === "FORM" && evt.detail.successful) {
      form.querySelectorAll("select").forEach(function (sel) {
        Array.prototype.forEach.call(sel.options, function (o) { o.defaultSelected = o.selected; });
      });
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 15000);
  });
})();
