// Swaps in fresh numbers and charts every few seconds, without a page reload.
(() => {
  const live = document.getElementById("dashboard-live");
  if (!live) return;
  const url = live.dataset.url;
  const every = Number(live.dataset.refreshSeconds || 5) * 1000;
  async function refresh() {
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        live.innerHTML = await response.text();
        live.dataset.updatedAt = String(Date.now());
        live.dispatchEvent(new CustomEvent("dashboard:updated"));
      }
    } finally {
      setTimeout(refresh, every);
    }
  }
  setTimeout(refresh, every);
})();
