// Making a proposal: a form per action type builds the action as `commonweal propose`
// does; "Check" asks the hub what the actions do (in words, an amendment's changes) or why
// the rules refuse them; "Sign and propose" signs `proposal.create` with this browser's key.

import { ready, flash } from "./app.js";
import { act } from "./api.js";
import { jsonData } from "./charts.js";

const form = document.getElementById("propose");
const charter = jsonData("charter-data");

function showType() {
  const type = form.elements.type.value;
  for (const fs of form.querySelectorAll("fieldset[data-action]")) fs.hidden = fs.dataset.action !== type;
}

function showOptions() {
  document.getElementById("options-box").hidden = form.elements.choice.value === "basic";
}

function setPath(doc, path, value) {
  const parts = path.split(".");
  let node = doc;
  for (const p of parts.slice(0, -1)) {
    if (typeof node[p] !== "object" || node[p] === null) node[p] = {};
    node = node[p];
  }
  node[parts.at(-1)] = value;
}

function getPath(doc, path) {
  return path.split(".").reduce((node, p) => (node == null ? undefined : node[p]), doc);
}

class FieldError extends Error {
  constructor(message, field) {
    super(message);
    this.field = field;
  }
}

/** The amended charter: the JSON box (checked here), with the common fields applied where
 * they differ from the charter in force. */
function amendedCharter() {
  const box = document.getElementById("c-json");
  const err = document.getElementById("c-json-error");
  err.textContent = "";
  let doc;
  try {
    doc = JSON.parse(box.value);
  } catch (e) {
    err.textContent = `The charter is not valid JSON: ${e.message}`;
    box.closest("details").open = true;
    throw new FieldError(err.textContent, box);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    err.textContent = "The charter is a JSON object: { ... }";
    box.closest("details").open = true;
    throw new FieldError(err.textContent, box);
  }
  for (const input of form.querySelectorAll("fieldset[data-action='charter.amend'] [data-path]")) {
    const raw = input.value;
    const value = input.type === "number" ? Number(raw) : raw;
    if (input.type === "number" && (raw === "" || !Number.isInteger(value))) {
      throw new FieldError(`${input.labels[0].textContent}: a whole number, please`, input);
    }
    if (value !== getPath(charter, input.dataset.path)) setPath(doc, input.dataset.path, value);
  }
  return doc;
}

function action() {
  const type = form.elements.type.value;
  if (type === "charter.amend") return { type, charter: amendedCharter() };
  const a = { type };
  const fs = form.querySelector(`fieldset[data-action='${type}']`);
  for (const input of fs.querySelectorAll("[data-field]")) {
    let value = input.value;
    if ("int" in input.dataset) {
      value = Number(value);
      if (input.value === "" || !Number.isInteger(value)) {
        throw new FieldError(`${input.labels[0].textContent}: a whole number, please`, input);
      }
    } else if ("list" in input.dataset) {
      value = value.split(/\s+/).filter(Boolean);
    }
    a[input.dataset.field] = value;
  }
  return a;
}

/** The `proposal.create` body, as `commonweal propose` builds it. */
function body() {
  const title = form.elements.title.value.trim();
  if (!title) throw new FieldError("Give the proposal a title.", form.elements.title);
  const b = { title, actions: [action()] };
  const description = form.elements.description.value.trim();
  if (description) b.description = description;
  if (b.actions[0].type === "signal" && form.elements.choice.value !== "basic") {
    const options = form.elements.options.value.split("\n").map((o) => o.trim()).filter(Boolean);
    if (options.length < 2) throw new FieldError("Give at least two options, one per line.", form.elements.options);
    b.options = options;
    b.choice = form.elements.choice.value;
  }
  if (form.elements.secret?.checked) b.secret = true;
  return b;
}

function refuse(err) {
  flash(err.message, "error");
  if (err.field) err.field.focus();
}

async function preview() {
  const out = document.getElementById("preview-out");
  let actions;
  try {
    actions = [action()];
  } catch (err) {
    refuse(err);
    return;
  }
  const resp = await fetch("/decide/preview", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/html" },
    body: JSON.stringify({ actions }),
  });
  out.innerHTML = await resp.text(); // rendered and escaped by the hub
}

async function main() {
  showType();
  showOptions();
  form.elements.type.addEventListener("change", showType);
  form.elements.choice.addEventListener("change", showOptions);
  document.getElementById("preview").addEventListener("click", () => preview().catch(refuse));
  const { key, member } = await ready;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!key || !member || member.status !== "active") {
      flash("Only an active member can propose: join, or sign in with your key file.", "error");
      return;
    }
    let b;
    try {
      b = body();
    } catch (err) {
      refuse(err);
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const res = await act(key, "proposal.create", b);
      const number = res.entries[0].index;
      flash(`Proposal ${number} is made.`, "ok");
      location.assign(`/decide/${number}`);
    } catch (err) {
      flash(err.message, "error");
      button.disabled = false;
    }
  });
  document.body.dataset.decideReady = "1";
}

main();
