"""Reads of the contributions projection and the screening reports beside it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, literal, select

from commonweal.ledger.canonical import parse
from commonweal.store.schema import contributions, quality_reports

__all__ = ["contribution_rows", "contributions_by_id", "quality_report"]


def contribution_rows(
    conn: Connection,
    *,
    member: str | None = None,
    status: str | None = None,
    flag: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Contributions in log order, filtered by member, status and one whole flag."""
    stmt = select(contributions).order_by(contributions.c.batch_index, contributions.c.id)
    stmt = stmt.limit(limit)
    if member:
        stmt = stmt.where(contributions.c.member == member)
    if status:
        stmt = stmt.where(contributions.c.status == status)
    if flag:
        # Flags are a comma-separated list: match a whole one (LIKE's _ escaped).
        escaped = flag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        listed = literal(",") + contributions.c.flags + literal(",")
        stmt = stmt.where(listed.like(f"%,{escaped},%", escape="\\"))
    return [dict(r._mapping) for r in conn.execute(stmt)]


def contributions_by_id(conn: Connection, ids: Sequence[str]) -> list[dict[str, Any]]:
    stmt = select(contributions).where(contributions.c.id.in_(list(ids)))
    return [dict(r._mapping) for r in conn.execute(stmt)]


def quality_report(conn: Connection, item_id: str) -> dict[str, Any] | None:
    """An item's screening report, or None (unknown or withdrawn)."""
    row = conn.execute(
        select(quality_reports.c.report).where(quality_reports.c.id == item_id)
    ).first()
    return None if row is None else parse(row[0])
