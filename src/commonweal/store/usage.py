"""Metered calls per API key and day: what each call charges (within the key's quota)
and revenue bills."""

from __future__ import annotations

from sqlalchemy import Connection, and_, select, update

from commonweal.store.counters import upsert_within
from commonweal.store.database import is_sqlite
from commonweal.store.schema import usage

__all__ = ["add_usage", "charge", "stored_calls", "take_unbilled"]


def charge(conn: Connection, key_hash: str, day: str, calls: int, quota: int) -> int | None:
    """Count ``calls`` for a key on ``day`` (and as unbilled) if its count stays within
    ``quota``: the day's count after, or None if that would pass the quota (nothing
    counted). One conditional upsert, so the quota holds across server processes."""
    return upsert_within(
        conn,
        usage,
        {"key_hash": key_hash, "day": day},
        {"calls": calls, "unbilled": calls},
        "calls",
        quota,
    )


def add_usage(conn: Connection, key_hash: str, day: str, calls: int) -> None:
    """Add ``calls`` to a key's count for ``day`` (and to what is still unbilled)."""
    if is_sqlite(conn.engine):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    stmt = insert(usage).values(key_hash=key_hash, day=day, calls=calls, unbilled=calls)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[usage.c.key_hash, usage.c.day],
            set_={"calls": usage.c.calls + calls, "unbilled": usage.c.unbilled + calls},
        )
    )


def stored_calls(conn: Connection, key_hash: str, day: str) -> int:
    """Calls already flushed for a key on ``day`` (for its quota)."""
    row = conn.execute(
        select(usage.c.calls).where(and_(usage.c.key_hash == key_hash, usage.c.day == day))
    ).first()
    return int(row[0]) if row else 0


def take_unbilled(conn: Connection) -> dict[str, int]:
    """Unbilled calls per key, moved to billed in this transaction.

    The rows are locked, and exactly what was read is subtracted: a flush by another
    process that commits meanwhile (PostgreSQL, READ COMMITTED) is then billed next time
    instead of zeroed unbilled. Rows are locked in the order flushes write them.
    """
    rows = conn.execute(
        select(usage.c.key_hash, usage.c.day, usage.c.unbilled)
        .where(usage.c.unbilled > 0)
        .order_by(usage.c.key_hash, usage.c.day)
        .with_for_update()
    ).all()
    per_key: dict[str, int] = {}
    for kh, day, n in rows:
        conn.execute(
            update(usage)
            .where(and_(usage.c.key_hash == kh, usage.c.day == day))
            .values(unbilled=usage.c.unbilled - n)
        )
        per_key[kh] = per_key.get(kh, 0) + int(n)
    return per_key
