// Chart.js (vendored UMD build, loaded as a classic script) with the app's defaults.

let loading = null;

/** Load Chart.js once; resolves to the global `Chart`. */
export function chartJs() {
  if (window.Chart) return Promise.resolve(window.Chart);
  loading ||= new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = "/static/vendor/chart.umd.min.js";
    s.onload = () => resolve(window.Chart);
    s.onerror = () => reject(new Error("the chart library did not load"));
    document.head.append(s);
  });
  return loading;
}

export function jsonData(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

export const PALETTE = ["#1d5c4d", "#b35c1e", "#3d5a98", "#8a3b72", "#5b7d1a", "#9c2f2f", "#2f7f8a", "#6b5a2e"];
