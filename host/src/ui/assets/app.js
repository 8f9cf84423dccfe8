// wflow UI: live updates from the server's event stream (server-sent events). Pages work
// without this script; it only keeps them current. Text is set with textContent, never HTML.
"use strict";

(function () {
  const live = document.querySelector("[data-live]");
  const runBadges = document.querySelectorAll("[data-run-status]");
  if (!live && runBadges.length === 0) return;

  const finished = { "run-succeeded": "succeeded", "run-failed": "failed",
                     "run-cancelled": "cancelled", "run-interrupted": "interrupted" };

  function setStatus(element, status) {
    element.textContent = status;
    element.className = "status " + status;
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function runLink(id) {
    const td = document.createElement("td");
    const a = document.createElement("a");
    a.href = "/ui/runs/" + encodeURIComponent(id);
    a.textContent = String(id);
    td.appendChild(a);
    return td;
  }

  function onEvent(event) {
    const status = event.kind === "run-started" ? "running" : finished[event.kind];
    if (event.run !== undefined && status) {
      for (const badge of document.querySelectorAll('[data-run-status="' + event.run + '"]')) {
        setStatus(badge, status);
        if (status !== "running") badge.dataset.final = "true";
      }
      if (live && live.dataset.live === "runs") {
        const row = live.querySelector('tr[data-run="' + event.run + '"]');
        if (row) {
          setStatus(row.querySelector("[data-status]"), status);
        } else if (event.kind === "run-started" && !location.search.match(/page=[1-9]/)) {
          const tr = document.createElement("tr");
          tr.dataset.run = String(event.run);
          const badgeCell = document.createElement("td");
          const badge = document.createElement("span");
          badge.dataset.status = "";
          setStatus(badge, status);
          badgeCell.appendChild(badge);
          tr.append(runLink(event.run), cell(event.workflow || ""), badgeCell, cell(""),
                    cell(new Date(event.at).toISOString().slice(0, 19) + "Z"), cell(""));
          live.querySelector("tbody").prepend(tr);
        }
      }
    }
    if (live && live.dataset.live === "events") {
      const tr = document.createElement("tr");
      const message = document.createElement("td");
      const pre = document.createElement("pre");
      pre.textContent = event.message;
      message.appendChild(pre);
      tr.append(cell(String(event.seq)), cell(new Date(event.at).toISOString().slice(0, 19) + "Z"),
                cell(event.workflow || event.model || ""), cell(event.kind), message);
      live.querySelector("tbody").prepend(tr);
    }
  }

  const source = new EventSource("/ui/events/stream");
  source.addEventListener("wflow", (message) => {
    try {
      onEvent(JSON.parse(message.data));
    } catch (err) {
      // A malformed event is skipped; the page stays as it is.
    }
  });
})();
