// Events and request signatures, exactly as commonweal.ledger.event and commonweal.wire
// make them in Python: the same envelope, the same canonical bytes, the same header.

import { canonicalBytes } from "./canonical.js";
import { toBase64, toBase64Url } from "./bytes.js";

export const AUTH_HEADER = "X-Commonweal-Auth";

/** RFC 3339 UTC with milliseconds, as the CLI writes event times. */
export function now(date = new Date()) {
  return date.toISOString();
}

export function nonce() {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
}

/** Build and sign an event as `key`: `{event, sig}`, ready to send. */
export async function signEvent(key, kind, body, { time, nonce: n } = {}) {
  const event = { v: 1, kind, actor: key.keyId, time: time || now(), nonce: n || nonce(), body };
  const sig = await key.sign(canonicalBytes(event));
  return { event, sig: toBase64(sig) };
}

/** The X-Commonweal-Auth header for `method target` (path and query, as sent). */
export async function authHeader(key, method, target, unix) {
  const stamp = String(unix ?? Math.floor(Date.now() / 1000));
  const msg = new TextEncoder().encode(`${method.toUpperCase()} ${target} ${stamp}`);
  return `${key.keyId}.${stamp}.${toBase64(await key.sign(msg))}`;
}
