// The contribute page: read a dropped or chosen file (CSV, JSONL, or a folder of images with
// labels.csv) as the CLI reads it, check every item against the charter as the hub will
// (commonweal.items.check_item), and only then make the salted commitments, sign each batch
// as HubClient.contribute does and send it, with a progress bar across batches. The hub's
// receipt is shown item by item.

import { dropZone } from "./drop.js";
import { ready, flash } from "./app.js";
import { post } from "./api.js";
import { canonical } from "./canonical.js";
import { toBase64 } from "./bytes.js";
import { csvObjects, CsvError } from "./csv.js";
import { describeItem } from "./items.js";
import { signEvent } from "./sign.js";

const rulesEl = document.getElementById("upload-rules");
const RULES = rulesEl ? JSON.parse(rulesEl.textContent) : null;
const TASK = RULES ? RULES.task : null;
const LIMIT = RULES ? RULES.limits.max_item_bytes : 0;
// The CLI's default batch; the charter may allow fewer. Smaller batches show progress
// sooner and keep each request well under the hub's body limit.
const BATCH_ITEMS = RULES ? Math.min(100, RULES.limits.max_batch_items) : 100;
const BODY_BUDGET = RULES ? Math.floor(RULES.max_body_bytes * 0.9) : 0;
const MAX_FILE_BYTES = 256 * 1024 * 1024; // beyond this a browser tab struggles
const SHOWN_PROBLEMS = 25;
const SHOWN_ROWS = 2000;

const $ = (id) => document.getElementById(id);
const utf8 = new TextEncoder();
const bytesOf = (s) => utf8.encode(s).length;

let prepared = null; // {items, lines, source} once a file passed every check
let member = null;

// -- reading ------------------------------------------------------------------------------

/** `[{file, path}]` from a drop: files, or a folder walked (entries must be taken at once). */
async function droppedFiles(dt) {
  const entries = [...(dt.items || [])].map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  if (!entries.length || entries.some((e) => !e)) return [...dt.files].map((file) => ({ file, path: file.name }));
  const out = [];
  async function walk(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((ok, fail) => entry.file(ok, fail));
      out.push({ file, path: prefix + entry.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
        if (!batch.length) break;
        for (const e of batch) await walk(e, `${prefix}${entry.name}/`);
      }
    }
  }
  for (const e of entries) await walk(e, "");
  return out;
}

