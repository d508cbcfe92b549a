"""The log in the database: entries, tree nodes, the head and signed checkpoints.

Functions here take a ``Connection`` that the caller holds in a transaction, so that the
hub can write entries, nodes, projections and the new checkpoint in one commit: either all
of a batch is there after a crash, or none of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)

from commonweal.errors import ConfigError, HubError, NotFound
from commonweal.ledger.event import Leaf, decode_leaf
from commonweal.ledger.merkle import EMPTY_ROOT, NodeKey
from commonweal.store.database import is_sqlite
from commonweal.store.schema import (
    COUNTER_TABLES,
    LOG_INDEXES,
    SCHEMA_VERSION,
    ledger_checkpoints,
    ledger_entries,
    ledger_head,
    ledger_nodes,
    metadata,
    schema_info,
)

__all__ = ["EntryRow", "LogStore"]


@dataclass(frozen=True, slots=True)
class EntryRow:
    index: int
    leaf: bytes
    kind: str
    actor: str
    log_time: str


class LogStore:
    """The log's tables over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- lifecycle -----------------------------------------------------------------------

    def create(self, conn: Connection) -> None:
        metadata.create_all(conn)
        if conn.execute(select(schema_info.c.version)).first() is None:
            conn.execute(insert(schema_info).values(id=1, version=SCHEMA_VERSION))
            conn.execute(insert(ledger_head).values(id=1, size=0, root=EMPTY_ROOT))

    def needs_upgrade(self, conn: Connection) -> bool:
        row = conn.execute(select(schema_info.c.version)).first()
        return row is not None and row[0] < SCHEMA_VERSION

    def upgrade(self, conn: Connection) -> None:
        """Bring an older schema up to date, in the caller's write transaction. Versions 2,
        3 and 4 added tables, and columns only to projections, which the hub rebuilds from
        the log right after: creating the missing tables is the whole migration."""
        metadata.create_all(conn)
        self.add_indexes(conn)
        conn.execute(update(schema_info).values(version=SCHEMA_VERSION))

    def missing_indexes(self, conn: Connection) -> list[str]:
        """The names of the log's indexes (``LOG_INDEXES``) this database lacks."""
        have = {ix["name"] for ix in inspect(conn).get_indexes("ledger_entries")}
        return [str(ix.name) for ix in LOG_INDEXES if ix.name not in have]

    def add_indexes(self, conn: Connection) -> None:
        """Create the missing log indexes, in the caller's write transaction."""
        for ix in LOG_INDEXES:
            ix.create(conn, checkfirst=True)

    def missing_counters(self, conn: Connection) -> list[str]:
        """The rate-limit tables (``COUNTER_TABLES``) this database lacks: they hold only
        counts for the current windows, so a hub adds them when it opens, like indexes."""
        have = set(inspect(conn).get_table_names())
        return [t.name for t in COUNTER_TABLES if t.name not in have]

    def add_counters(self, conn: Connection) -> None:
        """Create the missing rate-limit tables, in the caller's write transaction."""
        for t in COUNTER_TABLES:
            t.create(conn, checkfirst=True)

    def check_schema(self, conn: Connection) -> None:
        try:
            row = conn.execute(select(schema_info.c.version)).first()
        except Exception:
            raise ConfigError(
                "this database holds no Commonweal hub; create one with `commonweal init`"
            ) from None
        if row is not None and 1 <= row[0] < SCHEMA_VERSION:
            return  # the hub upgrades it (``upgrade``) before use
        if row is None or row[0] != SCHEMA_VERSION:
            raise ConfigError(
                f"database schema version {row[0] if row else None} is not the "
                f"{SCHEMA_VERSION} this Commonweal understands"
            )

    # -- head ----------------------------------------------------------------------------

    def lock_head(self, conn: Connection) -> tuple[int, bytes]:
        """Read the head inside a write transaction, locking it against other writers."""
        stmt = select(ledger_head.c.size, ledger_head.c.root).where(ledger_head.c.id == 1)
        if not is_sqlite(self.engine):  # SQLite already holds the lock (BEGIN IMMEDIATE)
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None:
            raise HubError("the log head row is missing; the database is damaged")
        return int(row[0]), bytes(row[1])

    def head(self, conn: Connection) -> tuple[int, bytes]:
        row = conn.execute(select(ledger_head.c.size, ledger_head.c.root)).first()
        if row is None:
            raise HubError("the log head row is missing; the database is damaged")
        return int(row[0]), bytes(row[1])

    def set_head(self, conn: Connection, size: int, root: bytes) -> None:
        conn.execute(update(ledger_head).where(ledger_head.c.id == 1).values(size=size, root=root))

    # -- entries -------------------------------------------------------------------------

    def write_entries(self, conn: Connection, rows: Sequence[EntryRow]) -> None:
        if rows:
            conn.execute(
                insert(ledger_entries),
                [
                    {
                        "idx": r.index,
                        "leaf": r.leaf,
                        "kind": r.kind,
                        "actor": r.actor,
                        "log_time": r.log_time,
                    }
                    for r in rows
                ],
            )

    def leaf_bytes(self, conn: Connection, start: int, end: int) -> list[bytes]:
        # Through the DB-API cursor, in the caller's transaction: verification streams
        # every leaf, and SQLAlchemy's per-row objects would cost as much as parsing them.
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        cur = conn.connection.cursor()
        try:
            cur.execute(
                f"SELECT leaf FROM ledger_entries WHERE idx >= {mark} AND idx < {mark} "
                "ORDER BY idx",
                (start, end),
            )
            return [bytes(r[0]) for r in cur.fetchall()]
        finally:
            cur.close()

    def iter_leaf_bytes(
        self, conn: Connection, start: int, end: int, *, chunk: int = 20_000
    ) -> Iterator[bytes]:
        """Stream leaves in index order without holding them all in memory."""
        pos = start
        while pos < end:
            batch = self.leaf_bytes(conn, pos, min(end, pos + chunk))
            if not batch:
                return
            yield from batch
            pos += len(batch)

    def leaves(self, conn: Connection, start: int, end: int) -> list[Leaf]:
        return [decode_leaf(b, strict=False) for b in self.leaf_bytes(conn, start, end)]

    def find_leaf_bytes(
        self,
        conn: Connection,
        *,
        kinds: Sequence[str] = (),
        actors: Sequence[str] = (),
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[bytes]:
        """Leaves of one of ``kinds`` and by one of ``actors`` (either empty: any), newest
        first: the ``limit`` just below index ``before``, or, given ``after``, the ``limit``
        just above it. One range scan of ``(kind, idx)`` or ``(actor, idx)`` per value."""
        e = ledger_entries.c
        where: list[ColumnElement[bool]] = [e.kind.in_(kinds)] if kinds else []
        if actors:
            where.append(e.actor.in_(actors))
        if before is not None:
            where.append(e.idx < before)
        if after is not None:
            where.append(e.idx > after)
        order = e.idx.asc() if after is not None else e.idx.desc()
        rows = conn.execute(select(e.leaf).where(*where).order_by(order).limit(limit)).all()
        leaves = [bytes(r[0]) for r in rows]
        return leaves[::-1] if after is not None else leaves

    def count_entries(
        self, conn: Connection, *, kinds: Sequence[str] = (), actors: Sequence[str] = (), cap: int
    ) -> int:
        """How many entries match, counting no further than ``cap`` (an exact count of a
        common kind at 100,000 entries costs PostgreSQL ~50 ms; a page needs no more than
        "over 10,000")."""
        e = ledger_entries.c
        where: list[ColumnElement[bool]] = [e.kind.in_(kinds)] if kinds else []
        if actors:
            where.append(e.actor.in_(actors))
        inner = select(e.idx).where(*where).limit(cap).subquery()
        return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())

    # -- tree ----------------------------------------------------------------------------

    def write_nodes(self, conn: Connection, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        if nodes:
            conn.execute(
                insert(ledger_nodes), [{"level": lv, "idx": i, "hash": h} for lv, i, h in nodes]
            )

    def get_nodes(self, conn: Connection, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        """Stored subtree hashes for ``keys``, in one query.

        The keys are grouped by level, one ``level = ? AND idx IN (...)`` term per level,
        because a row-value ``(level, idx) IN (...)`` makes SQLite scan the whole table
        (190 ms at a million leaves) where these terms are primary-key lookups.
        """
        if not keys:
            return {}
        by_level: dict[int, list[int]] = {}
        for level, idx in keys:
            by_level.setdefault(level, []).append(idx)
        terms = [
            and_(ledger_nodes.c.level == level, ledger_nodes.c.idx.in_(idxs))
            for level, idxs in by_level.items()
        ]
        out: dict[NodeKey, bytes] = {}
        # A few terms per query keeps SQLite's bound-parameter count small even for the
        # frontier of a huge tree.
        for i in range(0, len(terms), 50):
            rows = conn.execute(
                select(ledger_nodes.c.level, ledger_nodes.c.idx, ledger_nodes.c.hash).where(
                    or_(*terms[i : i + 50])
                )
            ).all()
            out.update({(int(r[0]), int(r[1])): bytes(r[2]) for r in rows})
        return out

    def nodes_completed_by(self, conn: Connection, start: int, end: int) -> dict[NodeKey, bytes]:
        """The stored nodes that leaves ``[start, end)`` complete: at each level, the nodes
        whose last leaf is in the range (what ``Frontier.append`` returns for those leaves).
        One range scan of the primary key per level, so ``verify`` reads every stored node
        once, in step with the leaves it hashes."""
        if end <= start:
            return {}
        n, terms, level = ledger_nodes.c, [], 0
        while 1 << level <= end:
            # Node (level, i) ends at leaf ((i + 1) << level) - 1.
            first = ((start + (1 << level)) >> level) - 1
            last = (end >> level) - 1
            if last >= first:
                terms.append(and_(n.level == level, n.idx >= first, n.idx <= last))
            level += 1
        out: dict[NodeKey, bytes] = {}
        for i in range(0, len(terms), 50):
            rows = conn.execute(select(n.level, n.idx, n.hash).where(or_(*terms[i : i + 50])))
            out.update({(int(r[0]), int(r[1])): bytes(r[2]) for r in rows})
        return out

    def count_nodes(self, conn: Connection) -> int:
        """How many tree nodes are stored (a tree of ``n`` leaves has ``2n - popcount(n)``)."""
        return int(conn.execute(select(func.count()).select_from(ledger_nodes)).scalar_one())

    def last_entry(self, conn: Connection) -> int | None:
        """The highest index among the stored entries (``None`` when there are none)."""
        got = conn.execute(select(func.max(ledger_entries.c.idx))).scalar_one()
        return None if got is None else int(got)

    def node_reader(self, conn: Connection) -> _ConnReader:
        return _ConnReader(self, conn)

    # -- checkpoints ---------------------------------------------------------------------

    def add_checkpoint(self, conn: Connection, size: int, root: bytes, note: str) -> None:
        conn.execute(insert(ledger_checkpoints).values(size=size, root=root, note=note))

    def latest_checkpoint(self, conn: Connection) -> str:
        row = conn.execute(
            select(ledger_checkpoints.c.note).order_by(ledger_checkpoints.c.size.desc()).limit(1)
        ).first()
        if row is None:
            raise NotFound("the log has no checkpoint yet")
        return str(row[0])


class _ConnReader:
    """Adapts a connection to :class:`commonweal.ledger.merkle.NodeReader`."""

    def __init__(self, store: LogStore, conn: Connection) -> None:
        self._store, self._conn = store, conn

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        return self._store.get_nodes(self._conn, keys)
