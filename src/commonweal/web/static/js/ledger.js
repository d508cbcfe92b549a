// The entry page's "Verify in my browser": fetch the entry, the checkpoint and the proof,
// run verify.js over them, and show each check with what it compared.

import { jsonData } from "./charts.js";
import { fromBase64 } from "./bytes.js";
import { noteText, parseCheckpoint, verifyEntry } from "./verify.js";

async function fetchText(path) {
  const resp = await fetch(path);
  if (!resp.ok) throw new Error(`${path} answered ${resp.status}`);
  return resp.text();
}

async function fetchJson(path) {
  const resp = await fetch(path, { headers: { Accept: "application/json" } });
  if (!resp.ok) throw new Error(`${path} answered ${resp.status}`);
  return resp.json();
}

function show(out, steps) {
  const failed = steps.filter((s) => !s.ok);
  const verdict = document.createElement("p");
  verdict.id = "verify-verdict";
  verdict.className = failed.length ? "error" : "ok";
  verdict.textContent = failed.length
    ? `✗ Not verified: ${failed.map((s) => s.title.toLowerCase()).join(", ")} failed.`
    : "✓ Verified: this entry is in the log the hub signed, and its signer signed it.";
  const list = document.createElement("ol");
  list.className = "steps";
  for (const s of steps) {
    const li = document.createElement("li");
    li.dataset.step = s.id;
    li.dataset.ok = s.ok ? "yes" : "no";
    const mark = document.createElement("span");
    mark.className = s.ok ? "mark ok" : "mark error";
    mark.textContent = s.ok ? "✓" : "✗";
    mark.setAttribute("aria-label", s.ok ? "passed" : "failed");
    const title = document.createElement("strong");
    title.textContent = ` ${s.title}: `;
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = s.detail;
    li.append(mark, title, detail);
    list.append(li);
  }
  out.replaceChildren(verdict, list);
}

async function verify(button, out) {
  const data = jsonData("entry-data");
  button.disabled = true;
  out.replaceChildren();
  const working = document.createElement("p");
  working.textContent = "Checking…";
  out.append(working);
  try {
    const input = document.getElementById("verifier-key");
    const verifierKey = input.value.trim() || (await fetchText("/api/v1/ledger/key"));
    const note = await fetchText("/api/v1/ledger/checkpoint");
    // The proof must be for the checkpoint's tree: read its size (the signature is checked
    // with everything else below), then ask for the proof in a tree of that size.
    let size;
    try {
      size = parseCheckpoint(noteText(note)).size;
    } catch {
      size = null;
    }
    const proofPath = `/api/v1/ledger/proof/inclusion?index=${data.index}` + (size ? `&size=${size}` : "");
    const [proof, entries] = await Promise.all([
      fetchJson(proofPath),
      fetchJson(`/api/v1/ledger/entries?start=${data.index}&end=${data.index + 1}`),
    ]);
    const got = entries.entries[0];
    const entry = { index: got.index, leaf: fromBase64(got.leaf), sig: got.sig };
    show(out, await verifyEntry({ entry, shown: data.event, proof, note, verifierKey }));
  } catch (err) {
    const p = document.createElement("p");
    p.className = "error";
    p.id = "verify-verdict";
    p.textContent = `✗ Could not verify: ${err.message}`;
    out.replaceChildren(p);
  } finally {
    button.disabled = false;
  }
}

const button = document.getElementById("verify");
const out = document.getElementById("verify-result");
if (button && out) button.addEventListener("click", () => verify(button, out));
