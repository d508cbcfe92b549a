// The join page: make a key in this browser and sign `member.join` with it (the same event
// `HubClient.join` signs), back the key up before going on, or sign in with a key file;
// for a member: download the key again, invite someone, set a webhook, sign out.

import { dropZone } from "./drop.js";
import { act } from "./api.js";
import { flash, loadFragments, ready } from "./app.js";
import { sha256, toBase64Url, toHex } from "./bytes.js";
import { download, forgetKey, newKey, parseKeyFile, storeKey } from "./keys.js";

const $ = (id) => document.getElementById(id);
const data = JSON.parse($("join-data").textContent);

function show(id, on = true) {
  $(id).hidden = !on;
}

function fileName(key) {
  const who = (key.name || "member").replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "") || "member";
  return `commonweal-${who}-${key.keyId.slice(0, 8)}.key`;
}

async function backup(key) {
  download(fileName(key), await key.keyFile());
}

/** The hub's refusal as a sentence for people: without the event kind it starts with. */
function plain(message) {
  const text = message.replace(/^[a-z]+\.[a-z_.]+: /, "");
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
}

/** Show who this browser now signs as in the page's identity area (as app.js does). */
function identity(name, status) {
  const el = document.getElementById("identity");
  const who = document.createElement("a");
  who.href = "/me";
  who.textContent = name;
  el.replaceChildren("Signed in as ", who);
  if (status !== "active") el.append(` (${status})`);
}

/** Say `message` next to the field it concerns (or under the form), and focus that field. */
function refuse(message) {
  for (const id of ["join-name-error", "join-invite-error", "join-error"]) {
    if ($(id)) show(id, false);
  }
  const field = /invite|invitation/i.test(message) && $("join-invite") ? "join-invite" : /\bname\b/i.test(message) ? "join-name" : null;
  const box = $(field ? `${field}-error` : "join-error");
  box.textContent = message;
  box.hidden = false;
  if (field) {
    $(field).setAttribute("aria-invalid", "true");
    $(field).focus();
  }
}

// -- a visitor ---------------------------------------------------------------------------

async function join(event) {
  event.preventDefault();
  const name = $("join-name").value.trim();
  const invite = $("join-invite") ? $("join-invite").value.trim() : "";
  for (const id of ["join-name", "join-invite"]) $(id)?.removeAttribute("aria-invalid");
  if (!name) return refuse("Choose a name: other members see it next to what you do.");
  if (data.policy === "invite" && !invite) return refuse("This community joins by invitation: paste the invite a member gave you.");
  const button = $("join-submit");
  button.disabled = true;
  button.textContent = "Joining…";
  try {
    const key = await newKey(name);
    // The same body HubClient.join signs: the invite only where the charter asks for one.
    const body = data.policy === "invite" ? { name, invite } : { name };
    await act(key, "member.join", body);
    await storeKey(key);
    document.body.dataset.keyId = key.keyId;
    identity(name, data.policy === "approval" ? "pending" : "active");
    backupFirst(key, name, data.policy === "approval" ? "pending" : "active");
  } catch (err) {
    refuse(plain(err.message));
  } finally {
    button.disabled = false;
    button.textContent = "Make my key and join";
  }
}

function backupFirst(key, name, status) {
  show("visitor", false);
  show("backup-first");
  $("h-backup").tabIndex = -1;
  $("h-backup").focus();
  flash(`You joined as ${name}. Save your key file before you go on.`, "ok");
  $("backup-download").addEventListener("click", async () => {
    await backup(key);
    $("backup-saved").focus();
  });
  $("backup-saved").addEventListener("change", () => {
    $("backup-continue").disabled = !$("backup-saved").checked;
  });
  $("backup-continue").addEventListener("click", () => {
    show("backup-first", false);
    $("welcome-name").textContent = name;
    show("welcome");
    show(status === "active" ? "welcome-active" : "welcome-pending");
    flash("");
    $("h-welcome").tabIndex = -1;
    $("h-welcome").focus();
  });
}

