"""The content vault: contributed items, each encrypted with a key of its own.

An item's plaintext is never written anywhere: it is encrypted (XChaCha20-Poly1305, the
item id as associated data, so a ciphertext cannot be passed off as another item) before it
reaches the database. Its 32-byte key is stored only wrapped under one of the hub's
key-encryption keys (KEKs), which live as files outside the database (``keyring.py``).

A KEK wraps at most ``BUCKET`` item keys: new items go under the current KEK until it is
full, then under a new one. Withdrawing items deletes their keys and ciphertexts in the same
transaction as the withdrawal event, and in that transaction too ``shred`` rotates each KEK
that wrapped a withdrawn key: the bucket's remaining keys are re-wrapped under a new KEK.
After the commit the hub destroys the old KEK files (``destroy``). Every KEK an item's key
was ever wrapped under is destroyed by the time it is withdrawn, so erasure does not depend
on the database forgetting bytes: old pages in a WAL, a backup or a replica hold the
withdrawn keys wrapped only under destroyed KEKs. Buckets bound a withdrawal's cost (one
bucket re-wrapped, not the whole vault: ``bench/vault.py``). ``sweep`` finishes the job
after a crash between the commit and the destruction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from sqlalchemy import Connection, Engine, delete, func, insert, inspect, select, update

from commonweal.errors import HubError, NotFound
from commonweal.ledger.canonical import canonical, parse
from commonweal.store.database import is_sqlite, read_connection, write_connection
from commonweal.store.keyring import Keyring
from commonweal.store.schema import CONTENT_TABLES, content_blobs, content_keys, hub_settings

__all__ = [
    "current_kek",
    "decrypt_item",
    "destroy",
    "encrypt_item",
    "load_item",
    "load_items",
    "migrate",
    "purge_deleted",
    "shred",
    "store_items",
    "sweep",
]

_CURRENT = "vault_kek"  # hub_settings row: the KEK new item keys are wrapped under
# Item keys per KEK. Rotating a bucket costs ~0.1 ms a key (bench/vault.py); 1024 keeps a
# withdrawal's share of the append lock near 0.1 s, and a million items in ~1000 files.
BUCKET = 1024

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


def current_kek(conn: Connection, keyring: Keyring, *, create: bool = True) -> str | None:
    """The KEK new item keys are wrapped under, read in the caller's (write) transaction;
    with ``create``, a first one is made when the hub has none yet."""
    row = conn.execute(select(hub_settings.c.value).where(hub_settings.c.name == _CURRENT)).first()
    if row is not None:
        return bytes(row[0]).decode()
    if not create:
        return None
    kek_id = keyring.create()
    conn.execute(insert(hub_settings).values(name=_CURRENT, value=kek_id.encode()))
    return kek_id


def _open_kek(conn: Connection, keyring: Keyring, room: int) -> str:
    """The current KEK, or a new current one if it has no room for ``room`` more keys."""
    kek_id = current_kek(conn, keyring)
    assert kek_id is not None
    held = conn.execute(
        select(func.count()).select_from(
            select(content_keys.c.id).where(content_keys.c.kek == kek_id).limit(BUCKET).subquery()
        )
    ).scalar_one()
    if held and held + room > BUCKET:
        kek_id = keyring.create()
        _set_current(conn, kek_id)
    return kek_id


def _set_current(conn: Connection, kek_id: str) -> None:
    conn.execute(
        update(hub_settings).where(hub_settings.c.name == _CURRENT).values(value=kek_id.encode())
    )


def store_items(
    conn: Connection, keyring: Keyring, member: str, items: Sequence[tuple[str, Any]]
) -> None:
    """Encrypt and store ``(id, item)`` pairs, inside the caller's write transaction (which
    holds the append lock, so no rotation can retire the current KEK meanwhile)."""
    if not items:
        return
    keys, blobs = [], []
    for start in range(0, len(items), BUCKET):
        part = items[start : start + BUCKET]
        kek_id = _open_kek(conn, keyring, len(part))
        for iid, item in part:
            key, blob = encrypt_item(iid, item)
            keys.append({"id": iid, "key": keyring.wrap(kek_id, iid, key), "kek": kek_id})
            blobs.append({"id": iid, "member": member, "ciphertext": blob})
        conn.execute(insert(content_keys), keys)
        conn.execute(insert(content_blobs), blobs)
        keys, blobs = [], []


def load_items(conn: Connection, keyring: Keyring, ids: Sequence[str]) -> dict[str, Any]:
    """Decrypt the items that still exist (withdrawn ones are simply absent)."""
    if not ids:
        return {}
    rows = conn.execute(
        select(
            content_blobs.c.id, content_blobs.c.ciphertext, content_keys.c.key, content_keys.c.kek
        )
        .join(content_keys, content_keys.c.id == content_blobs.c.id)
        .where(content_blobs.c.id.in_(list(ids)))
    ).all()
    out = {}
    for iid, blob, wrapped, kek_id in rows:
        if kek_id is None:
            raise HubError(f"item {iid}'s key is not wrapped: open the hub to migrate its vault")
        out[iid] = decrypt_item(iid, keyring.unwrap(kek_id, iid, bytes(wrapped)), bytes(blob))
    return out


def load_item(conn: Connection, keyring: Keyring, item_id: str) -> Any:
    got = load_items(conn, keyring, [item_id])
    if item_id not in got:
        raise NotFound(f"item {item_id} has no content here (withdrawn, refused or unknown)")
    return got[item_id]


def _referenced(conn: Connection) -> set[str]:
    rows = conn.execute(select(content_keys.c.kek).distinct()).all()
    return {str(r[0]) for r in rows if r[0] is not None}


def _rotate(conn: Connection, keyring: Keyring, old: str) -> None:
    """Re-wrap the keys KEK ``old`` still wraps under a new KEK, which takes its place as
    the current one if ``old`` was. Rows are replaced by delete and insert: a multi-row
    INSERT is one statement on both databases, an UPDATE one per row."""
    rows = conn.execute(
        select(content_keys.c.id, content_keys.c.key).where(content_keys.c.kek == old)
    ).all()
    current = current_kek(conn, keyring, create=False) == old
    if not rows and not current:
        return  # the bucket is empty now: nothing to re-wrap, no KEK to replace it
    new = keyring.create()
    if rows:
        conn.execute(delete(content_keys).where(content_keys.c.kek == old))
        conn.execute(
            insert(content_keys),
            [
                {
                    "id": iid,
                    "key": keyring.wrap(new, iid, keyring.unwrap(old, iid, bytes(w))),
                    "kek": new,
                }
                for iid, w in rows
            ],
        )
    if current:
        _set_current(conn, new)


def shred(conn: Connection, keyring: Keyring, ids: Iterable[str]) -> tuple[int, set[str]]:
    """Delete every trace the vault keeps of ``ids`` (key, ciphertext, duplicate-index
    entries, quality report), then rotate each KEK that wrapped one of their keys; all in
    the caller's write transaction. Returns how many items had content, and the KEKs to
    ``destroy`` once the transaction has committed."""
    ids = list(ids)
    gone = 0
    retired: set[str] = set()
    for i in range(0, len(ids), 400):
        part = ids[i : i + 400]
        retired |= {
            str(r[0])
            for r in conn.execute(
                select(content_keys.c.kek).where(content_keys.c.id.in_(part)).distinct()
            )
            if r[0] is not None
        }
        gone += conn.execute(delete(content_keys).where(content_keys.c.id.in_(part))).rowcount
        for table in CONTENT_TABLES:
            if table is not content_keys:
                conn.execute(delete(table).where(table.c.id.in_(part)))
    for old in sorted(retired):
        _rotate(conn, keyring, old)
    return gone, retired


def destroy(keyring: Keyring, kek_ids: Iterable[str]) -> None:
    """Destroy retired KEKs, after the transaction that retired them has committed."""
    for kek_id in kek_ids:
        keyring.destroy(kek_id)


def sweep(engine: Engine, keyring: Keyring, lock: Callable[[Connection], object]) -> list[str]:
    """Destroy KEK files that no stored key references and that are not the current KEK:
    left by a crash between a withdrawal's commit and ``destroy``, or by a transaction that
    made a KEK and then rolled back. ``lock`` is a function that takes the append lock in a
    write transaction, so no withdrawal is between making its KEK and committing. A KEK any
    row references is never destroyed. Returns the ids destroyed."""
    files = keyring.on_disk()
    if not files:
        return []
    with read_connection(engine) as conn:
        keep = _referenced(conn) | {current_kek(conn, keyring, create=False) or ""}
    if files <= keep:
        return []  # the common case: nothing to do, and no lock taken
    with write_connection(engine) as conn:
        lock(conn)
        keep = _referenced(conn) | {current_kek(conn, keyring, create=False) or ""}
        doomed = sorted(keyring.on_disk() - keep)
        # Destroyed while the lock is held: a withdrawal starting now makes a new file,
        # which this list cannot name.
        for kek_id in doomed:
            keyring.destroy(kek_id)
    return doomed


def migrate(conn: Connection, keyring: Keyring | None) -> int:
    """Bring a schema-4 vault (plain item keys) to schema 5, in the caller's write
    transaction: add the ``kek`` column and wrap every plain key, ``BUCKET`` keys to a KEK
    made now. Returns how many keys were wrapped."""
    have = {c["name"] for c in inspect(conn).get_columns("content_keys")}
    if "kek" not in have:
        conn.exec_driver_sql("ALTER TABLE content_keys ADD COLUMN kek VARCHAR(16)")
        for ix in content_keys.indexes:
            ix.create(conn, checkfirst=True)
    plain = conn.execute(
        select(content_keys.c.id).where(content_keys.c.kek.is_(None)).limit(1)
    ).first()
    if plain is None:
        return 0
    if keyring is None:
        raise HubError("this hub's vault holds plain item keys and the hub has no directory")
    count = 0
    while True:
        rows = conn.execute(
            select(content_keys.c.id, content_keys.c.key)
            .where(content_keys.c.kek.is_(None))
            .order_by(content_keys.c.id)
            .limit(BUCKET)
        ).all()
        if not rows:
            return count
        kek_id = _open_kek(conn, keyring, len(rows))
        ids = [r[0] for r in rows]
        conn.execute(delete(content_keys).where(content_keys.c.id.in_(ids)))
        conn.execute(
            insert(content_keys),
            [{"id": i, "key": keyring.wrap(kek_id, i, bytes(k)), "kek": kek_id} for i, k in rows],
        )
        count += len(rows)


def purge_deleted(engine: Engine) -> None:
    """After a withdrawal commits, best effort: copy what the WAL holds into the database
    file (whose freed pages ``secure_delete`` zeroes) without waiting for anyone. Erasure
    does not depend on this — the withdrawn keys' KEK is destroyed — it only keeps the WAL
    from holding old pages longer than it must. PostgreSQL's autovacuum does the same."""
    if is_sqlite(engine):
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