function fromInput(input) {
  return [...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
}

class Problems {
  constructor() {
    this.list = [];
  }
  add(where, message) {
    this.list.push(where ? `${where}: ${message}` : message);
  }
}

/** Items from the chosen files, as `commonweal contribute` reads them (cli/data.py). */
async function readItems(files, problems) {
  const kind = TASK.kind;
  const labels = files.find((f) => f.path.split("/").pop() === "labels.csv");
  if (files.length > 1 || labels) {
    if (kind !== "image-classification") {
      problems.add("", `this community's task is ${kind}: send one CSV or JSONL file, not a folder`);
      return null;
    }
    if (!labels) {
      problems.add("", "a folder of images needs a labels.csv file (columns file,label[,caption])");
      return null;
    }
    return readImageFolder(files, labels, problems);
  }
  const { file, path } = files[0];
  if (file.size > MAX_FILE_BYTES) {
    problems.add(path, `is ${file.size} bytes; a browser upload takes at most ${MAX_FILE_BYTES} (use the CLI)`);
    return null;
  }
  const text = await file.text();
  if (path.endsWith(".jsonl")) return readJsonl(text, path, problems);
  if (path.endsWith(".csv")) return readCsv(text, path, problems);
  problems.add(path, "contribute takes a .csv or .jsonl file, or a folder of images with labels.csv");
  return null;
}

function needColumns() {
  if (TASK.kind === "text-classification") return ["text", "label"];
  if (TASK.kind.startsWith("tabular")) return [...TASK.columns.map((c) => c.name), TASK.target];
  return null; // images come as a folder, or as JSONL
}

function readCsv(text, path, problems) {
  let parsed;
  try {
    parsed = csvObjects(text);
  } catch (err) {
    if (err instanceof CsvError) problems.add(path, err.message);
    else throw err;
    return null;
  }
  const need = needColumns();
  if (!need) {
    problems.add(path, "an image community takes a folder of images with labels.csv, or a JSONL file");
    return null;
  }
  const missing = need.filter((c) => !parsed.columns.includes(c));
  if (missing.length) {
    problems.add(
      path,
      `its columns are ${parsed.columns.join(", ") || "(none)"}; this community's items need the columns ` +
        `${need.join(", ")} (missing ${missing.join(", ")})`,
    );
    return null;
  }
  return parsed.rows.map(({ line, row, extra }) => {
    if (extra) problems.add(`${path} line ${line}`, `has ${extra} more field(s) than the header names`);
    return { where: `${path} line ${line}`, item: shape(row) };
  });
}

function readJsonl(text, path, problems) {
  const out = [];
  text.split(/\r?\n/).forEach((line, n) => {
    if (!line.trim()) return;
    const where = `${path} line ${n + 1}`;
    let row;
    try {
      row = JSON.parse(line);
    } catch {
      problems.add(where, "is not a JSON object");
      return;
    }
    if (!row || typeof row !== "object" || Array.isArray(row)) {
      problems.add(where, "is not a JSON object");
      return;
    }
    if (typeof row === "object") {
      // Numbers travel as decimal strings: the log's canonical JSON has no floats.
      for (const [k, v] of Object.entries(row)) if (typeof v === "number" && !Number.isInteger(v)) row[k] = String(v);
    }
    out.push({ where, item: shape(row) });
  });
  return out;
}

/** A row as the item the hub expects (cli/data.py `_shape`). */
function shape(row) {
  const kind = TASK.kind;
  if (kind === "text-classification") return { text: row.text, label: row.label };
  if (kind.startsWith("tabular")) {
    if ("features" in row) return row;
    const features = {};
    for (const c of TASK.columns) features[c.name] = row[c.name];
    return { features, target: row[TASK.target] };
  }
  return row;
}

async function readImageFolder(files, labels, problems) {
  const dir = labels.path.slice(0, labels.path.length - "labels.csv".length);
  // Only files the member dropped can be named: a row's path is looked up among them, so
  // "..", an absolute path or a device never reaches a read. Sizes are checked before
  // any bytes are read, as the CLI does.
  const byPath = new Map(files.map((f) => [f.path, f.file]));
  if (labels.file.size > MAX_FILE_BYTES) {
    problems.add(labels.path, `is ${labels.file.size} bytes; a browser upload takes at most ${MAX_FILE_BYTES}`);
    return null;
  }
  let parsed;
  try {
    parsed = csvObjects(await labels.file.text());
  } catch (err) {
    if (err instanceof CsvError) problems.add(labels.path, err.message);
    else throw err;
    return null;
  }
  if (!parsed.columns.includes("file") || !parsed.columns.includes("label")) {
    problems.add(labels.path, `its columns are ${parsed.columns.join(", ") || "(none)"}; it needs file and label (and optionally caption)`);
    return null;
  }
  const out = [];
  for (const { line, row } of parsed.rows) {
    const where = `${labels.path} line ${line}`;
    const file = byPath.get(dir + row.file);
    if (!file) {
      problems.add(where, `names ${JSON.stringify(row.file)}, which is not in the folder`);
      continue;
    }
    if (file.size > LIMIT) {
      // An item is at most LIMIT bytes with its base64 image: a larger file cannot fit.
      problems.add(where, `${JSON.stringify(row.file)} is ${file.size} bytes; an item is at most ${LIMIT}`);
      continue;
    }
    const item = { image: toBase64(new Uint8Array(await file.arrayBuffer())), label: row.label };
    if (row.caption) item.caption = row.caption;
    out.push({ where: `${where} (${row.file})`, item });
  }
  return out;
}

// -- checking (as commonweal.items.check_item) -----------------------------------------

// Control, surrogate, private-use and unassigned characters, or U+FFFD; tab and newlines pass.
const BINARY = /[\p{Cc}\p{Cs}\p{Co}\p{Cn}\uFFFD]/u;

function checkText(value, where, what, problems, { max, required = true }) {
  if (typeof value !== "string") {
    problems.add(where, value === undefined || value === null ? `${what} is missing` : `${what} must be text`);
    return;
  }
  if (required && !value.trim()) problems.add(where, `${what} is empty`);
  const n = bytesOf(value);
  if (n > max) problems.add(where, `${what} is ${n} bytes; the charter allows ${max}`);
  for (const ch of value) {
    if (ch === "\t" || ch === "\n" || ch === "\r") continue;
    if (BINARY.test(ch)) {
      const hex = ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
      problems.add(where, `${what} holds binary or control characters (U+${hex}); send text`);
      return;
    }
  }
}

function isNumber(value) {
  if (Number.isInteger(value)) return true;
  return typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value));
}

