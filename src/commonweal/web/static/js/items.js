// Salted commitments, made here as commonweal.wire.describe_item makes them for the CLI:
// the log holds sha256(salt || canonical(item)); the hub gets the salt and item beside it.

import { canonical, canonicalBytes } from "./canonical.js";
import { concat, sha256, toBase64, toHex } from "./bytes.js";

export const SALT_BYTES = 16;
const ITEM_ID_HEX = 32;

export async function commitmentOf(salt, item) {
  return toHex(await sha256(concat(salt, canonicalBytes(item))));
}

export function labelOf(taskKind, item) {
  return taskKind === "tabular-classification" ? item.target : item.label;
}

/** `[meta, part]`: what the member signs about one item, and the content sent beside it. */
export async function describeItem(item, { taskKind, license, consent, salt }) {
  salt = salt || crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const commitment = await commitmentOf(salt, item);
  const meta = {
    id: commitment.slice(0, ITEM_ID_HEX),
    commitment,
    license,
    consent: [...consent],
    bytes: new TextEncoder().encode(canonical(item)).length,
  };
  if (taskKind === "tabular-classification" || "label" in item) meta.label = labelOf(taskKind, item);
  return [meta, { id: meta.id, salt: toBase64(salt), item }];
}
