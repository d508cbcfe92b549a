"""Model versions' stored parts: shard blobs by SHA-256, and which items (and which
evaluation items) each version used."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select

from commonweal.errors import Conflict
from commonweal.store.schema import model_blobs, model_items

__all__ = [
    "EVALUATION_SHARD",
    "add_version_items",
    "blob",
    "item_versions",
    "put_blob",
    "version_items",
]

EVALUATION_SHARD = -1  # model_items rows of the version's evaluation set
_CHUNK = 5000


def put_blob(conn: Connection, sha256: str, data: bytes) -> None:
    """Keep a shard's bytes under their hash (once: a reused shard is already there)."""
    if conn.execute(select(model_blobs.c.sha256).where(model_blobs.c.sha256 == sha256)).first():
        return
    conn.execute(insert(model_blobs).values(sha256=sha256, data=data))


def blob(conn: Connection, sha256: str) -> bytes:
    """A shard's bytes, checked against their hash (Conflict if missing or altered)."""
    row = conn.execute(select(model_blobs.c.data).where(model_blobs.c.sha256 == sha256)).first()
    if row is None:
        raise Conflict(f"the model artifact {sha256[:16]}… is missing from the store")
    data = bytes(row[0])
    if hashlib.sha256(data).hexdigest() != sha256:
        raise Conflict(f"the model artifact {sha256[:16]}… does not match its hash")
    return data


def add_version_items(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """``{"version", "item", "shard"}`` rows (shard ``EVALUATION_SHARD`` for evaluation)."""
    for n in range(0, len(rows), _CHUNK):
        conn.execute(insert(model_items), list(rows[n : n + _CHUNK]))


def version_items(conn: Connection, version: int, *, evaluation: bool = False) -> list[str]:
    """The sorted ids a version trained on (or, with ``evaluation``, was scored on)."""
    shard = model_items.c.shard
    where = shard == EVALUATION_SHARD if evaluation else shard >= 0
    stmt = select(model_items.c.item).where(model_items.c.version == version, where)
    return sorted(r[0] for r in conn.execute(stmt))


def item_versions(conn: Connection, item: str) -> dict[int, int]:
    """``{version: shard}`` for every version that trained on ``item``."""
    stmt = (
        select(model_items.c.version, model_items.c.shard)
        .where(model_items.c.item == item, model_items.c.shard >= 0)
        .order_by(model_items.c.version)
    )
    return {r[0]: r[1] for r in conn.execute(stmt)}
