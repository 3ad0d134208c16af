// svomflow planning page: draw the timeline from its JSON block (no inline script: the CSP
// allows the site's own files only), again after each live refresh of the page.
"use strict";
(function () {
  function draw() {
    const holder = document.getElementById("timeline");
    const data = document.getElementById("timeline-data");
    if (!holder || !data || !window.Plotly) return;
    const fig = JSON.parse(data.textContent);
    window.Plotly.react(holder, fig.data, fig.layout, { responsive: true, displaylogo: false });
    holder.dataset.rendered = String(fig.data.length - 1);  // the strategies drawn
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("svomflow:refreshed", draw);
})();
