"""The content vault: contributed items, each encrypted with a key of its own.

An item's plaintext is never written anywhere: it is encrypted (XChaCha20-Poly1305, the
item id as associated data, so a ciphertext cannot be passed off as another item) before it
reaches the database, and its 32-byte key lives in a separate table. Withdrawing an item
deletes its key and ciphertext in the same transaction as the withdrawal event
(crypto-shredding); afterwards the hub also makes sure no old page still holds the key
(SQLite: ``secure_delete`` plus a WAL checkpoint; PostgreSQL: ``VACUUM``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from sqlalchemy import Connection, Engine, delete, insert, select

from commonweal.errors import HubError, NotFound
from commonweal.ledger.canonical import canonical, parse
from commonweal.store.database import is_sqlite
from commonweal.store.schema import CONTENT_TABLES, content_blobs, content_keys

__all__ = [
    "decrypt_item",
    "encrypt_item",
    "load_item",
    "load_items",
    "purge_deleted",
    "shred",
    "store_items",
]

_NONCE = 24


def encrypt_item(item_id: str, item: Any) -> tuple[bytes, bytes]:
    """Return (key, nonce || ciphertext) for an item's canonical JSON."""
    key = os.urandom(32)
    nonce = os.urandom(_NONCE)
    ct = crypto_aead_xchacha20poly1305_ietf_encrypt(canonical(item), item_id.encode(), nonce, key)
    return key, nonce + ct


def decrypt_item(item_id: str, key: bytes, blob: bytes) -> Any:
    try:
        plain = crypto_aead_xchacha20poly1305_ietf_decrypt(
            blob[_NONCE:], item_id.encode(), blob[:_NONCE], key
        )
    except Exception:
        raise HubError(f"item {item_id} does not decrypt: the vault is damaged") from None
    return parse(plain)


def store_items(conn: Connection, member: str, items: Sequence[tuple[str, Any]]) -> None:
    """Encrypt and store ``(id, item)`` pairs, inside the caller's transaction."""
    if not items:
        return
    keys, blobs = [], []
    for iid, item in items:
        key, blob = encrypt_item(iid, item)
        keys.append({"id": iid, "key": key})
        blobs.append({"id": iid, "member": member, "ciphertext": blob})
    conn.execute(insert(content_keys), keys)
    conn.execute(insert(content_blobs), blobs)


def load_items(conn: Connection, ids: Sequence[str]) -> dict[str, Any]:
    """Decrypt the items that still exist (withdrawn ones are simply absent)."""
    if not ids:
        return {}
    rows = conn.execute(
        select(content_blobs.c.id, content_blobs.c.ciphertext, content_keys.c.key)
        .join(content_keys, content_keys.c.id == content_blobs.c.id)
        .where(content_blobs.c.id.in_(list(ids)))
    ).all()
    return {r[0]: decrypt_item(r[0], bytes(r[2]), bytes(r[1])) for r in rows}


def load_item(conn: Connection, item_id: str) -> Any:
    got = load_items(conn, [item_id])
    if item_id not in got:
        raise NotFound(f"item {item_id} has no content here (withdrawn, refused or unknown)")
    return got[item_id]


def shred(conn: Connection, ids: Iterable[str]) -> int:
    """Delete every trace the vault keeps of ``ids``: key, ciphertext, duplicate-index
    entries and quality report. Returns how many items had content."""
    ids = list(ids)
    gone = 0
    for i in range(0, len(ids), 400):
        part = ids[i : i + 400]
        gone += conn.execute(delete(content_keys).where(content_keys.c.id.in_(part))).rowcount
        for table in CONTENT_TABLES:
            if table is not content_keys:
                conn.execute(delete(table).where(table.c.id.in_(part)))
    return gone


def purge_deleted(engine: Engine) -> None:
    """After a withdrawal commits: make sure freed pages no longer hold deleted keys."""
    if is_sqlite(engine):
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in CONTENT_TABLES:
                conn.exec_driver_sql(f"VACUUM {table.name}")
