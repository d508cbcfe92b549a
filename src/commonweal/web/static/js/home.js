// The home page's charts: each model version's metrics, and the cap table.

import { PALETTE, chartJs, jsonData } from "./charts.js";

async function draw() {
  const Chart = await chartJs();
  const metrics = jsonData("metrics-data");
  if (metrics) {
    const names = ["accuracy", "macro_f1", "unsharded.accuracy"].filter((n) => metrics.some((m) => n in m));
    new Chart(document.getElementById("metrics-chart"), {
      type: "line",
      data: {
        labels: metrics.map((_, i) => `v${i + 1}`),
        datasets: names.map((n, i) => ({
          label: n,
          data: metrics.map((m) => (n in m ? Number(m[n]) : null)),
          borderColor: PALETTE[i],
          backgroundColor: PALETTE[i],
        })),
      },
      options: { animation: false, scales: { y: { suggestedMin: 0, suggestedMax: 1 } } },
    });
  }
  const holders = jsonData("cap-data");
  if (holders) {
    const top = holders.slice(0, 12);
    const rest = holders.slice(12).reduce((n, h) => n + h.shares, 0);
    const labels = top.map((h) => h.name || h.member.slice(0, 16)).concat(rest ? ["others"] : []);
    new Chart(document.getElementById("cap-chart"), {
      type: "bar",
      data: {
        labels,
        datasets: [
          { label: "data", data: top.map((h) => h.data), backgroundColor: PALETTE[0] },
          { label: "review", data: top.map((h) => h.review), backgroundColor: PALETTE[1] },
          { label: "compute", data: top.map((h) => h.compute), backgroundColor: PALETTE[2] },
        ].concat(rest ? [{ label: "others", data: [...top.map(() => 0), rest], backgroundColor: PALETTE[3] }] : []),
      },
      options: { animation: false, indexAxis: "y", scales: { x: { stacked: true }, y: { stacked: true } } },
    });
  }
  document.body.dataset.chartsDrawn = "1";
}

draw();
