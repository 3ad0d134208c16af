// svomflow site: live updates over server-sent events, toasts, CSRF header for fetch posts.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]');
  const svomflow = (window.svomflow = {
    csrf: csrf ? csrf.content : "",
    // POST with the session's CSRF token (forms carry it as a hidden field instead)
    post(url, body) {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": svomflow.csrf },
        body: JSON.stringify(body || {}),
      });
    },
  });

  function toast(text) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const el = document.createElement("div");
    el.className = "toast";
    el.textContent = text;
    box.appendChild(el);
    setTimeout(() => el.remove(), 6000);
  }

  let pending = null;
  // refetch this page and swap its #live part (no reload: the rest of the page stays)
  function refreshLive() {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      const live = document.getElementById("live");
      if (!live) return;
      const res = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.getElementById("live");
      if (fresh) {
        live.innerHTML = fresh.innerHTML;
        live.dispatchEvent(new CustomEvent("svomflow:refreshed", { bubbles: true }));
      }
    }, 300);
  }

  const kinds = (document.body.dataset.live || "").split(/\s+/).filter(Boolean);
  if (kinds.length && window.EventSource) {
    const es = new EventSource("/events");
    svomflow.events = es;
    for (const kind of kinds) {
      es.addEventListener(kind, (ev) => {
        let data = {};
        try { data = JSON.parse(ev.data); } catch (e) { /* keep {} */ }
        const what = data.type_code ? `${data.type_code} ${data.obs_id} v${data.version}`
          : data.parameter ? `${data.instrument} ${data.parameter} ${data.level || ""} ${data.state || ""}`
          : data.key ? `${data.key} ${data.state}` : "";
        toast(`${kind}: ${what}`);
        document.dispatchEvent(new CustomEvent("svomflow:" + kind, { detail: data }));
        refreshLive();
      });
    }
    document.body.dataset.liveConnected = "yes";
  }
})();
