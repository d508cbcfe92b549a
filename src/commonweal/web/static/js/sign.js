// Events and request signatures, exactly as commonweal.ledger.event and commonweal.wire
// make them in Python: the same envelope, the same canonical bytes, the same header.

import { canonicalBytes } from "./canonical.js";
import { sha256, toBase64, toBase64Url, toHex } from "./bytes.js";

export const AUTH_HEADER = "X-Commonweal-Auth";

/** RFC 3339 UTC with milliseconds, as the CLI writes event times. */
export function now(date = new Date()) {
  return date.toISOString();
}

export function nonce() {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
}

/** The origin line of this hub's log, which the server renders into every page. */
export function pageOrigin() {
  const meta = globalThis.document?.querySelector('meta[name="commonweal-origin"]');
  if (!meta || !meta.content) {
    throw new Error("this page does not name its hub's origin; reload it from the hub");
  }
  return meta.content;
}

/** Build and sign an event as `key` for the hub whose log origin is `hub` (default: this
 * page's hub): `{event, sig}`, ready to send. The event names the hub so that it cannot be
 * replayed to another community. `hub: null` makes the old version 1 form, which names no
 * hub: only replay of old logs accepts it (the test vectors check it still matches). */
export async function signEvent(key, kind, body, { hub, time, nonce: n } = {}) {
  const origin = hub === undefined ? pageOrigin() : hub;
  const base = { kind, actor: key.keyId, time: time || now(), nonce: n || nonce(), body };
  const event = origin === null ? { v: 1, ...base } : { v: 2, hub: origin, ...base };
  const sig = await key.sign(canonicalBytes(event));
  return { event, sig: toBase64(sig) };
}

const AUTH_VERSION = "v2";

/** The bytes a request signature covers, as commonweal.wire.auth_message makes them:
 * method, target (path and query, as sent), time in ms, nonce and SHA-256 of the body. */
export async function authMessage(method, target, body, unixMs, n) {
  const bodyHash = toHex(await sha256(body));
  const lines = [`commonweal-request ${AUTH_VERSION}`, method.toUpperCase(), target, String(unixMs), n, bodyHash];
  return new TextEncoder().encode(lines.join("\n"));
}

/** The X-Commonweal-Auth header for one request `method target` (path and query, as
 * sent) carrying exactly `body` (a string or bytes; none is empty). The hub accepts a
 * signature once, so sign every request, each retry too. */
export async function authHeader(key, method, target, { body = "", unixMs, nonce: n } = {}) {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const ms = unixMs ?? Date.now();
  const nn = n || nonce();
  const sig = await key.sign(await authMessage(method, target, bytes, ms, nn));
  return `${AUTH_VERSION}.${key.keyId}.${ms}.${nn}.${toBase64(sig)}`;
}
