// Checking the log in the browser, with WebCrypto alone: RFC 9162 leaf and node hashes and
// inclusion proofs, C2SP signed notes and checkpoints (as commonweal.ledger.note writes
// them), and a member's Ed25519 signature over an event's canonical bytes.
//
// No DOM here: every function takes bytes/strings and returns values, so tests run them in
// the page with the shared vectors. Checks return `{ok, ...what was compared}` (or throw for
// input that is not even well-formed); `verifyEntry` runs them all and lists each step.

import { canonicalBytes } from "./canonical.js";
import { concat, fromBase64, fromHex, sha256, toBase64, toHex } from "./bytes.js";

const ALG_ED25519 = 0x01;
const SIG_PREFIX = "\u2014 "; // em dash and a space, as C2SP signed-note requires
const LEAF_PREFIX = new TextEncoder().encode('{"event":');
const LEAF_MARK = new TextEncoder().encode(',"index":');

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** RFC 9162 leaf hash: SHA-256(0x00 || leaf bytes). */
export async function leafHash(leaf) {
  return sha256(concat(Uint8Array.of(0), leaf));
}

/** RFC 9162 interior node hash: SHA-256(0x01 || left || right). */
export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/** The root that an inclusion proof leads to from `leaf` (a leaf *hash*) at `index` in a
 * tree of `size` leaves (RFC 9162 §2.1.3.2). Throws if the proof's length does not fit. */
export async function rootFromInclusion(leaf, index, size, proof) {
  if (!(Number.isInteger(index) && Number.isInteger(size) && 0 <= index && index < size)) {
    throw new Error(`index ${index} is not in a tree of size ${size}`);
  }
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new Error("the inclusion proof is longer than the tree is deep");
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn !== 0 && fn % 2 === 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error("the inclusion proof is shorter than the tree is deep");
  return r;
}

/** Does `proof` lead from `leaf` (hash) at `index` of `size` to `root`?
 * `{ok, computed, root, reason}`, the hashes as hex. */
export async function verifyInclusion(leaf, index, size, proof, root) {
  let computed;
  try {
    computed = await rootFromInclusion(leaf, index, size, proof);
  } catch (err) {
    return { ok: false, computed: null, root: toHex(root), reason: err.message };
  }
  const ok = equalBytes(computed, root);
  return {
    ok,
    computed: toHex(computed),
    root: toHex(root),
    reason: ok ? "" : "the proof leads to another root",
  };
}

/** The 4-byte key hash of a note key: SHA-256(name || "\n" || 0x01 || public key)[:4]. */
export async function noteKeyHash(name, publicKey) {
  const h = await sha256(concat(new TextEncoder().encode(name + "\n"), Uint8Array.of(ALG_ED25519), publicKey));
  return h.slice(0, 4);
}

/** Parse a verifier key `NAME+KEYHASH+BASE64(0x01 || key)`; throws saying what is wrong. */
export async function parseVerifierKey(text) {
  const s = text.trim();
  const a = s.indexOf("+");
  const b = a < 0 ? -1 : s.indexOf("+", a + 1);
  if (a < 0 || b < 0) throw new Error("a verifier key looks like NAME+KEYHASH+BASE64KEY");
  const name = s.slice(0, a);
  if (!name || /\s/.test(name)) throw new Error("the verifier key's name is empty or holds a space");
  let keyHash;
  let raw;
  try {
    keyHash = fromHex(s.slice(a + 1, b));
    raw = fromBase64(s.slice(b + 1));
  } catch {
    throw new Error("the verifier key is malformed (its hash is not hex or its key not base64)");
  }
  if (keyHash.length !== 4 || raw.length !== 33 || raw[0] !== ALG_ED25519) {
    throw new Error("the verifier key is not an Ed25519 note key");
  }
  const publicKey = raw.slice(1);
  const expected = await noteKeyHash(name, publicKey);
  if (!equalBytes(expected, keyHash)) throw new Error("the verifier key's hash does not match its name and key");
  return { name, keyHash, publicKey };
}

/** Ed25519 verification of `signature` over `message` by the raw 32-byte `publicKey`. */
export async function ed25519Verify(publicKey, message, signature) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}

