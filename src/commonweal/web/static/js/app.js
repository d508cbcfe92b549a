// On every page: who I am (the key this browser holds), what waits for me, and the parts of
// the page only I may see (HTML fragments fetched with a signed request).

import { loadKey } from "./keys.js";
import { signedFetch } from "./api.js";
import "./webhook.js"; // the webhook form, in whatever page includes its fragment

/** Show a message in the page's status area. */
export function flash(message, kind = "info") {
  const el = document.getElementById("flash");
  if (!el) return;
  el.textContent = message;
  el.className = kind === "error" ? "error" : kind === "ok" ? "ok" : "";
  if (kind === "error") el.setAttribute("role", "alert");
}

function identity(key, member) {
  const el = document.getElementById("identity");
  if (!el) return;
  el.replaceChildren();
  const who = document.createElement("a");
  who.href = "/me";
  who.textContent = member ? member.name : `key ${key.keyId.slice(0, 16)}…`;
  el.append("Signed in as ", who);
  if (member && member.status !== "active") el.append(` (${member.status})`);
  const mine = document.createElement("a");
  mine.href = "/join";
  mine.textContent = "Key and sign out";
  el.append(" · ", mine);
}

/** Fill every `[data-fragment]` element with the member-only HTML the hub renders for it. */
export async function loadFragments(key, root = document) {
  for (const el of root.querySelectorAll("[data-fragment]")) {
    try {
      el.innerHTML = await signedFetch(key, el.dataset.fragment, { accept: "text/html" });
      el.dispatchEvent(new CustomEvent("fragment:loaded", { bubbles: true }));
    } catch (err) {
      el.textContent = err.message;
      el.classList.add("error");
    }
  }
}

export const ready = (async () => {
  const key = await loadKey();
  let member = null;
  if (key) {
    try {
      const { members } = await (await fetch("/api/v1/members")).json();
      member = members.find((m) => m.key === key.keyId) || null;
    } catch {
      /* the page still works; only the name is missing */
    }
    identity(key, member);
    const waiting = document.getElementById("waiting");
    if (waiting && member && member.status === "active") {
      waiting.dataset.fragment = "/w/waiting";
      await loadFragments(key, waiting.parentElement);
      waiting.hidden = !waiting.querySelector("li");
    }
    await loadFragments(key, document.getElementById("main"));
  } else {
    for (const el of document.querySelectorAll("[data-fragment]")) {
      el.replaceChildren();
      const p = document.createElement("p");
      const a = document.createElement("a");
      a.href = "/join";
      a.textContent = "join with an invite, or sign in with your key file";
      p.append("This part is for members: ", a, ".");
      el.append(p);
    }
  }
  return { key, member };
})();