async function checkImage(value, where, problems) {
  if (typeof value !== "string") {
    problems.add(where, "the image must be a base64 PNG or JPEG");
    return;
  }
  let raw;
  try {
    raw = Uint8Array.from(atob(value), (c) => c.charCodeAt(0));
  } catch {
    problems.add(where, "the image is not base64");
    return;
  }
  const png = raw[0] === 0x89 && raw[1] === 0x50 && raw[2] === 0x4e && raw[3] === 0x47;
  const jpeg = raw[0] === 0xff && raw[1] === 0xd8 && raw[2] === 0xff;
  let bitmap = null;
  if (png || jpeg) {
    try {
      bitmap = await createImageBitmap(new Blob([raw], { type: png ? "image/png" : "image/jpeg" }));
    } catch {
      bitmap = null;
    }
  }
  if (!bitmap) {
    problems.add(where, "the image is not a readable PNG or JPEG image");
    return;
  }
  const { width, height } = bitmap;
  bitmap.close();
  if (width > TASK.image_width || height > TASK.image_height) {
    problems.add(where, `the image is ${width}x${height} pixels; the charter allows at most ${TASK.image_width}x${TASK.image_height}`);
  }
}

function exactKeys(item, where, required, optional, problems) {
  const keys = Object.keys(item);
  const missing = required.filter((k) => !(k in item) || item[k] === undefined);
  const extra = keys.filter((k) => !required.includes(k) && !optional.includes(k));
  if (missing.length || extra.length) {
    problems.add(
      where,
      `a ${TASK.kind} item has the fields ${required.join(", ")}` +
        (optional.length ? ` (and optionally ${optional.join(", ")})` : "") +
        (missing.length ? `; missing ${missing.join(", ")}` : "") +
        (extra.length ? `; unexpected ${extra.join(", ")}` : ""),
    );
    return false;
  }
  return true;
}

async function checkItem(item, where, problems) {
  const kind = TASK.kind;
  const before = problems.list.length;
  if (kind === "text-classification") {
    if (!exactKeys(item, where, ["text", "label"], [], problems)) return;
    checkText(item.text, where, "the text", problems, { max: LIMIT });
  } else if (kind === "image-classification") {
    if (!exactKeys(item, where, ["image", "label"], ["caption"], problems)) return;
    await checkImage(item.image, where, problems);
    if ("caption" in item) checkText(item.caption, where, "the caption", problems, { max: 1000, required: false });
  } else {
    if (!exactKeys(item, where, ["features", "target"], [], problems)) return;
    const feats = item.features;
    const names = TASK.columns.map((c) => c.name);
    if (!feats || typeof feats !== "object" || Object.keys(feats).sort().join() !== [...names].sort().join()) {
      problems.add(where, `needs exactly the columns ${names.join(", ")}`);
      return;
    }
    for (const col of TASK.columns) {
      const v = feats[col.name];
      if (col.type === "numeric") {
        if (!isNumber(v)) problems.add(where, `${col.name} must be a number (got ${JSON.stringify(v ?? null)})`);
      } else {
        checkText(v, where, col.name, problems, { max: 200 });
        if (col.categories.length && typeof v === "string" && !col.categories.includes(v)) {
          problems.add(where, `${col.name}: ${JSON.stringify(v)} is not one of ${col.categories.join(", ")}`);
        }
      }
    }
    if (kind === "tabular-regression" && !isNumber(item.target)) {
      problems.add(where, `${TASK.target} must be a number`);
    }
  }
  const label = kind === "tabular-classification" ? item.target : item.label;
  if ((kind === "tabular-classification" || "label" in item) && !TASK.labels.includes(label)) {
    problems.add(where, `the label ${JSON.stringify(label ?? null)} is not one of ${TASK.labels.join(", ")}`);
  }
  if (problems.list.length === before) {
    const n = bytesOf(canonical(item));
    if (n > LIMIT) problems.add(where, `is ${n} bytes; the charter's limit is ${LIMIT} bytes per item`);
  }
}

// -- the page ---------------------------------------------------------------------------

