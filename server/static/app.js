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

  // Forms that ask before submitting (delete).
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
