// The review page: fetch the next item for me (a signed fragment the hub renders, escaped),
// take a verdict from a button or a key (1-9 label, a accept, r reject, s skip), sign the
// `review.submit` event `commonweal review` signs, and move on to the next item. Skipped
// items are not offered again in this visit (the hub is asked for the next one not skipped).

import { ready, flash } from "./app.js";
import { get, post, signedFetch } from "./api.js";
import { signEvent } from "./sign.js";

const $ = (id) => document.getElementById(id);
const DONE = { accept: "accepted", reject: "rejected", relabel: "relabelled", skip: "skipped" };
const skipped = [];
const session = {};
let key = null;
let current = null; // {id, proposed}
let busy = false;

function labelKeys() {
  const el = $("review-labels");
  return el ? JSON.parse(el.textContent) : [];
}

function showCounts(card) {
  $("left").textContent = `${card.dataset.left} item${card.dataset.left === "1" ? "" : "s"}` +
    (skipped.length ? ` (and ${skipped.length} you skipped)` : "");
  $("reviewed").textContent = card.dataset.reviewed;
}

function showSession() {
  // Always in the same order (accepted, rejected, relabelled, skipped), whichever came first.
  const said = Object.keys(DONE).filter((v) => session[v]).map((v) => `${session[v]} ${DONE[v]}`);
  $("session").textContent = said.length ? said.join(", ") : "nothing yet";
}

async function next() {
  const slot = $("review-item");
  const path = slot.dataset.review + (skipped.length ? `?skip=${skipped.join(",")}` : "");
  try {
    slot.innerHTML = await signedFetch(key, path, { accept: "text/html" });
  } catch (err) {
    slot.textContent = err.message;
    slot.classList.add("error");
    return;
  }
  const card = slot.firstElementChild;
  showCounts(card);
  current = card.dataset.item ? { id: card.dataset.item, proposed: card.dataset.proposed } : null;
  $("verdicts").hidden = !current;
  for (const b of document.querySelectorAll("#verdicts button")) {
    b.disabled = false;
    b.classList.toggle("proposed", current !== null && b.dataset.label === current.proposed);
  }
  document.body.dataset.reviewItem = current ? current.id : "";
}

async function reliability() {
  try {
    const { reviewers } = await get("/api/v1/reviews/reliability");
    const me = reviewers.find((r) => r.key === key.keyId);
    $("reliability").textContent = me
      ? `${me.reliability_pct.toFixed(1)}%`
      : "not estimated yet (it needs your reviews of items the community has decided)";
  } catch (err) {
    $("reliability").textContent = err.message;
  }
}

/** Sign and send one verdict (or skip), then show the next item. */
async function answer(verdict, label) {
  if (!current || busy) return;
  busy = true;
  for (const b of document.querySelectorAll("#verdicts button")) b.disabled = true;
  const item = current.id;
  try {
    if (verdict === "skip") {
      skipped.push(item);
      flash(`Skipped ${item.slice(0, 16)}… for now.`);
    } else {
      if (verdict === "relabel" && label === current.proposed) verdict = "accept";
      const body = { item, verdict };
      if (verdict === "relabel") body.label = label;
      await post("/api/v1/reviews", await signEvent(key, "review.submit", body));
      flash(`Recorded: ${verdict}${verdict === "relabel" ? ` as ${label}` : ""} (item ${item.slice(0, 16)}…).`, "ok");
    }
    session[verdict] = (session[verdict] || 0) + 1;
    showSession();
    await next();
    if (verdict !== "skip") reliability();
  } catch (err) {
    flash(`The hub did not take your verdict: ${err.message}`, "error");
    for (const b of document.querySelectorAll("#verdicts button")) b.disabled = false;
  } finally {
    busy = false;
  }
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  const t = e.target;
  if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
  const k = e.key.toLowerCase();
  const pick = labelKeys().find(([shortcut]) => shortcut && shortcut === k);
  let done = true;
  if (pick) answer("relabel", pick[1]);
  else if (k === "a") answer("accept");
  else if (k === "r") answer("reject");
  else if (k === "s") answer("skip");
  else done = false;
  if (done) e.preventDefault();
}

async function main() {
  const slot = $("review-item");
  if (!slot) return;
  const state = await ready;
  key = state.key;
  if (!key || !state.member || state.member.status !== "active") {
    slot.replaceChildren();
    const p = document.createElement("p");
    const a = document.createElement("a");
    a.href = "/join";
    a.textContent = "join with an invite, or sign in with your key file";
    p.append("Reviewing is for active members: ", a, ".");
    slot.append(p);
    document.body.dataset.reviewItem = "";
    return;
  }
  for (const b of document.querySelectorAll("#verdicts [data-verdict]")) {
    b.addEventListener("click", () => answer(b.dataset.verdict));
  }
  for (const b of document.querySelectorAll("#verdicts [data-label]")) {
    b.addEventListener("click", () => answer("relabel", b.dataset.label));
  }
  document.addEventListener("keydown", onKey);
  await Promise.all([next(), reliability()]);
}

main();