function controlChars(text) {
  for (const c of text) if (c.charCodeAt(0) < 0x20 && c !== "\n") return true;
  return false;
}

/** Check a C2SP signed note against `verifier` (from parseVerifierKey), as Python's
 * `verify_note` does: `{ok, text, reason}`; other keys' signature lines are ignored. */
export async function verifyNote(note, verifier) {
  const fail = (reason) => ({ ok: false, text: null, reason });
  const cut = note.lastIndexOf("\n\n");
  if (cut < 0 || !note.endsWith("\n")) return fail("the note has no blank line before its signatures");
  const text = note.slice(0, cut + 1);
  if (controlChars(text)) return fail("the note text holds control characters");
  const lines = note.slice(cut + 2, -1).split("\n");
  for (const line of lines) {
    if (!line.startsWith(SIG_PREFIX)) return fail(`signature line ${JSON.stringify(line)} does not start with an em dash`);
    const parts = line.slice(SIG_PREFIX.length).split(" ");
    let raw;
    try {
      if (parts.length !== 2) throw new Error();
      raw = fromBase64(parts[1]);
    } catch {
      return fail(`signature line ${JSON.stringify(line)} is malformed`);
    }
    if (toBase64(raw) !== parts[1]) return fail(`signature line ${JSON.stringify(line)} is not canonical base64`);
    if (parts[0] !== verifier.name || !equalBytes(raw.slice(0, 4), verifier.keyHash)) continue;
    const good =
      raw.length === 68 && (await ed25519Verify(verifier.publicKey, new TextEncoder().encode(text), raw.slice(4)));
    return good ? { ok: true, text, reason: "" } : fail(`the signature by ${parts[0]} does not verify`);
  }
  return fail(`the note carries no signature by ${verifier.name}`);
}

/** A checkpoint's body (the note text): `{origin, size, root, extensions}`; throws if it
 * is not one. Parse only: verify the note first. */
export function parseCheckpoint(text) {
  const lines = text.split("\n").slice(0, -1);
  if (lines.length < 3) throw new Error("the checkpoint has fewer than three lines");
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) throw new Error(`checkpoint size ${JSON.stringify(sizeText)} is not a decimal number`);
  let root;
  try {
    root = fromBase64(rootText);
  } catch {
    throw new Error("the checkpoint root is not base64");
  }
  if (root.length !== 32) throw new Error("the checkpoint root is not a SHA-256 hash");
  return { origin, size: Number(sizeText), root, extensions };
}

/** The note text of a signed note, unverified (to read the size before fetching a proof). */
export function noteText(note) {
  const cut = note.lastIndexOf("\n\n");
  return cut < 0 ? note : note.slice(0, cut + 1);
}

/** The event's signed bytes inside a leaf: between `{"event":` and the last `,"index":`. */
export function signedSlice(leaf) {
  if (!equalBytes(leaf.slice(0, LEAF_PREFIX.length), LEAF_PREFIX)) throw new Error('the leaf does not start with {"event":');
  for (let end = leaf.length - LEAF_MARK.length; end >= LEAF_PREFIX.length; end--) {
    if (equalBytes(leaf.slice(end, end + LEAF_MARK.length), LEAF_MARK)) return leaf.slice(LEAF_PREFIX.length, end);
  }
  throw new Error("the leaf has no index");
}

/** Check a member's signature: Ed25519 over the event's canonical bytes, by its actor.
 * `{ok, bytes, reason}`. */
export async function verifyEvent(event, sigBase64) {
  const bytes = canonicalBytes(event);
  let publicKey;
  let sig;
  try {
    publicKey = fromHex(event.actor);
    sig = fromBase64(sigBase64);
  } catch {
    return { ok: false, bytes, reason: "the actor is not a hex key or the signature is not base64" };
  }
  const ok = await ed25519Verify(publicKey, bytes, sig);
  return { ok, bytes, reason: ok ? "" : "the signature does not verify with the actor's key" };
}

const short = (hex) => (hex ? `${hex.slice(0, 16)}…` : "nothing");

