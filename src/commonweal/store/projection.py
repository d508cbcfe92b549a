"""Projections: the query-friendly tables that the log's replay implies.

They are derived data. The hub writes the rows that each batch touched (the rules say which),
in the same transaction as the entries; ``rebuild`` recreates them all from a replayed state;
``ledger verify`` compares them, row for row, with what its own replay produced.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select

from commonweal.community.rules import Touched
from commonweal.community.state import CONTRIBUTION_COLUMNS, State
from commonweal.ledger.canonical import canonical_str
from commonweal.store.schema import (
    PROJECTION_TABLES,
    apikeys,
    community,
    contributions,
    epochs,
    holdings,
    invites,
    members,
    models,
    nodes,
    payouts,
    proposals,
    reviews,
    treasury,
    valuations,
)

__all__ = [
    "community_row",
    "compare",
    "db_rows",
    "gc_paused",
    "rebuild",
    "state_rows",
    "write_touched",
]

_KEYS: dict[str, str] = {
    "community": "id",
    "members": "key",
    "invites": "token_hash",
    "contributions": "id",
    "reviews": "entry",
    "models": "version",
    "apikeys": "key_hash",
    "treasury": "id",
    "valuations": "valuation",
    "holdings": "member",
    "epochs": "epoch",
    "payouts": "payout",
    "proposals": "proposal",
    "nodes": "member",
}


def community_row(state: State) -> dict[str, Any]:
    assert state.charter is not None
    return {
        "id": 1,
        "name": state.charter.name,
        "origin": state.origin,
        "hub_key": state.hub_key,
        "founder": state.founder,
        "charter": canonical_str(state.charter.to_json()),
    }


def state_rows(state: State) -> dict[str, list[dict[str, Any]]]:
    """Every projection row that ``state`` implies, sorted by primary key."""
    return {
        "community": [community_row(state)] if state.charter is not None else [],
        "members": sorted((m.to_json() for m in state.members.values()), key=lambda r: r["key"]),
        "invites": sorted(
            (i.to_json() for i in state.invites.values()), key=lambda r: r["token_hash"]
        ),
        # A contribution's row holds its table's columns only: what it resembles lives in
        # the log (``to_json``, which the API answers, adds it).
        "contributions": sorted(
            (
                dict(zip(CONTRIBUTION_COLUMNS, c.row(), strict=True))
                for c in state.contributions.values()
            ),
            key=lambda r: r["id"],
        ),
        "reviews": sorted((r.to_json() for r in state.reviews.values()), key=lambda r: r["entry"]),
        "models": sorted((m.to_json() for m in state.models.values()), key=lambda r: r["version"]),
        "apikeys": sorted(
            (k.to_json() for k in state.apikeys.values()), key=lambda r: r["key_hash"]
        ),
        "treasury": [state.treasury.to_json()] if state.charter is not None else [],
        **{
            name: [r.to_json() for _, r in sorted(getattr(state, name).items())]
            for name in ("valuations", "holdings", "epochs", "payouts", "proposals", "nodes")
        },
    }


def db_rows(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for table in PROJECTION_TABLES:
        key = table.c[_KEYS[table.name]]
        out[table.name] = [dict(r._mapping) for r in conn.execute(select(table).order_by(key))]
    return out


def _state_tuples(state: State) -> dict[str, list[Any]]:
    community_rows = []
    if state.charter is not None:
        row = community_row(state)
        community_rows.append(tuple(row[c.name] for c in community.c))
    return {
        "community": community_rows,
        # Members and invites are named tuples in column order: they compare equal to the
        # driver's row tuples as they are.
        "members": list(state.members.values()),
        "invites": list(state.invites.values()),
        "contributions": [c.row() for c in state.contributions.values()],
        "reviews": list(state.reviews.values()),
        "models": list(state.models.values()),
        "apikeys": list(state.apikeys.values()),
        "treasury": [state.treasury] if state.charter is not None else [],
        "valuations": list(state.valuations.values()),
        "holdings": list(state.holdings.values()),
        "epochs": list(state.epochs.values()),
        "payouts": list(state.payouts.values()),
        "proposals": list(state.proposals.values()),
        "nodes": list(state.nodes.values()),
    }


def _driver_rows(conn: Connection, table: Table, cols: list[str]) -> list[tuple[Any, ...]]:
    # Straight from the DB-API cursor, in the caller's transaction: for a hundred thousand
    # rows SQLAlchemy's Row objects cost more than the comparison itself.
    cur = conn.connection.cursor()
    try:
        cur.execute(f"SELECT {', '.join(cols)} FROM {table.name}")
        return [tuple(r) for r in cur.fetchall()]
    finally:
        cur.close()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a long replay or comparison.

    Replay allocates many long-lived objects and no reference cycles; the collector would
    walk the whole growing state again and again (half the replay time of a 100k-entry
    log). It changes no result, only how long it takes.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def compare(conn: Connection, state: State) -> str | None:
    """Where the projection tables differ from ``state``, in words; None if they agree.

    Compares plain tuples read straight from the driver, sorted in Python: it stays cheap
    for a large community (a hundred thousand members compare in well under a second)
    and does not depend on the database's collation.
    """
    with gc_paused():
        expected = _state_tuples(state)
        for table in PROJECTION_TABLES:
            cols = [c.name for c in table.c]
            # Keyed by primary key (the first column) rather than sorted: cheaper, and
            # independent of row order and collation.
            have = {r[0]: r for r in _driver_rows(conn, table, cols)}
            want = expected[table.name]
            for w in want:
                h = have.get(w[0])
                if h != w:
                    shown = dict(zip(cols, h, strict=True)) if h else "no such row"
                    return (
                        f"{table.name!r} differs from the replayed log: replay has "
                        f"{dict(zip(cols, w, strict=True))}, table has {shown}"
                    )
            if len(have) != len(want):
                return (
                    f"{table.name!r} differs from the replayed log: replay has {len(want)} "
                    f"rows, table has {len(have)}"
                )
    return None


def _replace(
    conn: Connection, table: Table, keys: Iterable[Any], rows: list[dict[str, Any]]
) -> None:
    key_col = table.c[_KEYS[table.name]]
    keys = list(keys)
    for i in range(0, len(keys), 400):
        conn.execute(delete(table).where(key_col.in_(keys[i : i + 400])))
    if rows:
        conn.execute(insert(table), rows)


# Keyed projections: the table, and the State map and Touched field of the same name.
_KEYED = (
    members,
    invites,
    contributions,
    reviews,
    models,
    apikeys,
    valuations,
    holdings,
    epochs,
    payouts,
    proposals,
    nodes,
)


def write_touched(conn: Connection, state: State, touched: Iterable[Touched]) -> None:
    """Upsert the rows a batch touched, as ``state`` (after the batch) has them."""
    touched = list(touched)
    if any(t.community for t in touched):
        _replace(conn, community, [1], [community_row(state)])
    if any(t.community or t.treasury for t in touched):
        _replace(conn, treasury, [1], [state.treasury.to_json()])
    for table in _KEYED:
        keys = {k for t in touched for k in getattr(t, table.name)}
        if keys:
            source = getattr(state, table.name)
            rows = [source[k].to_json() for k in keys if k in source]
            _replace(conn, table, keys, rows)


def rebuild(conn: Connection, state: State) -> dict[str, int]:
    """Drop and recreate every projection table from ``state``; return row counts."""
    for table in reversed(PROJECTION_TABLES):
        table.drop(conn, checkfirst=True)
    for table in PROJECTION_TABLES:
        table.create(conn)
    counts: dict[str, int] = {}
    for name, rows in state_rows(state).items():
        table = next(t for t in PROJECTION_TABLES if t.name == name)
        for i in range(0, len(rows), 5000):
            conn.execute(insert(table), rows[i : i + 5000])
        counts[name] = len(rows)
    return counts
