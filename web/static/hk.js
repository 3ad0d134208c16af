// Housekeeping plot: several parameters on one time axis, limits, alarms, zoom refetches.
"use strict";
(function () {
  const el = document.getElementById("hk-plot");
  if (!el || !window.Plotly) return;
  const instrument = el.dataset.instrument;
  const names = JSON.parse(el.dataset.parameters || "[]");
  const status = document.getElementById("hk-status");
  const full = [el.dataset.start, el.dataset.end];
  // Plotly's date axes have no time zone: give it UTC wall times, read zooms back as UTC
  const utc = (t) => new Date(t).toISOString().replace("T", " ").replace("Z", "");
  const colours = ["#1d5fbf", "#7b3fbf", "#0f8a6a", "#b3541e", "#555", "#c2185b", "#00838f", "#6d4c41"];

  async function fetchSeries(name, start, end) {
    const q = new URLSearchParams({ instrument, parameter: name, start, end, max_points: "1500" });
    const res = await fetch("/api/housekeeping/series?" + q, { credentials: "same-origin" });
    if (!res.ok) throw new Error(`${name}: ${res.status}`);
    return res.json();
  }

  function figure(all, start, end) {
    const n = all.length, gap = 0.04, h = (1 - gap * (n - 1)) / n;
    const traces = [], shapes = [], layout = {
      margin: { l: 70, r: 20, t: 10, b: 40 }, showlegend: false, hovermode: "x unified",
      xaxis: { type: "date", range: [utc(start), utc(end)], anchor: "y" + (n > 1 ? n : "") },
    };
    all.forEach((s, i) => {
      const ax = i === 0 ? "" : String(i + 1), yname = "yaxis" + ax, yref = "y" + ax;
      const top = 1 - i * (h + gap);
      layout[yname] = { domain: [Math.max(0, top - h), top], title: { text: `${s.parameter}${s.unit ? " [" + s.unit + "]" : ""}`, font: { size: 11 } } };
      const x = s.times_ms.map(utc);
      const c = colours[i % colours.length];
      if (s.resolution_s > 0) {
        traces.push({ x, y: s.min, yaxis: yref, mode: "lines", line: { width: 0 }, hoverinfo: "skip" });
        traces.push({ x, y: s.max, yaxis: yref, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: c + "33", name: el.dataset.labelRange, hoverinfo: "skip" });
      }
      traces.push({ x, y: s.mean, yaxis: yref, mode: s.resolution_s > 0 ? "lines" : "lines+markers", marker: { size: 3 }, line: { color: c, width: 1.4 }, name: `${s.parameter} ${el.dataset.labelMean}` });
      const L = s.limits;
      for (const [v, kind] of [[L.soft_low, "soft"], [L.soft_high, "soft"], [L.hard_low, "hard"], [L.hard_high, "hard"]]) {
        if (v === null || v === undefined) continue;
        shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref, y0: v, y1: v,
          line: { color: kind === "hard" ? "#c62828" : "#e09b00", dash: kind === "hard" ? "solid" : "dash", width: 1 } });
      }
      for (const a of s.alarms) {
        shapes.push({ type: "rect", xref: "x", yref: yref + " domain", x0: utc(a.raised_at), x1: utc(a.cleared_at || end), y0: 0, y1: 1,
          fillcolor: a.level === "hard" ? "#c6282822" : "#e09b0022", line: { width: 0 } });
      }
    });
    layout.shapes = shapes;
    return { traces, layout };
  }

  async function draw(start, end) {
    status.textContent = "…";
    try {
      const all = await Promise.all(names.map((n) => fetchSeries(n, start, end)));
      const { traces, layout } = figure(all, start, end);
      await Plotly.react(el, traces, layout, { responsive: true, displaylogo: false });
      const res = all.map((s) => `${s.parameter}: ${s.times_ms.length} ${s.resolution_s > 0 ? "× " + s.resolution_s + " s" : "raw"}`);
      status.textContent = res.join(" · ");
      el.dataset.points = String(all.reduce((k, s) => k + s.times_ms.length, 0));
    } catch (e) {
      status.textContent = String(e);
    }
  }

  el.dataset.points = "0";
  draw(full[0], full[1]).then(() => {
    el.on("plotly_relayout", (ev) => {
      if (ev["xaxis.autorange"]) { draw(full[0], full[1]); return; }
      const a = ev["xaxis.range[0]"], b = ev["xaxis.range[1]"];
      const iso = (r) => new Date(String(r).slice(0, 23).replace(" ", "T") + "Z").toISOString();
      if (a && b) draw(iso(a), iso(b));
    });
  });
  document.addEventListener("svomflow:alarm", () => draw(full[0], full[1]));
})();
