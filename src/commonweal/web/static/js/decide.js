// Decide: vote (basic, approval, ranked by drag or keyboard), seal and reveal a secret vote,
// delegate and take back a delegation, and draw the tally. Every write is an event signed
// by this browser's key, with the same kind and body the CLI signs.

import { ready, flash, loadFragments } from "./app.js";
import { act } from "./api.js";
import { canonicalBytes } from "./canonical.js";
import { sha256, toHex } from "./bytes.js";
import { PALETTE, chartJs, jsonData } from "./charts.js";

const data = jsonData("proposal-data");

// -- secret ballots: the salt stays in this browser until the vote is revealed ------------

function ballotSlot(key) {
  // Keyed by hub (its log's origin), proposal and member, as the CLI keeps one file each.
  return `commonweal:ballot:${data.origin}:${data.proposal}:${key.keyId}`;
}

function newSalt() {
  return toHex(crypto.getRandomValues(new Uint8Array(16))); // as secrets.token_hex(16)
}

/** The commitment `commonweal.community.governance.commitment` makes. */
export async function commitment(proposal, voter, choice, salt) {
  return toHex(await sha256(canonicalBytes({ proposal, voter, choice, salt })));
}

// -- the ballot --------------------------------------------------------------------------

function ranking() {
  return [...document.querySelectorAll("#ranking li")].map((li) => li.dataset.option);
}

function chosen(form) {
  if (data.choice === "basic") {
    const picked = form.querySelector("input[name=choice]:checked");
    return picked ? picked.value : null;
  }
  if (data.choice === "approval") {
    const ticked = [...form.querySelectorAll("input[name=approve]:checked")].map((i) => i.value);
    return ticked.length ? ticked : null;
  }
  return ranking();
}

function announce(text) {
  const el = document.getElementById("rank-status");
  if (el) el.textContent = text;
}

function move(li, by) {
  const list = li.parentElement;
  const items = [...list.children];
  const at = items.indexOf(li);
  const to = at + by;
  if (to < 0 || to >= items.length) return;
  if (by < 0) list.insertBefore(li, items[to]);
  else list.insertBefore(li, items[to].nextSibling);
  li.focus();
  announce(`${li.dataset.option} is now number ${to + 1} of ${items.length}`);
}

function rankingControls() {
  const list = document.getElementById("ranking");
  if (!list) return;
  list.addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    const li = button.closest("li");
    move(li, button.classList.contains("up") ? -1 : 1);
    button.focus();
  });
  list.addEventListener("keydown", (e) => {
    const li = e.target.closest("li");
    if (!li || e.target !== li) return;
    if (e.key === "ArrowUp") {
      e.preventDefault();
      move(li, -1);
    } else if (e.key === "ArrowDown") {
      e.preventDefault();
      move(li, 1);
    }
  });
  let dragged = null;
  list.addEventListener("dragstart", (e) => {
    dragged = e.target.closest("li");
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", dragged.dataset.option);
  });
  list.addEventListener("dragover", (e) => {
    e.preventDefault();
    const over = e.target.closest("li");
    if (!dragged || !over || over === dragged) return;
    const box = over.getBoundingClientRect();
    const after = e.clientY > box.top + box.height / 2;
    list.insertBefore(dragged, after ? over.nextSibling : over);
  });
  list.addEventListener("drop", (e) => {
    e.preventDefault();
    if (dragged) announce(`${dragged.dataset.option} is now number ${ranking().indexOf(dragged.dataset.option) + 1}`);
    dragged = null;
  });
}

