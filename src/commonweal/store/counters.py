"""Rate-limit counters: how much a subject used in a fixed window, taken atomically.

``take`` is one statement — an upsert whose update only happens while the count stays
within the limit, returning the new count — so two server processes taking at once cannot
both pass the last free unit: PostgreSQL locks the conflicting row and re-checks the
condition on its newest version; SQLite runs writers one at a time. It works in the
caller's transaction, so a take inside an append commits or rolls back with the append.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete

from commonweal.store.database import is_sqlite
from commonweal.store.schema import rate_counters

__all__ = ["prune", "take", "upsert_within"]


def upsert_within(
    conn: Connection,
    table: Any,
    keys: dict[str, Any],
    counted: dict[str, int],
    limit_column: str,
    limit: int,
) -> int | None:
    """Add ``counted`` (column -> amount) to the row of ``keys`` (inserting it if new) if
    ``limit_column`` stays at most ``limit``; return its new value, or None (nothing
    changed) if that would pass the limit. One statement: atomic across processes."""
    amount = counted[limit_column]
    if amount > limit:
        return None
    if is_sqlite(conn.engine):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    col = table.c[limit_column]
    stmt = (
        insert(table)
        .values(**keys, **counted)
        .on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={name: table.c[name] + n for name, n in counted.items()},
            where=col + amount <= limit,
        )
        .returning(col)
    )
    row = conn.execute(stmt).first()
    return None if row is None else int(row[0])


def take(
    conn: Connection, scope: str, subject: str, period: str, amount: int, limit: int
) -> int | None:
    """Take ``amount`` from ``subject``'s ``limit`` in ``scope`` for the window starting at
    ``period``; the count after taking, or None if the limit would pass (nothing taken)."""
    return upsert_within(
        conn,
        rate_counters,
        {"scope": scope, "subject": subject, "period": period},
        {"used": amount},
        "used",
        limit,
    )


def prune(conn: Connection, before: str) -> int:
    """Forget every window that started before the log time ``before``; how many rows
    went."""
    res = conn.execute(delete(rate_counters).where(rate_counters.c.period < before))
    return int(res.rowcount or 0)
