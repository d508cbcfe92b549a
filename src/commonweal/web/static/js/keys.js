// The member's Ed25519 key, made and kept by this browser (WebCrypto + IndexedDB); the hub
// never sees it. A key file is the same JSON `commonweal key new` writes, so one key works
// in the browser and the CLI alike.

import { fromBase64, fromBase64Url, fromHex, toBase64, toHex } from "./bytes.js";

const DB = "commonweal";
const STORE = "keys";
const SLOT = "member";
const KEY_FILE_KIND = "commonweal-member-key";
// PKCS #8 wrapping of a 32-byte Ed25519 seed (RFC 8410): this prefix, then the seed.
const PKCS8_PREFIX = fromHex("302e020100300506032b657004220420");

function db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const conn = await db();
  return new Promise((resolve, reject) => {
    const t = conn.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => resolve(req.result);
    t.onerror = () => reject(t.error);
  });
}

/** A member key: `{keyId, name, privateKey}` where privateKey is a WebCrypto CryptoKey. */
export class MemberKey {
  constructor(keyId, privateKey, name) {
    this.keyId = keyId;
    this.privateKey = privateKey;
    this.name = name || null;
  }

  async sign(bytes) {
    return new Uint8Array(await crypto.subtle.sign("Ed25519", this.privateKey, bytes));
  }

  /** The key file, byte for byte as `commonweal key new` writes it. */
  async keyFile() {
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", this.privateKey));
    const doc = {
      kind: KEY_FILE_KIND,
      v: 1,
      algorithm: "ed25519",
      key_id: this.keyId,
      seed: toBase64(pkcs8.slice(-32)),
    };
    if (this.name) doc.name = this.name;
    return JSON.stringify(doc, null, 2) + "\n";
  }
}

async function fromSeed(seed, name) {
  if (seed.length !== 32) throw new Error("an Ed25519 seed is 32 bytes");
  const pkcs8 = new Uint8Array(PKCS8_PREFIX.length + 32);
  pkcs8.set(PKCS8_PREFIX);
  pkcs8.set(seed, PKCS8_PREFIX.length);
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, "Ed25519", true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  return new MemberKey(toHex(fromBase64Url(jwk.x)), privateKey, name);
}

/** A fresh key (not yet stored). */
export async function newKey(name) {
  const pair = await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"]);
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return new MemberKey(toHex(pub), pair.privateKey, name);
}

/** Read a key file's text; throws an Error saying what is wrong with it. */
export async function parseKeyFile(text) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error("that file is not a Commonweal key file (it is not JSON)");
  }
  if (!doc || doc.kind !== KEY_FILE_KIND) throw new Error("that file is not a Commonweal member key file");
  let seed;
  try {
    seed = fromBase64(doc.seed);
  } catch {
    throw new Error("the key file has no valid seed");
  }
  const key = await fromSeed(seed, doc.name);
  if (doc.key_id && doc.key_id !== key.keyId) throw new Error("the key file's key_id does not match its seed");
  return key;
}

/** Test hook and import path: a key from its 32-byte seed. */
export { fromSeed };

export async function storeKey(key) {
  await tx("readwrite", (s) => s.put({ keyId: key.keyId, name: key.name, privateKey: key.privateKey }, SLOT));
}

export async function loadKey() {
  const rec = await tx("readonly", (s) => s.get(SLOT));
  return rec ? new MemberKey(rec.keyId, rec.privateKey, rec.name) : null;
}

export async function forgetKey() {
  await tx("readwrite", (s) => s.delete(SLOT));
}

/** Offer `text` as a file download named `filename`. */
export function download(filename, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
