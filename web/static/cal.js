// Calibration history: each QC figure over the period, promoted (green) vs refused (red).
"use strict";
(function () {
  const el = document.getElementById("cal-plot");
  if (!el || !window.Plotly) return;
  const utc = (t) => new Date(t).toISOString().replace("T", " ").replace("Z", "");

  async function draw() {
    const q = new URLSearchParams({ combo: el.dataset.combo, period: el.dataset.period, end: el.dataset.end });
    const res = await fetch("/api/calibration/history?" + q, { credentials: "same-origin" });
    if (!res.ok) return;
    const rows = await res.json();
    const names = [...new Set(rows.flatMap((r) => Object.keys(r.figures)))].sort();
    const n = Math.max(names.length, 1), gap = 0.05, h = (1 - gap * (n - 1)) / n;
    const traces = [], layout = { margin: { l: 80, r: 20, t: 10, b: 40 }, showlegend: true, legend: { orientation: "h" },
      xaxis: { type: "date", anchor: "y" + (n > 1 ? n : "") } };
    const shown = new Set();  // one legend entry per kind, on its first trace
    const legend = (label) => { if (shown.has(label)) return false; shown.add(label); return true; };
    names.forEach((name, i) => {
      const ax = i === 0 ? "" : String(i + 1), yref = "y" + ax, top = 1 - i * (h + gap);
      const unit = (rows.find((r) => r.units && r.units[name]) || { units: {} }).units[name];
      layout["yaxis" + ax] = { domain: [Math.max(0, top - h), top], title: { text: name + (unit ? ` [${unit}]` : ""), font: { size: 11 } } };
      for (const [ok, colour, symbol, label] of [[true, "#2e7d32", "circle", el.dataset.labelPromoted], [false, "#c62828", "x", el.dataset.labelRefused]]) {
        const sel = rows.filter((r) => r.promoted === ok && name in r.figures);
        traces.push({ x: sel.map((r) => utc(r.time)), y: sel.map((r) => r.figures[name]), yaxis: yref, mode: "markers",
          marker: { color: colour, symbol, size: 9 }, name: label, legendgroup: label, showlegend: sel.length > 0 && legend(label),
          text: sel.map((r) => r.reason), hovertemplate: "%{y}<br>%{text}<extra></extra>" });
      }
      const cur = rows.filter((r) => r.current && name in r.current);
      if (cur.length) traces.push({ x: cur.map((r) => utc(r.time)), y: cur.map((r) => r.current[name]), yaxis: yref, mode: "lines",
        line: { color: "#888", dash: "dot", shape: "hv" }, name: el.dataset.labelCurrent, legendgroup: "cur", showlegend: legend("cur") });
    });
    await Plotly.react(el, traces, layout, { responsive: true, displaylogo: false });
    el.dataset.points = String(rows.length);
  }
  draw();
})();
