// RFC 8785 canonical JSON, as commonweal.ledger.canonical computes it in Python.
//
// Events carry no floats (the hub refuses them), so the only numbers are integers, which
// JSON.stringify already writes as RFC 8785 says; strings are escaped by JSON.stringify as
// RFC 8785 requires (it was written to match ECMAScript). What is left is the key order:
// object keys sorted by UTF-16 code units, which is what Array.prototype.sort does by default.

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function check(value, path) {
  if (typeof value === "number") {
    if (!Number.isInteger(value) || Math.abs(value) > MAX_SAFE) {
      throw new Error(`${path}: only integers up to 2^53 may be signed, got ${value}`);
    }
  }
}

function reorder(value, path) {
  if (Array.isArray(value)) return value.map((v, i) => reorder(v, `${path}[${i}]`));
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const k of Object.keys(value).sort()) out[k] = reorder(value[k], `${path}.${k}`);
    return out;
  }
  check(value, path);
  return value;
}

/** The canonical JSON text of `value`. */
export function canonical(value) {
  return JSON.stringify(reorder(value, "$"));
}

/** The canonical JSON bytes (UTF-8) of `value`: what members sign. */
export function canonicalBytes(value) {
  return new TextEncoder().encode(canonical(value));
}