/** Every check of one entry, in order: `[{id, title, ok, detail}]`.
 * entry: {index, leaf (bytes), sig (base64)}; shown: the event the page displays;
 * proof: the hub's answer to /ledger/proof/inclusion; note: the signed checkpoint;
 * verifierKey: the key text to check the checkpoint against. */
export async function verifyEntry({ entry, shown, proof, note, verifierKey }) {
  const steps = [];
  const step = (id, title, ok, detail) => steps.push({ id, title, ok, detail });

  // 1. The key the checkpoint must be signed by.
  let verifier = null;
  try {
    verifier = await parseVerifierKey(verifierKey);
    step("key", "The hub's verifier key", true,
      `${verifier.name}, key hash ${toHex(verifier.keyHash)} = the first 4 bytes of SHA-256(name, 0x0A, 0x01, key)`);
  } catch (err) {
    step("key", "The hub's verifier key", false, err.message);
  }

  // 2. The checkpoint: signed by that key, and well-formed.
  let checkpoint = null;
  const signed = verifier ? await verifyNote(note, verifier) : { ok: false, reason: "no verifier key to check it with" };
  try {
    checkpoint = parseCheckpoint(signed.ok ? signed.text : noteText(note));
  } catch (err) {
    signed.ok = false;
    signed.reason = signed.reason || err.message;
  }
  step("checkpoint", "The checkpoint's signature", signed.ok,
    signed.ok
      ? `Ed25519 signature by ${verifier.name} over “${checkpoint.origin} / size ${checkpoint.size} / root ${short(toHex(checkpoint.root))}” verifies`
      : signed.reason);

  // 3. The member's own signature, and that the leaf holds exactly those signed bytes.
  const leafEvent = JSON.parse(new TextDecoder().decode(entry.leaf)).event;
  const ev = await verifyEvent(leafEvent, entry.sig);
  let sliceOk = false;
  try {
    sliceOk = equalBytes(signedSlice(entry.leaf), ev.bytes);
  } catch {
    sliceOk = false;
  }
  const sameAsShown = toHex(canonicalBytes(shown)) === toHex(ev.bytes);
  const evOk = ev.ok && sliceOk && sameAsShown;
  step("event", "The signer's signature", evOk,
    evOk
      ? `Ed25519 signature over the event's ${ev.bytes.length} canonical bytes verifies with the actor's key ${short(leafEvent.actor)}`
      : !ev.ok ? ev.reason
      : !sliceOk ? "the leaf's bytes are not the event's canonical bytes"
      : "the leaf holds another event than the one this page shows");

  // 4. The leaf hash, computed here, and the one the hub's proof is for.
  const lh = await leafHash(entry.leaf);
  const lhOk = toHex(lh) === proof.leaf_hash && proof.index === entry.index;
  step("leaf", "The leaf hash", lhOk,
    lhOk
      ? `SHA-256(0x00, ${entry.leaf.length} leaf bytes) = ${short(toHex(lh))}, as the proof says`
      : `computed ${short(toHex(lh))} for entry ${entry.index}; the proof is for ${short(proof.leaf_hash)} at entry ${proof.index}`);

  // 5. The Merkle path from that leaf to the checkpoint's root, in a tree of its size.
  if (!checkpoint) {
    step("inclusion", "The inclusion proof", false, "no checkpoint to compare the root with");
  } else {
    let hashes;
    try {
      hashes = proof.proof.map(fromHex);
    } catch {
      hashes = null;
    }
    const inc = hashes
      ? await verifyInclusion(lh, entry.index, checkpoint.size, hashes, checkpoint.root)
      : { ok: false, reason: "the proof's hashes are not hex" };
    const sizeOk = proof.size === checkpoint.size;
    const ok = inc.ok && sizeOk;
    step("inclusion", "The inclusion proof", ok,
      ok
        ? `${hashes.length} hashes lead from entry ${entry.index} to root ${short(inc.computed)} = the checkpoint's root, in a tree of ${checkpoint.size} entries`
        : !sizeOk ? `the proof is for a tree of ${proof.size} entries; the checkpoint has ${checkpoint.size}`
        : inc.computed ? `the proof leads to root ${short(inc.computed)}; the checkpoint's root is ${short(inc.root)}`
        : inc.reason);
  }
  return steps;
}