async function vote(key, form) {
  const choice = chosen(form);
  if (choice === null) {
    flash(data.choice === "approval" ? "Tick at least one option." : "Choose for, against or abstain.", "error");
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    if (data.secret) {
      const salt = newSalt();
      const sealed = await commitment(data.proposal, key.keyId, choice, salt);
      // Keep the salt before sending: a vote the hub logged must be revealable.
      localStorage.setItem(ballotSlot(key), JSON.stringify({ choice, salt }));
      await act(key, "vote.commit", { proposal: data.proposal, commitment: sealed });
      flash(`Your vote is sealed. Reveal it after voting ends (${data.ends}); this browser keeps what you chose.`, "ok");
    } else {
      await act(key, "vote.cast", { proposal: data.proposal, choice });
      flash(`Your vote is counted: ${Array.isArray(choice) ? choice.join(", ") : choice}.`, "ok");
    }
    setTimeout(() => location.reload(), 800);
  } catch (err) {
    flash(err.message, "error");
  } finally {
    button.disabled = false;
  }
}

function revealBox(key) {
  const box = document.getElementById("reveal-box");
  if (!box) return;
  const kept = localStorage.getItem(ballotSlot(key));
  box.hidden = false;
  const said = document.getElementById("kept-choice");
  const button = document.getElementById("reveal");
  if (!kept) {
    said.textContent = "This browser holds no sealed vote of yours on this proposal (it was sealed elsewhere, or not at all).";
    button.disabled = true;
    return;
  }
  const { choice, salt } = JSON.parse(kept);
  said.textContent = `You chose: ${Array.isArray(choice) ? choice.join(", ") : choice}.`;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await act(key, "vote.reveal", { proposal: data.proposal, choice, salt });
      localStorage.removeItem(ballotSlot(key));
      flash("Your vote is revealed and counted.", "ok");
      setTimeout(() => location.reload(), 800);
    } catch (err) {
      flash(err.message, "error");
      button.disabled = false;
    }
  });
}

async function drawTally() {
  const t = jsonData("tally-data");
  const canvas = document.getElementById("tally-chart");
  if (!t || !canvas) return;
  const Chart = await chartJs();
  const labels = Object.keys(t.counts);
  new Chart(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: [{ label: "weight", data: labels.map((l) => t.counts[l]), backgroundColor: labels.map((_, i) => PALETTE[i % PALETTE.length]) }],
    },
    options: { animation: false, maintainAspectRatio: false, indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  document.body.dataset.tallyDrawn = "1";
}

// -- delegation --------------------------------------------------------------------------

function delegation(key) {
  const form = document.getElementById("delegate-form");
  const box = document.getElementById("delegation");
  if (!form || !box) return;
  form.hidden = false;
  // My own name is no choice.
  form.querySelector(`option[value="${key.keyId}"]`)?.remove();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const to = form.elements.to.value;
    if (!to) {
      flash("Choose the member to delegate to.", "error");
      return;
    }
    try {
      await act(key, "delegate.set", { to });
      flash(`You delegate your vote to ${form.elements.to.selectedOptions[0].textContent}.`, "ok");
      await loadFragments(key, box.parentElement);
    } catch (err) {
      flash(err.message, "error");
    }
  });
  box.addEventListener("click", async (e) => {
    if (e.target.id !== "undelegate") return;
    try {
      await act(key, "delegate.set", { to: null });
      flash("You took back your vote: you vote for yourself again.", "ok");
      await loadFragments(key, box.parentElement);
    } catch (err) {
      flash(err.message, "error");
    }
  });
}

async function main() {
  if (data) drawTally().catch((err) => flash(err.message, "error"));
  const { key, member } = await ready;
  const active = key && member && member.status === "active";
  if (active) delegation(key);
  if (!data) {
    document.body.dataset.decideReady = "1";
    return;
  }
  if (key) document.querySelector(`table.power tr[data-member="${key.keyId}"]`)?.classList.add("mine");
  const form = document.getElementById("ballot");
  if (form && active) {
    form.hidden = false;
    rankingControls();
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      vote(key, form);
    });
  }
  if (active && data.secret && data.phase === "revealing") revealBox(key);
  document.body.dataset.decideReady = "1";
}

main();
