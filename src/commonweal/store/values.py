"""Each valuation's per-item values (the log holds their Merkle root)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert, select

from commonweal.store.schema import item_values

__all__ = ["add_values", "item_values_of", "member_values_of", "values_of"]

_CHUNK = 5000


def add_values(conn: Connection, valuation: int, rows: Sequence[tuple[str, str, str]]) -> None:
    """Store ``(item, credited member, value)`` rows of valuation ``valuation``."""
    table = [{"valuation": valuation, "item": i, "member": m, "value": v} for i, m, v in rows]
    for n in range(0, len(table), _CHUNK):
        conn.execute(insert(item_values), table[n : n + _CHUNK])


def values_of(conn: Connection, valuation: int) -> list[tuple[str, str, str]]:
    """A valuation's ``(item, member, value)`` rows, sorted by item."""
    stmt = select(item_values.c.item, item_values.c.member, item_values.c.value).where(
        item_values.c.valuation == valuation
    )
    return sorted((r[0], r[1], r[2]) for r in conn.execute(stmt))


def item_values_of(conn: Connection, valuation: int, items: Sequence[str]) -> dict[str, str]:
    """The values of ``items`` (those the valuation has) in valuation ``valuation``."""
    out: dict[str, str] = {}
    wanted = list(items)
    for n in range(0, len(wanted), _CHUNK):
        stmt = select(item_values.c.item, item_values.c.value).where(
            item_values.c.valuation == valuation, item_values.c.item.in_(wanted[n : n + _CHUNK])
        )
        out.update((r[0], r[1]) for r in conn.execute(stmt))
    return out


def member_values_of(conn: Connection, valuation: int, member: str) -> list[str]:
    """Every value valuation ``valuation`` credited to ``member``, in item order."""
    stmt = (
        select(item_values.c.value)
        .where(item_values.c.valuation == valuation, item_values.c.member == member)
        .order_by(item_values.c.item)
    )
    return [r[0] for r in conn.execute(stmt)]