function showProblems(list) {
  const ul = $("problems");
  ul.replaceChildren();
  for (const p of list.slice(0, SHOWN_PROBLEMS)) {
    const li = document.createElement("li");
    li.textContent = p;
    ul.append(li);
  }
  if (list.length > SHOWN_PROBLEMS) {
    const li = document.createElement("li");
    li.textContent = `… and ${list.length - SHOWN_PROBLEMS} more problems`;
    ul.append(li);
  }
  ul.hidden = !list.length;
}

function canSend() {
  $("send").disabled = !(prepared && member && member.status === "active");
}

async function take(files) {
  prepared = null;
  canSend();
  $("report").hidden = true;
  flash("");
  const checked = $("checked");
  if (!files.length) return;
  const source = files.length === 1 ? files[0].path : files[0].path.split("/")[0] || "the folder";
  checked.className = "";
  checked.textContent = `Reading and checking ${source}…`;
  const problems = new Problems();
  const rows = await readItems(files, problems);
  if (rows) {
    if (!rows.length && !problems.list.length) problems.add(source, "holds no items");
    const day = RULES.limits.max_items_per_member_per_day;
    if (rows.length > day) problems.add(source, `holds ${rows.length} items; a member may send at most ${day} a day`);
    for (const { where, item } of rows) await checkItem(item, where, problems);
  }
  showProblems(problems.list);
  if (problems.list.length) {
    checked.className = "error";
    checked.textContent = `${source}: ${problems.list.length} problem${problems.list.length === 1 ? "" : "s"} to fix; nothing was sent.`;
    flash(`Nothing was sent: fix the problems listed below and choose the file again.`, "error");
    return;
  }
  prepared = { items: rows.map((r) => r.item), lines: rows.map((r) => r.where), source };
  checked.className = "ok";
  checked.textContent = `${source}: ${rows.length} item${rows.length === 1 ? "" : "s"} ready to send.`;
  canSend();
  if (!member) flash("Sign in (or join) to send: your key signs each batch.", "error");
}

function consent() {
  return [...document.querySelectorAll("input[name=consent]:checked")].map((i) => i.value);
}

/** Cut the described items into batches within the charter's and the hub's limits. */
function batches(described) {
  const out = [];
  let cur = [];
  let size = 0;
  for (const d of described) {
    const n = bytesOf(JSON.stringify(d.meta)) + bytesOf(JSON.stringify(d.part)) + 8;
    if (cur.length && (cur.length >= BATCH_ITEMS || size + n > BODY_BUDGET)) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(d);
    size += n;
  }
  if (cur.length) out.push(cur);
  return out;
}

function setProgress(value, words) {
  $("progress").value = value;
  $("progress-words").textContent = words;
}

async function send(key) {
  const { items, lines } = prepared;
  const license = $("license").value;
  const scopes = consent();
  $("send").disabled = true;
  $("sending").hidden = false;
  setProgress(0, "Making salted commitments…");
  const described = [];
  for (let n = 0; n < items.length; n++) {
    const [meta, part] = await describeItem(items[n], { taskKind: TASK.kind, license, consent: scopes });
    described.push({ meta, part, where: lines[n] });
  }
  const parts = batches(described);
  const results = [];
  let failed = null;
  for (let b = 0; b < parts.length; b++) {
    const batch = parts[b];
    const signed = await signEvent(key, "contribution.submit", { items: batch.map((d) => d.meta) });
    const doc = { ...signed, content: batch.map((d) => d.part) };
    const label = `Batch ${b + 1} of ${parts.length}`;
    setProgress(b / parts.length, `${label}: sending…`);
    try {
      const receipt = await post("/api/v1/contributions", doc, {
        onProgress: (f) => {
          setProgress((b + 0.5 * f) / parts.length, f < 1 ? `${label}: sending…` : `${label}: the hub is screening…`);
        },
      });
      receipt.items.forEach((r, n) => results.push({ ...r, where: batch[n].where, label: batch[n].meta.label }));
    } catch (err) {
      failed = { batch: b, count: parts.length, message: err.message };
      break;
    }
    setProgress((b + 1) / parts.length, `${label}: screened.`);
  }
  if (failed) {
    const sent = results.length;
    const why = /[.!?]$/.test(failed.message) ? failed.message : `${failed.message}.`;
    flash(
      `The hub refused batch ${failed.batch + 1} of ${failed.count}: ${why}` +
        (sent ? ` The ${sent} items before it were recorded.` : " Nothing was recorded."),
      "error",
    );
    setProgress($("progress").value, `Stopped at batch ${failed.batch + 1} of ${failed.count}.`);
  } else {
    flash(`Sent ${items.length} items in ${parts.length} signed batch${parts.length === 1 ? "" : "es"}.`, "ok");
    setProgress(1, parts.length === 1 ? "The batch was screened." : `All ${parts.length} batches screened.`);
    prepared = null;
  }
  if (results.length) showReport(results);
  canSend();
}

