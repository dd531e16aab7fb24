// conq dashboard: keeps counts fresh and draws the throughput chart.
// Served from /static (the CSP allows no inline script); no dependencies.
(function () {
  "use strict";

  var body = document.body;
  var period = parseInt(body.getAttribute("data-refresh-ms"), 10) || 2000;
  var statusEl = document.getElementById("status");
  var staleEl = document.getElementById("stale");

  function setStatus(text, down) {
    if (!statusEl) return;
    statusEl.textContent = text;
    statusEl.classList.toggle("down", !!down);
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (!r.ok) {
          return r.json().catch(function () { return {}; }).then(function (b) {
            var msg = (b && b.error && b.error.message) || ("HTTP " + r.status);
            throw new Error(msg);
          });
        }
        return r.json();
      });
  }

  // Counts: every element with data-queue and data-state shows a count.
  function refreshCounts() {
    getJSON("/api/v1/queues").then(function (data) {
      var byName = {};
      var totals = {};
      (data.queues || []).forEach(function (q) {
        byName[q.name] = q;
        Object.keys(q.counts || {}).forEach(function (st) {
          totals[st] = (totals[st] || 0) + q.counts[st];
        });
      });
      var changed = false;
      document.querySelectorAll("[data-queue][data-state]").forEach(function (el) {
        var q = byName[el.getAttribute("data-queue")];
        var n = q ? (q.counts[el.getAttribute("data-state")] || 0) : 0;
        var text = String(n);
        if (el.textContent !== text) {
          if (el.hasAttribute("data-watch")) changed = true;
          el.textContent = text;
        }
      });
      document.querySelectorAll("[data-total]").forEach(function (el) {
        el.textContent = String(totals[el.getAttribute("data-total")] || 0);
      });
      document.querySelectorAll("[data-paused]").forEach(function (el) {
        var q = byName[el.getAttribute("data-paused")];
        el.hidden = !(q && q.paused);
      });
      // Pause/resume buttons follow changes made elsewhere.
      document.querySelectorAll("form[data-pause-form]").forEach(function (f) {
        var q = byName[f.getAttribute("data-pause-form")];
        if (!q) return;
        f.setAttribute("action", f.getAttribute("data-base") + (q.paused ? "resume" : "pause"));
        var btn = f.querySelector("button");
        if (btn) btn.textContent = q.paused ? "Resume" : "Pause";
      });
      // A queue that is new, or gone, needs a reload of the overview.
      var table = document.getElementById("queues");
      if (table) {
        var shown = {};
        table.querySelectorAll("[data-queue-row]").forEach(function (row) { shown[row.getAttribute("data-queue-row")] = true; });
        Object.keys(byName).forEach(function (n) { if (!shown[n]) changed = true; });
      }
      if (changed && staleEl) staleEl.hidden = false;
      setStatus("updated " + new Date().toLocaleTimeString(), false);
    }).catch(function (err) {
      setStatus("not updating: " + err.message, true);
    });
  }

  // Throughput chart on a canvas: processed and failed per second.
  var canvas = document.getElementById("throughput");
  function drawThroughput() {
    if (!canvas) return;
    getJSON("/api/v1/throughput").then(function (data) {
      var ctx = canvas.getContext("2d");
      var w = canvas.width, h = canvas.height, pad = 24;
      ctx.clearRect(0, 0, w, h);
      var series = [data.processed || [], data.failed || []];
      var n = series[0].length;
      var top = 1;
      series.forEach(function (s) { s.forEach(function (v) { if (v !== null && v > top) top = v; }); });
      // Axes and labels.
      ctx.strokeStyle = "#e3e6ea";
      ctx.fillStyle = "#667085";
      ctx.font = "11px sans-serif";
      ctx.beginPath();
      ctx.moveTo(pad, pad / 2); ctx.lineTo(pad, h - pad); ctx.lineTo(w - 4, h - pad);
      ctx.stroke();
      ctx.fillText(top.toFixed(top < 10 ? 1 : 0) + "/s", pad + 4, pad / 2 + 10);
      ctx.fillText("-60 min", pad, h - 6);
      ctx.fillText("now", w - 28, h - 6);
      var colors = ["#2f5bd3", "#d92d20"];
      series.forEach(function (s, k) {
        ctx.strokeStyle = colors[k];
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        var pen = false;
        for (var i = 0; i < n; i++) {
          var v = s[i];
          if (v === null || v === undefined) { pen = false; continue; }
          var x = pad + (w - pad - 4) * (n <= 1 ? 1 : i / (n - 1));
          var y = (h - pad) - (h - pad * 1.5) * (v / top);
          if (pen) { ctx.lineTo(x, y); } else { ctx.moveTo(x, y); pen = true; }
        }
        ctx.stroke();
      });
      var maxEl = document.getElementById("throughput-max");
      if (maxEl) maxEl.textContent = "(peak " + top.toFixed(1) + "/s)";
    }).catch(function () { /* the status line reports outages */ });
  }

  // Workers page: rebuilt from /api/v1/workers (text only, no markup from
  // the data).
  var workersTable = document.getElementById("workers");
  // ago renders a time relative to now, like the server's "since".
  function ago(iso) {
    var d = (Date.now() - Date.parse(iso)) / 1000;
    if (!isFinite(d)) return "";
    var future = d < 0;
    if (future) d = -d;
    var s;
    if (d < 1) return "now";
    if (d < 60) s = Math.floor(d) + "s";
    else if (d < 3600) s = Math.floor(d / 60) + "m";
    else if (d < 172800) s = Math.floor(d / 3600) + "h";
    else s = Math.floor(d / 86400) + "d";
    return future ? "in " + s : s + " ago";
  }
  // Relative times rendered by the server stay current.
  if (document.querySelector("[data-since]")) {
    setInterval(function () {
      document.querySelectorAll("[data-since]").forEach(function (el) {
        el.textContent = ago(el.getAttribute("data-since"));
      });
    }, 1000);
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function refreshWorkers() {
    getJSON("/api/v1/workers").then(function (data) {
      var ws = data.workers || [];
      var tbody = workersTable.querySelector("tbody");
      var rows = document.createDocumentFragment();
      var running = 0;
      ws.forEach(function (w) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-worker-row", w.id);
        cell(tr, w.id, "mono");
        cell(tr, w.host, "mono");
        cell(tr, String(w.pid), "num");
        cell(tr, (w.queues || []).join(", "), "mono");
        cell(tr, (w.running || []).length + "/" + w.concurrency, "num");
        cell(tr, ago(w.started_at)).title = w.started_at;
        cell(tr, ago(w.heartbeat_at)).title = w.heartbeat_at;
        var ul = document.createElement("ul");
        ul.className = "running";
        (w.running || []).forEach(function (t) {
          running++;
          var li = document.createElement("li");
          var a = document.createElement("a");
          a.className = "mono";
          a.href = "/queues/" + encodeURIComponent(t.queue) + "/tasks/" + encodeURIComponent(t.id);
          a.setAttribute("data-running-task", t.id);
          a.textContent = t.id;
          var kind = document.createElement("span");
          kind.className = "mono";
          kind.textContent = " " + t.kind + " ";
          var since = document.createElement("span");
          since.className = "muted";
          since.textContent = ago(t.started_at);
          li.appendChild(a); li.appendChild(kind); li.appendChild(since);
          ul.appendChild(li);
        });
        cell(tr, "").appendChild(ul);
        rows.appendChild(tr);
      });
      tbody.replaceChildren(rows);
      workersTable.hidden = ws.length === 0;
      var empty = document.getElementById("workers-empty");
      if (empty) empty.hidden = ws.length !== 0;
      var n = document.getElementById("workers-count");
      if (n) n.textContent = String(ws.length);
      var r = document.getElementById("workers-running");
      if (r) r.textContent = String(running);
      setStatus("updated " + new Date().toLocaleTimeString(), false);
    }).catch(function (err) {
      setStatus("not updating: " + err.message, true);
    });
  }
  if (workersTable) {
    setInterval(refreshWorkers, period);
  }

  // Workflow page, while the workflow runs: step states follow
  // /api/v1/workflows/{id} (text and class only); once it has finished, or
  // a step has a new result or error, the page offers a reload.
  var wfState = document.querySelector("[data-workflow-running]");
  function setBadge(el, state) {
    el.textContent = state;
    el.className = el.className.replace(/\bstate-\S+/g, "").trim() + " state-" + state;
  }
  function refreshWorkflow() {
    var id = wfState.getAttribute("data-workflow");
    getJSON("/api/v1/workflows/" + encodeURIComponent(id)).then(function (wf) {
      var changed = false;
      (wf.steps || []).forEach(function (st, i) {
        var row = document.querySelector('tr[data-step="' + i + '"]');
        if (!row || row.getAttribute("data-step-state") === st.state) return;
        var terminal = st.state === "completed" || st.state === "failed" || st.state === "cancelled";
        if (terminal || row.getAttribute("data-step-state") === "waiting") changed = true;
        row.setAttribute("data-step-state", st.state);
        var badge = row.querySelector("[data-step-badge]");
        if (badge) setBadge(badge, st.state);
      });
      if (wf.state !== "running") {
        setBadge(wfState, wf.state);
        wfState.removeAttribute("data-workflow-running");
        changed = true;
      }
      if (changed && staleEl) staleEl.hidden = false;
      setStatus("updated " + new Date().toLocaleTimeString(), false);
    }).catch(function (err) {
      setStatus("not updating: " + err.message, true);
    });
  }
  if (wfState) {
    var wfTimer = setInterval(function () {
      if (!wfState.hasAttribute("data-workflow-running")) { clearInterval(wfTimer); return; }
      refreshWorkflow();
    }, period);
  }

  // Forms that ask before submitting (delete, cancel).
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      if (!window.confirm(f.getAttribute("data-confirm"))) ev.preventDefault();
    });
  });

  if (document.querySelector("[data-queue][data-state]") || document.getElementById("queues")) {
    refreshCounts();
    setInterval(refreshCounts, period);
  }
  if (canvas) {
    drawThroughput();
    setInterval(drawThroughput, 5000);
  }
})();
