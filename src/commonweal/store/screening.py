"""Screening's stored indexes: the hub's secret for exact-duplicate keys, each item's
exact key and near-duplicate signature, and each item's screening report."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, insert, select

from commonweal.ledger.canonical import canonical
from commonweal.store.schema import dedup_exact, hub_settings, near_signatures, quality_reports

__all__ = [
    "add_exact_keys",
    "add_near_signatures",
    "add_reports",
    "dedup_secret",
    "exact_copy",
    "near_signatures_stored",
]


def dedup_secret(conn: Connection) -> bytes:
    """The hub's secret key for exact-duplicate HMACs, made (and kept) on first use."""
    row = conn.execute(
        select(hub_settings.c.value).where(hub_settings.c.name == "dedup_secret")
    ).first()
    if row is not None:
        return bytes(row[0])
    value = os.urandom(32)
    conn.execute(insert(hub_settings).values(name="dedup_secret", value=value))
    return value


def exact_copy(conn: Connection, key: str) -> str | None:
    """The item an earlier batch indexed under this exact-duplicate key, if any."""
    found: str | None = conn.execute(
        select(dedup_exact.c.id).where(dedup_exact.c.key == key)
    ).scalar()
    return found


def near_signatures_stored(conn: Connection) -> Iterator[tuple[str, bytes]]:
    """Every indexed item's near-duplicate signature."""
    for iid, sig in conn.execute(select(near_signatures.c.id, near_signatures.c.signature)):
        yield iid, bytes(sig)


def add_exact_keys(conn: Connection, first_copies: Mapping[str, str]) -> None:
    """Index the first copy of each exact key (key -> item id)."""
    if first_copies:
        conn.execute(insert(dedup_exact), [{"key": k, "id": v} for k, v in first_copies.items()])


def add_near_signatures(conn: Connection, signatures: Sequence[tuple[str, bytes]]) -> None:
    """Index items' near-duplicate signatures."""
    if signatures:
        conn.execute(
            insert(near_signatures), [{"id": iid, "signature": sig} for iid, sig in signatures]
        )


def add_reports(conn: Connection, reports: Sequence[tuple[str, Any]]) -> None:
    """Each item's screening report (findings by kind and position, never by value)."""
    if reports:
        conn.execute(
            insert(quality_reports),
            [{"id": iid, "report": canonical(report).decode()} for iid, report in reports],
        )
