// Live pages: one websocket per page, for the topics its elements name in data-live
// ("execution:<id>", "agent:<id>") and data-live-refresh ("executions", "approvals").
// The server sends {target, html} (a partial rendered for this user: swapped in place) or
// {refresh: feed} (each element following that feed fetches its partial again: its
// data-live-url, else the page's own URL with its filters; one request at a time per
// element, a change during it fetched once more afterwards). A dropped socket reconnects with
// backoff and resyncs: the server sends the current state on every connect.
(function () {
  "use strict";
  function topics() {
    var found = [];
    document.querySelectorAll("[data-live], [data-live-refresh]").forEach(function (el) {
      var topic = el.getAttribute("data-live") || el.getAttribute("data-live-refresh");
      if (topic && found.indexOf(topic) < 0) found.push(topic);
    });
    return found;
  }
  function refresh(el) {
    if (el.liveBusy) { el.livePending = true; return; }
    el.liveBusy = true;
    var url = el.getAttribute("data-live-url") || location.pathname + location.search;
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null) window.htmx.swap(el, html, { swapStyle: "innerHTML" });
      })
      .catch(function () { /* the next change or reconnect fetches again */ })
      .finally(function () {
        el.liveBusy = false;
        if (el.livePending) { el.livePending = false; refresh(el); }
      });
  }
  var delay = 500;
  function connect() {
    var wanted = topics();
    if (!wanted.length || !window.WebSocket) return;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(
      scheme + location.host + "/ws/live/?topics=" + encodeURIComponent(wanted.join(","))
    );
    document.body.setAttribute("data-live-state", "connecting");
    socket.onopen = function () {
      delay = 500;
      document.body.setAttribute("data-live-state", "open");
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.target && message.html !== undefined) {
        var target = document.getElementById(message.target);
        if (target) window.htmx.swap(target, message.html, { swapStyle: "outerHTML" });
      } else if (message.refresh) {
        document.querySelectorAll('[data-live-refresh="' + message.refresh + '"]').forEach(refresh);
      }
    };
    socket.onclose = function (event) {
      document.body.setAttribute("data-live-state", "closed");
      if (event.code === 4401 || event.code === 4403) return; // signed out, or not allowed
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  document.addEventListener("DOMContentLoaded", connect);
})();