async function importKey(file) {
  show("import-error", false);
  try {
    if (file.size > 64 * 1024) throw new Error("that file is too large to be a key file");
    const key = await parseKeyFile(await file.text());
    await storeKey(key);
    location.assign("/join?signed-in=1");
  } catch (err) {
    $("import-error").textContent = `Could not sign in: ${err.message}.`;
    show("import-error");
  }
}

function visitor() {
  show("visitor");
  $("join-form").addEventListener("submit", join);
  $("key-file").addEventListener("change", () => {
    const file = $("key-file").files[0];
    if (file) importKey(file);
  });
  dropZone($("key-drop"), (dt) => {
    const file = dt.files[0];
    if (file) importKey(file);
  });
}

// -- a member ----------------------------------------------------------------------------

async function createInvite(key) {
  show("invite-error", false);
  const button = $("invite-create");
  button.disabled = true;
  try {
    // As HubClient.create_invite: 18 random bytes, URL-safe base64 (secrets.token_urlsafe),
    // and the log gets only the SHA-256 of the token's text.
    const token = toBase64Url(crypto.getRandomValues(new Uint8Array(18)));
    const tokenHash = toHex(await sha256(new TextEncoder().encode(token)));
    await act(key, "invite.create", { token_hash: tokenHash });
    $("invite-link").value = `${location.origin}/join?invite=${encodeURIComponent(token)}`;
    $("invite-copied").textContent = "";
    show("invite-made");
    $("invite-link").focus();
    $("invite-link").select();
  } catch (err) {
    $("invite-error").textContent = plain(err.message);
    show("invite-error");
  } finally {
    button.disabled = false;
  }
}

async function copyLink() {
  const input = $("invite-link");
  try {
    await navigator.clipboard.writeText(input.value);
    $("invite-copied").textContent = "Copied.";
  } catch {
    input.select();
    $("invite-copied").textContent = "Press Ctrl+C (⌘C) to copy the selected link.";
  }
}

async function signedIn(key, member) {
  show("signed-in");
  document.querySelector("main h1").textContent = "Your key and membership";
  $("me-name").textContent = member ? member.name : key.name || "someone who has not joined here";
  $("me-status").textContent = member ? member.status : "not a member of this community";
  $("me-key").textContent = key.keyId;
  $("me-key").title = key.keyId;
  document.body.dataset.keyId = key.keyId;
  for (const id of ["key-download", "signout-download"]) $(id).addEventListener("click", () => backup(key));
  $("signout-sure").addEventListener("change", () => {
    $("signout").disabled = !$("signout-sure").checked;
  });
  $("signout").addEventListener("click", async () => {
    await forgetKey();
    location.assign("/join?signed-out=1");
  });
  if (member && member.status === "active") {
    show("invite-card");
    if ($("invite-create")) {
      $("invite-create").addEventListener("click", () => createInvite(key));
      $("invite-copy").addEventListener("click", copyLink);
    }
    if ($("open-link")) $("open-link").value = location.origin + "/join";
    show("notify-card");
    $("notify-fragment").dataset.fragment = "/w/webhook";
    await loadFragments(key, $("notify-card"));
  }
  const params = new URLSearchParams(location.search);
  if (params.has("signed-in")) flash(member ? `Signed in as ${member.name}.` : "Signed in.", "ok");
  if (params.has("invite") && member) flash("This browser already holds a member's key: sign out first to join as someone else.");
}

async function start() {
  const { key, member } = await ready;
  show("join-loading", false);
  if (key) {
    await signedIn(key, member);
  } else {
    visitor();
    if (new URLSearchParams(location.search).has("signed-out")) {
      flash("Signed out: this browser forgot your key. Sign in again with your key file.", "ok");
    }
  }
  document.body.dataset.joinReady = "1";
}

start();