const WORDS = {
  "personal-data-redacted": "personal data redacted",
  "personal-data": "holds personal data",
  "near-duplicate": "near copy of an earlier item",
  duplicate: "copy of an earlier item",
};

function findings(r) {
  const out = [];
  for (const reason of r.reasons || []) out.push(reason);
  for (const f of r.flags || []) out.push(WORDS[f] || f);
  const report = r.report || {};
  if (report.personal_data && report.personal_data.length) {
    const kinds = [...new Set(report.personal_data.map((p) => p.kind))].join(", ");
    out.push(`found: ${kinds}`);
  }
  if (r.resembles) out.push(`resembles item ${r.resembles.slice(0, 16)}…`);
  else if (report.near_duplicates && report.near_duplicates.length) {
    const n = report.near_duplicates[0];
    out.push(`${n.similarity_pct}% like item ${n.id.slice(0, 16)}…`);
  }
  return out;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (text instanceof Node) td.append(text);
  else td.textContent = text;
  tr.append(td);
  return td;
}

function showReport(results) {
  const inReview = results.filter((r) => r.status === "in_review").length;
  const refused = results.length - inReview;
  const flagged = results.filter((r) => r.status === "in_review" && r.flags.length).length;
  const redacted = results.filter((r) => (r.flags || []).includes("personal-data-redacted")).length;
  const dups = results.filter((r) => (r.reasons || []).some((x) => x.includes("duplicate"))).length;
  const counts = $("counts");
  counts.replaceChildren();
  for (const [n, words] of [
    [results.length, "sent"],
    [inReview, "in review"],
    [refused, "refused"],
    [dups, dups === 1 ? "duplicate refused" : "duplicates refused"],
    [redacted, "with personal data redacted"],
    [flagged, "flagged for reviewers"],
  ]) {
    const span = document.createElement("span");
    span.className = "pill";
    span.dataset.count = words;
    span.textContent = `${n} ${words}`;
    counts.append(span);
  }
  const body = $("report-rows");
  body.replaceChildren();
  // Problems first: a member looks for what went wrong.
  const order = [...results].sort((a, b) => rank(a) - rank(b));
  for (const r of order.slice(0, SHOWN_ROWS)) {
    const tr = document.createElement("tr");
    tr.dataset.status = r.status;
    cell(tr, r.where, "num");
    const code = document.createElement("code");
    code.textContent = `${r.id.slice(0, 16)}…`;
    code.title = r.id;
    cell(tr, code);
    cell(tr, r.label ?? "");
    const outcome = cell(tr, r.status === "in_review" ? "in review" : r.status);
    if (r.status === "refused") outcome.className = "error";
    cell(tr, findings(r).join("; "));
    body.append(tr);
  }
  const more = $("report-more");
  more.hidden = results.length <= SHOWN_ROWS;
  more.textContent = `The first ${SHOWN_ROWS} of ${results.length} items are shown; My page lists them all.`;
  $("report").hidden = false;
}

function rank(r) {
  if (r.status === "refused") return 0;
  if ((r.flags || []).length) return 1;
  return 2;
}

async function main() {
  if (!TASK) return;
  const state = await ready;
  member = state.member;
  if (!state.key) {
    flash("You can check a file here; to send it, join with an invite or sign in with your key file (see Join).");
  } else if (!member || member.status !== "active") {
    flash("This key is not an active member of this community, so the hub would refuse its batches.", "error");
  }
  dropZone($("drop"), (dt) => droppedFiles(dt).then(take));
  $("file").addEventListener("change", (e) => take(fromInput(e.target)));
  if ($("folder")) $("folder").addEventListener("change", (e) => take(fromInput(e.target)));
  $("contribute").addEventListener("submit", (e) => {
    e.preventDefault();
    if (prepared && state.key) send(state.key);
  });
  document.body.dataset.contributeReady = "1";
}

main();
