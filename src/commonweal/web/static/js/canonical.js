// RFC 8785 canonical JSON, as commonweal.ledger.canonical computes it in Python.
//
// Events carry no floats (the hub refuses them), so the only numbers are integers, which
// JSON.stringify already writes as RFC 8785 says; strings are escaped by JSON.stringify as
// RFC 8785 requires (it was written to match ECMAScript). What is left is the key order:
// object keys sorted by UTF-16 code units, which is what Array.prototype.sort does by default.
// Objects are written here key by key rather than rebuilt and stringified: a JS object
// lists integer-like keys ("2", "10") first in numeric order whatever order they were added
// in, so a rebuilt object would put "2" before "10" (tests/vectors/canonical.json).

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function check(value, path) {
  if (typeof value === "number") {
    if (!Number.isInteger(value) || Math.abs(value) > MAX_SAFE) {
      throw new Error(`${path}: only integers up to 2^53 may be signed, got ${value}`);
    }
  }
}

function write(value, path) {
  if (Array.isArray(value)) return `[${value.map((v, i) => write(v, `${path}[${i}]`)).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const parts = Object.keys(value)
      .sort()
      .filter((k) => value[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${write(value[k], `${path}.${k}`)}`);
    return `{${parts.join(",")}}`;
  }
  check(value, path);
  return JSON.stringify(value);
}

/** The canonical JSON text of `value`. */
export function canonical(value) {
  return write(value, "$");
}

/** The canonical JSON bytes (UTF-8) of `value`: what members sign. */
export function canonicalBytes(value) {
  return new TextEncoder().encode(canonical(value));
}
