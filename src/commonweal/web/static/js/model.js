// The model page: every version's metrics as a chart, and "try it" for members (an unbilled
// prediction, signed by the member's key: POST /api/v1/models/{v}/try).

import { ready, flash } from "./app.js";
import { signedFetch } from "./api.js";
import { PALETTE, chartJs, jsonData } from "./charts.js";

const PERCENT = new Set(["accuracy", "macro_f1"]);

async function drawChart() {
  const series = jsonData("versions-data");
  const canvas = document.getElementById("versions-chart");
  if (!series || !canvas) return;
  const Chart = await chartJs();
  const names = ["accuracy", "macro_f1", "unsharded.accuracy", "r2", "unsharded.r2"].filter((n) =>
    series.some((s) => n in s.metrics),
  );
  new Chart(canvas, {
    type: "line",
    data: {
      labels: series.map((s) => `v${s.version}`),
      datasets: names.map((n, i) => ({
        label: n.replace("unsharded.", "unsharded ").replace("macro_f1", "macro F1"),
        data: series.map((s) => (n in s.metrics ? s.metrics[n] : null)),
        borderColor: PALETTE[i],
        backgroundColor: PALETTE[i],
        borderDash: n.startsWith("unsharded.") ? [6, 4] : [],
      })),
    },
    options: {
      animation: false,
      // Shares of 1 stay under 1; the axis starts near the lowest value, so that the few
      // points between versions show.
      scales: { y: names.some((n) => PERCENT.has(n.replace("unsharded.", ""))) ? { suggestedMax: 1 } : {} },
    },
  });
  canvas.dataset.drawn = "1";
}

/** A PNG (base64, no data: prefix) of `file`, scaled down to fit width × height. */
async function imageInput(file, width, height) {
  const bitmap = await createImageBitmap(file);
  const type = file.type === "image/jpeg" ? "image/jpeg" : "image/png";
  if (bitmap.width <= width && bitmap.height <= height && (type === "image/png" || type === "image/jpeg")) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return { image: btoa(s), preview: URL.createObjectURL(file) };
  }
  const scale = Math.min(width / bitmap.width, height / bitmap.height);
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const url = canvas.toDataURL("image/png");
  return { image: url.slice(url.indexOf(",") + 1), preview: url };
}

async function readInput(form, task) {
  if (task.kind === "text-classification") {
    return { text: form.querySelector("#try-text").value };
  }
  if (task.kind === "image-classification") {
    const file = form.querySelector("#try-image").files[0];
    if (!file) throw new Error("choose an image first");
    const { image, preview } = await imageInput(file, task.image_width, task.image_height);
    const img = document.getElementById("try-preview");
    img.src = preview;
    img.hidden = false;
    return { image };
  }
  const features = {};
  for (const el of form.querySelectorAll("[data-column]")) features[el.dataset.column] = el.value.trim();
  return { features };
}

function showResult(out, prediction) {
  out.replaceChildren();
  const h = document.createElement("h3");
  h.textContent = "The model says";
  const answer = document.createElement("p");
  answer.className = "prediction";
  const strong = document.createElement("strong");
  strong.id = "try-label";
  if ("label" in prediction) {
    strong.textContent = prediction.label;
    answer.append(strong, ` (${(100 * prediction.score).toFixed(1)}% sure)`);
  } else {
    strong.textContent = String(prediction.value);
    answer.append(strong);
  }
  out.append(h, answer);
  if (prediction.top) {
    const table = document.createElement("table");
    table.id = "try-top";
    const caption = table.createCaption();
    caption.textContent = "How likely the model finds each label";
    const head = table.createTHead().insertRow();
    for (const t of ["Label", "Probability"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = t;
      head.append(th);
    }
    const body = table.createTBody();
    for (const t of prediction.top) {
      const row = body.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = t.label;
      const td = row.insertCell();
      const meter = document.createElement("meter");
      meter.min = 0;
      meter.max = 1;
      meter.value = t.score;
      meter.setAttribute("aria-label", `${t.label}: ${(100 * t.score).toFixed(1)}%`);
      td.append(meter, ` ${(100 * t.score).toFixed(1)}%`);
      row.prepend(th);
    }
    out.append(table);
  }
  out.dataset.done = "1";
}

async function setUpTry() {
  const form = document.getElementById("try-form");
  if (!form) return;
  const task = jsonData("task-data");
  const { key, member } = await ready;
  if (!key || !member || member.status !== "active") {
    const p = document.getElementById("try-signin");
    if (key && member) p.textContent = `Trying the model is for active members; you are ${member.status}.`;
    p.hidden = false;
    return;
  }
  form.hidden = false;
  const image = form.querySelector("#try-image");
  if (image) {
    image.addEventListener("change", () => {
      document.getElementById("try-preview").hidden = true;
    });
  }
  const out = document.getElementById("try-result");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    delete out.dataset.done;
    out.textContent = "Asking the model…";
    try {
      const input = await readInput(form, task);
      const res = await signedFetch(key, `/api/v1/models/${form.dataset.version}/try`, {
        method: "POST",
        body: { inputs: [input] },
      });
      showResult(out, res.predictions[0]);
    } catch (err) {
      out.replaceChildren();
      const p = document.createElement("p");
      p.className = "error";
      p.id = "try-error";
      p.textContent = err.message;
      out.append(p);
      flash(err.message, "error");
    } finally {
      button.disabled = false;
    }
  });
}

drawChart().catch((err) => flash(err.message, "error"));
setUpTry();
