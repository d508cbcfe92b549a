// API keys for the model's consumers: the secret is made here, in the exact format of
// commonweal.wire.new_api_key ("cw_" + URL-safe base64 of 32 random bytes, no padding);
// only its SHA-256 (hex) is signed into an apikey.create event, as the CLI does. The
// secret is shown once and never leaves this page except in the member's clipboard.

import { act } from "./api.js";
import { flash, loadFragments, ready } from "./app.js";
import { toBase64Url, toHex } from "./bytes.js";

/** A fresh API key secret and its SHA-256, as wire.new_api_key makes them. */
export async function newApiKey() {
  const secret = "cw_" + toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
  return { secret, keyHash: await hashApiKey(secret) };
}

export async function hashApiKey(secret) {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret))));
}

function bind(key, root) {
  const form = root.querySelector("#key-form");
  if (form && !form.dataset.bound) {
    form.dataset.bound = "1";
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const consumer = form.querySelector("#key-consumer").value.trim();
        const quota = Number(form.querySelector("#key-quota").value);
        const { secret, keyHash } = await newApiKey();
        const body = { key_hash: keyHash, consumer };
        if (Number.isInteger(quota) && quota !== Number(form.querySelector("#key-quota").max)) {
          body.quota_per_day = quota;
        }
        await act(key, "apikey.create", body);
        await refresh(key, root);
        const box = root.querySelector("#key-secret");
        root.querySelector("#key-secret-value").value = secret;
        root.querySelector("#key-secret-consumer").textContent = consumer;
        box.hidden = false;
        root.querySelector("#key-secret-value").focus();
        root.querySelector("#key-secret-value").select();
        flash(`Key issued for ${consumer}. Copy it now: it is not shown again.`, "ok");
      } catch (err) {
        flash(err.message, "error");
        button.disabled = false;
      }
    });
  }
}

async function refresh(key, root) {
  // The list comes from the hub (the log says which keys I issued); the form is rebuilt too,
  // so the secret box is the fresh one the caller fills.
  await loadFragments(key, root.parentElement);
  bind(key, root);
}

async function main() {
  const root = document.getElementById("my-keys");
  if (!root) return;
  const { key } = await ready;
  if (!key) return;
  bind(key, root);
  root.addEventListener("click", async (e) => {
    const copy = e.target.closest("#key-copy");
    if (copy) {
      const value = root.querySelector("#key-secret-value").value;
      try {
        await navigator.clipboard.writeText(value);
        flash("Copied.", "ok");
      } catch {
        root.querySelector("#key-secret-value").select();
        flash("Your browser did not let the page copy: the key is selected, press Ctrl+C.");
      }
      return;
    }
    const revoke = e.target.closest("[data-revoke]");
    if (!revoke) return;
    const consumer = revoke.dataset.consumer;
    if (!window.confirm(`Revoke the key for ${consumer}? Calls with it fail from now on; this cannot be undone.`)) return;
    revoke.disabled = true;
    try {
      await act(key, "apikey.revoke", { key_hash: revoke.dataset.revoke });
      await refresh(key, root);
      flash(`The key for ${consumer} is revoked.`, "ok");
    } catch (err) {
      flash(err.message, "error");
      revoke.disabled = false;
    }
  });
}

main();
