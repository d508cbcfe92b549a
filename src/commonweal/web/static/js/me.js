// My page: my items (paged, filtered), my statement and my items' values, and the acts
// that are mine alone. Each act is signed here with the browser's key, as the same event
// the CLI signs: `contribution.withdraw` {items}, `member.leave` {}.

import { act, get, signedFetch } from "./api.js";
import { flash, loadFragments, ready } from "./app.js";
import { PALETTE, chartJs, jsonData } from "./charts.js";
import { download } from "./keys.js";

const $ = (id) => document.getElementById(id);
let chart = null;

/** The items fragment's URL for the filter and page in `search` (`?status=&page=`). */
function itemsPath(search) {
  const q = new URLSearchParams(search);
  const out = new URLSearchParams();
  if (q.get("status")) out.set("status", q.get("status"));
  if (q.get("page") && q.get("page") !== "1") out.set("page", q.get("page"));
  const s = out.toString();
  return "/w/me/items" + (s ? `?${s}` : "");
}

async function drawValues() {
  const data = jsonData("values-data");
  const canvas = $("values-chart");
  if (chart) chart.destroy();
  chart = null;
  if (!data || !canvas || !data.counts.length) return;
  const Chart = await chartJs();
  const fmt = (x) => Number(x).toPrecision(2);
  chart = new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.counts.map((_, i) => `${fmt(data.edges[i])} to ${fmt(data.edges[i + 1])}`),
      datasets: [{ label: "items", data: data.counts, backgroundColor: PALETTE[0] }],
    },
    options: {
      animation: false,
      plugins: { legend: { display: false } },
      scales: { x: { title: { display: true, text: "value" } }, y: { title: { display: true, text: "items" }, beginAtZero: true } },
    },
  });
  document.body.dataset.valuesDrawn = "1";
}

async function reload(key, ...ids) {
  for (const id of ids) await loadFragments(key, $(id));
  if (ids.includes("me-summary")) await drawValues();
}

/** Ask, in the withdraw dialog, before erasing `items` (resolves true to go ahead). */
function confirmWithdraw(what, count) {
  const dialog = $("withdraw-dialog");
  $("withdraw-what").textContent = what;
  $("withdraw-count").textContent = count > 1 ? `${count} items will be erased.` : "";
  dialog.showModal();
  $("withdraw-cancel").focus();
  return new Promise((resolve) => {
    const done = (yes) => {
      $("withdraw-confirm").removeEventListener("click", yes_);
      $("withdraw-cancel").removeEventListener("click", no_);
      dialog.removeEventListener("cancel", no_);
      dialog.close();
      resolve(yes);
    };
    const yes_ = () => done(true);
    const no_ = () => done(false);
    $("withdraw-confirm").addEventListener("click", yes_);
    $("withdraw-cancel").addEventListener("click", no_);
    dialog.addEventListener("cancel", no_);
  });
}

async function withdraw(key, ids, what) {
  if (!(await confirmWithdraw(what, ids.length))) return;
  try {
    const res = await act(key, "contribution.withdraw", { items: ids });
    const entry = res.entries[0].index;
    flash(
      `Withdrew ${ids.length} item${ids.length === 1 ? "" : "s"} (log entry ${entry}): ` +
        "content and keys deleted; the next model version unlearns " + (ids.length === 1 ? "it." : "them."),
      "ok",
    );
    await reload(key, "me-items", "me-summary", "me-leave");
  } catch (err) {
    flash(`Nothing was withdrawn: ${err.message}`, "error");
  }
}

async function withdrawAll(key) {
  // As `commonweal withdraw --all`: every item of mine not yet withdrawn.
  const { contributions } = await get(`/api/v1/contributions?member=${key.keyId}&limit=100000`);
  const ids = contributions.filter((r) => r.status !== "withdrawn").map((r) => r.id);
  if (!ids.length) {
    flash("You have nothing left to withdraw.", "info");
    return;
  }
  await withdraw(key, ids, `all ${ids.length} of your items`);
}

async function exportAll(key, member) {
  const button = $("export");
  button.disabled = true;
  button.textContent = "Preparing your export…";
  try {
    const doc = await signedFetch(key, `/api/v1/members/${key.keyId}/export`);
    const name = (member.name || key.keyId.slice(0, 16)).replace(/[^\p{L}\p{N}_-]+/gu, "-");
    download(`commonweal-export-${name}.json`, JSON.stringify(doc, null, 1));
    flash(`Exported ${doc.contributions.length} items and ${doc.events.length} log entries.`, "ok");
  } catch (err) {
    flash(`The export failed: ${err.message}`, "error");
  } finally {
    button.disabled = false;
    button.textContent = "Download everything about me";
  }
}

async function leave(key) {
  const dialog = $("leave-dialog");
  dialog.close();
  try {
    const res = await act(key, "member.leave", {});
    flash(`You have left (log entry ${res.entries[0].index}); your items are erased.`, "ok");
    $("me-member").hidden = true;
    const why = $("me-visitor-why");
    why.textContent = "This key has left the community and can no longer act here.";
    $("me-visitor").hidden = false;
  } catch (err) {
    flash(`You have not left: ${err.message}`, "error");
  }
}

async function main() {
  const { key, member } = await ready;
  $("me-loading").hidden = true;
  if (!key || !member || member.status !== "active") {
    $("me-visitor").hidden = false;
    if (key) {
      $("me-visitor-why").textContent = member
        ? `The key in this browser belongs to ${member.name}, whose membership is ${member.status}.`
        : "The key in this browser is not a member of this community.";
    }
    return;
  }
  $("me-member").hidden = false;
  const items = $("me-items");
  const first = itemsPath(location.search);
  if (first !== items.dataset.fragment) {
    items.dataset.fragment = first;
    await loadFragments(key, items);
  }
  const notify = $("me-notify");
  if (notify.querySelector("[data-optional][hidden]")) notify.hidden = true;
  await drawValues();

  // Filters and pages: fetch the fragment again (signed) and keep the URL shareable.
  items.addEventListener("click", async (e) => {
    const link = e.target.closest("a[data-page], a[data-status]");
    const button = e.target.closest("button[data-withdraw]");
    if (link) {
      e.preventDefault();
      const url = new URL(link.href);
      history.pushState(null, "", url.pathname + url.search);
      items.dataset.fragment = itemsPath(url.search);
      await loadFragments(key, items);
      $("h-items").scrollIntoView();
    } else if (button) {
      const id = button.dataset.withdraw;
      await withdraw(key, [id], `item ${id.slice(0, 16)}…`);
    }
  });
  window.addEventListener("popstate", async () => {
    items.dataset.fragment = itemsPath(location.search);
    await loadFragments(key, items);
  });
  $("withdraw-all").addEventListener("click", () => withdrawAll(key));
  $("export").addEventListener("click", () => exportAll(key, member));
  $("me-leave").addEventListener("click", (e) => {
    if (e.target.id === "leave-open") $("leave-dialog").showModal();
    else if (e.target.id === "leave-cancel") $("leave-dialog").close();
    else if (e.target.id === "leave-confirm") leave(key);
  });
  document.body.dataset.meReady = "1";
}

main();
