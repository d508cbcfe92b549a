// The member's webhook form (the `/w/webhook` fragment, wherever a page includes it): set
// or clear the address with a request signed by the member's key. Listening on the document
// means a fragment loaded later needs no script of its own.

import { signedFetch } from "./api.js";
import { loadKey } from "./keys.js";

async function submit(event) {
  const form = event.target.closest("form[data-webhook]");
  if (!form) return;
  event.preventDefault();
  const status = form.querySelector(".webhook-status");
  const clear = event.submitter && event.submitter.value === "clear";
  const url = form.elements.url.value.trim();
  status.className = "webhook-status";
  if (!clear && !url) {
    status.textContent = "Type the address first, or press Remove.";
    status.classList.add("error");
    return;
  }
  const key = await loadKey();
  try {
    const path = form.dataset.webhook;
    await signedFetch(key, path, clear ? { method: "DELETE" } : { method: "PUT", body: { url } });
    const box = form.closest("[data-fragment]");
    if (box) box.innerHTML = await signedFetch(key, box.dataset.fragment, { accept: "text/html" });
    const fresh = (box || form).querySelector(".webhook-status") || status;
    fresh.textContent = clear ? "Removed: the hub sends you nothing any more." : "Saved: the hub will send what newly waits for you to this address.";
    fresh.className = "webhook-status ok";
  } catch (err) {
    status.textContent = err.message;
    status.classList.add("error");
  }
}

document.addEventListener("submit", submit);
