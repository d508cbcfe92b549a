"""The hub: the one application object, and the only path by which anything is written.

Every write is the same five steps, in one database transaction: verify each event's
signature → take the append lock → ``check`` and ``apply`` it with the community's rules →
append it to the Merkle log → update the projections and sign a new checkpoint → commit.
A batch is all-or-nothing: if any event is refused, nothing is written and the in-memory
state is left as it was (states are immutable, so there is nothing to undo).

The hub keeps the replayed ``State`` and the tree's frontier in memory as a cache of the
log. Under the append lock it first compares the cache with the log head and catches up
from the database if another process appended meanwhile, so several hub processes can
share one PostgreSQL database without forking the log.
"""

from __future__ import annotations

import logging
import os
import threading
import tomllib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from commonweal.community import rules, views
from commonweal.community.charter import Charter
from commonweal.community.state import State
from commonweal.errors import (
    CommonwealError,
    ConfigError,
    HubError,
    InvalidInput,
    NotFound,
    TooLarge,
    VerificationFailed,
)
from commonweal.hub import names
from commonweal.hub.data import DataArea
from commonweal.hub.decisions import pending_decisions
from commonweal.hub.federation import FederationArea
from commonweal.hub.governance import GovernanceArea
from commonweal.hub.limits import LimitsArea
from commonweal.hub.log import LogArea
from commonweal.hub.models import ModelsArea
from commonweal.hub.ownership import OwnershipArea
from commonweal.hub.signatures import SignaturesArea
from commonweal.hub.webhooks import WebhooksArea
from commonweal.ledger.event import Leaf, SignedEvent, decode_leaf, encode_leaf, now, sign_event
from commonweal.ledger.files import exposed, private_directory, write_private
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import Frontier, leaf_hash
from commonweal.ledger.note import Checkpoint, NoteSigner, NoteVerifier, parse_checkpoint
from commonweal.store import projection, vault
from commonweal.store.database import open_engine, read_connection, write_connection
from commonweal.store.keyring import KEK_DIRECTORY, Keyring
from commonweal.store.log import EntryRow, LogStore

__all__ = [
    "CONFIG_FILE",
    "FOUNDER_KEY_FILE",
    "HUB_KEY_FILE",
    "KEK_DIRECTORY",
    "MAX_BATCH",
    "Appended",
    "Computing",
    "Hub",
    "Recorded",
    "default_origin",
]

MAX_BATCH = 1000
CONFIG_FILE = "hub.toml"
HUB_KEY_FILE = "hub.key"
FOUNDER_KEY_FILE = "founder.key"

_log = logging.getLogger(__name__)


def default_origin(name: str, key_id: str) -> str:
    """``commonweal.local/<slug>-<8 hex of the hub key>``: readable, and unique enough that
    two hubs of the same name never share an origin (verifiers pin a key per origin)."""
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "community"
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"commonweal.local/{slug[:60]}-{key_id[:8]}"


@dataclass(frozen=True)
class Appended:
    """What the hub acknowledges for a committed batch."""

    entries: list[dict[str, Any]]
    size: int
    checkpoint: str


@dataclass
class Computing:
    """What a hub-computed event's ``build`` sees under the append lock (``Hub.record``)."""

    conn: Connection  # the append's transaction: rows written here commit with the event
    state: State  # the state the rules will check the event against
    index: int  # the log index the computed event will have
    hub: Hub
    extra: list[SignedEvent] = field(default_factory=list)

    def also(self, kind: str, body: dict[str, Any]) -> None:
        """Append another hub event right after the computed one, in the same commit."""
        self.extra.append(self.hub.sign(kind, body))


@dataclass(frozen=True)
class Recorded:
    """A hub-computed event once committed: its body, its index, and the batch."""

    body: dict[str, Any]
    entry: int
    appended: Appended

    @property
    def size(self) -> int:
        """The log's size after the batch."""
        return self.appended.size

    @property
    def checkpoint(self) -> str:
        """The checkpoint the hub signed for the batch."""
        return self.appended.checkpoint


class Hub:
    """A community's hub over one database and one signing key.

    The write path lives here; each area of the community is a namespace on it —
    ``hub.log`` (checkpoints, entries, proofs), ``hub.data`` (contributions, review,
    content), ``hub.models`` (training, lineage, serving), ``hub.ownership`` (valuations,
    epochs, shares, payouts, claims), ``hub.governance`` (proposals and their execution),
    ``hub.webhooks`` (members' private webhooks and the thread that pushes to them),
    ``hub.limits`` (a served hub's rate limits).
    ``clock`` stamps each entry's log time and is the hub's "now" wherever time matters
    (voting periods, the meter's day); tests pass their own instead of sleeping.
    """

    clock: Callable[[], str] = staticmethod(now)

    def __init__(
        self,
        *,
        engine: Engine,
        signer: NoteSigner,
        directory: Path | None = None,
        clock: Callable[[], str] | None = None,
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.directory = directory
        # The vault's KEKs live beside the hub's signing key, in the directory, whatever
        # the database is (a hub on PostgreSQL has a directory too).
        self._keyring = Keyring(directory / KEK_DIRECTORY) if directory is not None else None
        if clock is not None:
            self.clock = clock
        self.store = LogStore(engine)
        self._counting: Engine | None = None
        self._counting_lock = threading.Lock()
        self._lock = threading.Lock()
        self._state: State | None = None
        self._frontier: Frontier | None = None
        # Whether ``_frontier`` was checked against the signed checkpoint since it was read
        # from the stored tree nodes (one computed here from checked ones needs no check).
        self._frontier_checked = False
        self._checked_at = 0.0
        self._names = names.NameIndex()  # lookalike member names (used under self._lock)
        self.log = LogArea(self)
        self.data = DataArea(self)
        self.models = ModelsArea(self)
        self.ownership = OwnershipArea(self)
        self.governance = GovernanceArea(self)
        self.webhooks = WebhooksArea(self)
        self.limits = LimitsArea(self)
        self.signatures = SignaturesArea(self)
        self.federation = FederationArea(self)
        with read_connection(engine) as conn:
            self.store.check_schema(conn)
            stale = self.store.needs_upgrade(conn)
            unindexed = not stale and bool(self.store.missing_indexes(conn))
            uncounted = not stale and bool(self.store.missing_counters(conn))
        if unindexed or uncounted:
            with write_connection(engine) as conn:
                self.store.add_indexes(conn)
                self.store.add_counters(conn)
        if stale:
            with write_connection(engine) as conn:
                upgraded = self.store.needs_upgrade(conn)
                if upgraded:
                    self.store.upgrade(conn)
                    # Schema 5: plain item keys are wrapped under a first KEK, in the same
                    # commit as the version bump, so no hub sees one without the other.
                    vault.migrate(conn, self._keyring)
            if upgraded:
                self.rebuild()  # the new projections (the treasury row, say) fill from the log
        if self._keyring is not None:
            # A crash between a withdrawal's commit and its KEK's destruction leaves the old
            # KEK on disk: destroy it now.
            vault.sweep(engine, self._keyring, self.store.lock_head)

    # -- opening -------------------------------------------------------------------------

    @property
    def keyring(self) -> Keyring:
        """The vault's key-encryption keys (files in the hub directory)."""
        if self._keyring is None:
            raise ConfigError(
                "this hub was opened without its directory, where the vault's keys live; "
                "open it with Hub.open(DIRECTORY)"
            )
        return self._keyring

    @property
    def origin(self) -> str:
        """The log's origin line: the name its checkpoints are signed under."""
        return self.signer.name

    @property
    def verifier(self) -> NoteVerifier:
        """The hub's public verifier key, as outsiders pin it."""
        return self.signer.verifier

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        database: str | None = None,
        clock: Callable[[], str] | None = None,
    ) -> Hub:
        """Open the hub whose directory ``commonweal init`` made.

        The database is ``database`` if given, else ``COMMONWEAL_DATABASE_URL`` if set,
        else the one ``hub.toml`` names (a relative SQLite path is relative to the
        directory). The hub's signing key is read from ``hub.key``. ConfigError, with the
        command that fixes it, when the directory is not a hub."""
        d = Path(directory)
        cfg_path = d / CONFIG_FILE
        if not cfg_path.exists():
            raise ConfigError(
                f"{d} is not a hub directory (no {CONFIG_FILE}); "
                f"create one with `commonweal init {d} --name NAME`"
            )
        try:
            cfg = tomllib.loads(cfg_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{cfg_path} is not valid TOML: {exc}") from None
        url = database or os.environ.get("COMMONWEAL_DATABASE_URL") or cfg.get("database")
        if not url:
            raise ConfigError(f"{cfg_path} names no database")
        signer = NoteSigner.parse((d / HUB_KEY_FILE).read_text())
        engine = open_engine(_resolve_sqlite(url, d))
        return cls(engine=engine, signer=signer, directory=d, clock=clock)

    @classmethod
    def init(
        cls,
        directory: str | os.PathLike[str],
        *,
        charter: Charter,
        founder_name: str,
        founder_key: SigningKey | None = None,
        database: str | None = None,
        origin: str | None = None,
        clock: Callable[[], str] | None = None,
    ) -> tuple[Hub, SigningKey]:
        """Create a hub directory, its database and keys, and log the founding event."""
        d = Path(directory)
        if (d / CONFIG_FILE).exists():
            raise ConfigError(f"{d} already holds a hub; pick another directory")
        private_directory(d)
        url = database or "sqlite:///hub.db"
        engine = open_engine(_resolve_sqlite(url, d))
        with write_connection(engine) as conn:
            store = LogStore(engine)
            store.create(conn)
            if store.head(conn)[0] != 0:
                raise ConfigError("that database already holds a community's log")
        hub_key = SigningKey.generate()
        signer = NoteSigner(origin or default_origin(charter.name, hub_key.key_id), hub_key)
        _write_private(d / HUB_KEY_FILE, str(signer) + "\n")
        founder = founder_key or SigningKey.generate()
        if founder_key is None:
            founder.save(d / FOUNDER_KEY_FILE, name=founder_name)
        # 0600: the database URL may carry a password.
        write_private(
            d / CONFIG_FILE,
            f'# Commonweal hub: {charter.name}\ndatabase = "{url}"\norigin = "{signer.name}"\n',
        )
        hub = cls(engine=engine, signer=signer, directory=d, clock=clock)
        genesis = sign_event(
            founder,
            "community.found",
            {
                "charter": charter.to_json(),
                "hub_key": signer.key.key_id,
                "origin": signer.name,
                "founder_name": founder_name,
            },
            hub=signer.name,
            time=hub.clock(),
        )
        hub.append([genesis])
        return hub, founder

    def close(self) -> None:
        """Release the database (metered calls are already stored as they are served)."""
        self.models.close()
        if self._counting is not None and self._counting is not self.engine:
            self._counting.dispose()
        self.engine.dispose()

    @property
    def counting(self) -> Engine:
        """The engine that usage and rate counters are written through: the same database
        as ``engine``, with commits that do not wait for the disk (``open_engine``'s
        ``relaxed``), as they happen once per served call."""
        with self._counting_lock:
            if self._counting is None:
                memory = self.engine.url.database in (None, "", ":memory:")
                self._counting = (
                    self.engine if memory else open_engine(self.engine.url, relaxed=True)
                )
            return self._counting

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The replayed state as of the last catch-up (loaded on first use)."""
        with self._lock:
            if self._state is None:
                with read_connection(self.engine) as conn:
                    self._catch_up(conn, self.store.head(conn)[0])
            assert self._state is not None
            return self._state

    def refresh(self, *, max_age: float = 0.0) -> None:
        """Catch up with entries other processes appended (a model trained by the CLI
        while this server runs, say), checking the head at most every ``max_age`` s."""
        import time

        t = time.monotonic()
        if self._state is not None and t - self._checked_at < max_age:
            return
        self._checked_at = t
        with read_connection(self.engine) as conn:
            size = self.store.head(conn)[0]
            # Only forward: this process may have appended since the snapshot was taken,
            # and a cache moved back to an older size would append at the wrong index.
            if self._state is None or self._state.size < size:
                with self._lock:
                    if self._state is None or self._state.size < size:
                        self._catch_up(conn, size)

    def _catch_up(self, conn: Any, size: int) -> None:
        state = self._state or State()
        if state.size < size:
            with projection.gc_paused():
                state = rules.replay(
                    (_trusted_leaf(b) for b in self.store.iter_leaf_bytes(conn, state.size, size)),
                    state,
                )
        if self._frontier is None or self._frontier.size != size:
            keys = Frontier.keys_for(size)
            got = self.store.get_nodes(conn, keys)
            missing = [k for k in keys if k not in got]
            if missing:
                raise HubError(
                    f"the stored Merkle tree lacks node {missing[0]} of a log of {size} "
                    "entries; the database is damaged: run `commonweal ledger verify`"
                )
            self._frontier = Frontier(size, [got[k] for k in keys])
            self._frontier_checked = False
        self._state = state

    # -- the write path ------------------------------------------------------------------

    def submit(self, doc: Any) -> Appended:
        """Append a wire document: one signed event, or ``{"events": [...]}``."""
        if isinstance(doc, dict) and set(doc) == {"events"}:
            items = doc["events"]
            if not isinstance(items, list) or not items:
                raise InvalidInput("events must be a non-empty list of signed events")
            if len(items) > MAX_BATCH:
                raise TooLarge(f"a batch holds at most {MAX_BATCH} events; got {len(items)}")
            signed = [SignedEvent.from_wire(e, where=f"events[{i}]") for i, e in enumerate(items)]
        else:
            signed = [SignedEvent.from_wire(doc)]
        return self.append(signed)

    def append(
        self,
        signed: Sequence[SignedEvent],
        *,
        after: Callable[[Connection, State, int], list[SignedEvent]] | None = None,
    ) -> Appended:
        """Check and append already signature-checked events, all or nothing.

        ``after`` runs under the append lock once ``signed`` are applied, with the
        transaction's connection, the state and the next index; the hub-signed events it
        returns (screening results, say) join the same commit. Events with effects beyond
        the log — withdrawals shred content, reviews may complete a decision — have them
        in the same transaction too.
        """
        retired: set[str] = set()
        made = self._keyring.created if self._keyring is not None else 0
        try:
            with self._lock, write_connection(self.engine) as conn:
                batch = self._start_batch(conn, numbered=len(signed) > 1)
                for pos, ev in enumerate(signed):
                    batch.add(ev, pos)
                if after is not None:
                    for ev in after(conn, batch.state, batch.next_index):
                        batch.add(ev, None)
                if any(r.kind == "review.submit" for r in batch.rows):
                    owed = self._owed_decisions(batch.state, batch.next_index)
                    if owed is not None:
                        batch.add(self.sign("review.decide", owed), None)
                # A served hub counts members' events against their rate, in this
                # transaction: refused or rolled back, they count nothing.
                self.limits.take_events(
                    conn, batch.state, [ev.actor for ev in signed], batch.log_time
                )
                if batch.withdrawn:
                    _, retired = vault.shred(conn, self.keyring, batch.withdrawn)
                note = self._write_batch(conn, batch)
                # The transaction commits when this block exits; only then does the cache
                # move on.
        except BaseException:
            self._names.reset()  # it may count a join the failed batch did not commit
            screener = self.data.screener_loaded
            if screener is not None:
                screener.reset()  # its in-memory index may hold the refused batch
            if self._keyring is not None and self._keyring.created != made:
                self._sweep_after_failure()
            raise
        self._state, self._frontier = batch.state, batch.frontier
        if batch.withdrawn:
            screener = self.data.screener_loaded
            if screener is not None:
                screener.forget(batch.withdrawn)
            # Committed: nothing from here on may report the withdrawal as failed.
            try:
                vault.destroy(self.keyring, retired)
            except OSError as exc:
                # The KEK files stay until the next open's sweep destroys them.
                _log.error("could not destroy retired vault keys %s: %s", sorted(retired), exc)
            try:
                vault.purge_deleted(self.engine)
            except Exception as exc:  # best effort only; erasure does not depend on it
                _log.warning("WAL checkpoint after a withdrawal failed: %s", exc)
        return Appended(batch.acks, batch.frontier.size, note)

    def _sweep_after_failure(self) -> None:
        """A write that made a KEK failed: destroy it unless the commit did happen after
        all (the sweep asks the database, so a KEK that rows reference is kept)."""
        try:
            vault.sweep(self.engine, self.keyring, self.store.lock_head)
        except Exception as exc:
            _log.warning("could not sweep unused vault keys after a failed write: %s", exc)

    def _start_batch(self, conn: Connection, *, numbered: bool) -> _Batch:
        """Take the append lock on the log head, catch the cache up if another process
        appended, and start a batch on top of it."""
        size, _ = self.store.lock_head(conn)
        if (
            self._state is None
            or self._state.size != size
            or self._frontier is None
            or self._frontier.size != size
        ):
            self._catch_up(conn, size)
        assert self._state is not None and self._frontier is not None
        if not self._frontier_checked:
            self._check_frontier(conn, self._frontier)
        batch = _Batch(self._state, self._frontier.copy(), size, self.clock(), numbered=numbered)
        batch.names = self._names
        return batch

    def _check_frontier(self, conn: Connection, frontier: Frontier) -> None:
        """Trust stored tree nodes only once they fold to the root of the hub's own latest
        signed checkpoint, before signing another on top of them: an altered node would
        otherwise make the hub sign a checkpoint over a wrong root. The frontier is a few
        dozen nodes at any size, so this costs one small read and one signature check
        each time it is read from the database (another process appended), not a pass
        over the leaves."""
        if frontier.size:
            try:
                cp = parse_checkpoint(self.store.latest_checkpoint(conn), self.verifier)
            except (NotFound, VerificationFailed) as exc:
                raise HubError(
                    f"the hub's latest checkpoint cannot be trusted ({exc.message}); the "
                    "database was altered: run `commonweal ledger verify`"
                ) from None
            if cp.size != frontier.size or cp.root != frontier.root():
                raise HubError(
                    f"the stored Merkle tree nodes of the log's {frontier.size} entries do not "
                    f"fold to the root of the hub's signed checkpoint of size {cp.size}: the "
                    "database was altered, so the hub appends nothing; run "
                    "`commonweal ledger verify`"
                )
        self._frontier_checked = True

    def _write_batch(self, conn: Connection, batch: _Batch) -> str:
        """Write the batch's entries, tree nodes, projections and new head; sign and store
        the checkpoint, and return it."""
        new_size, root = batch.frontier.size, batch.frontier.root()
        note = Checkpoint(self.origin, new_size, root).sign(self.signer)
        self.store.write_entries(conn, batch.rows)
        self.store.write_nodes(conn, batch.nodes)
        projection.write_touched(conn, batch.state, batch.touched)
        self.store.set_head(conn, new_size, root)
        self.store.add_checkpoint(conn, new_size, root, note)
        return note

    def _owed_decisions(self, state: State, upto: int) -> dict[str, Any] | None:
        """The review decisions the hub must log now (see ``hub.decisions``)."""
        return pending_decisions(state, upto)

    def sign(self, kind: str, body: dict[str, Any]) -> SignedEvent:
        """An event signed by the hub itself (screening results, review decisions)."""
        # Stamped on the hub's own clock: the event time must sit within the charter's
        # skew of the log time this same clock gives the entry.
        return sign_event(self.signer.key, kind, body, hub=self.origin, time=self.clock())

    def record(
        self,
        kind: str,
        build: Callable[[Computing], dict[str, Any]],
        *,
        after: Sequence[SignedEvent] = (),
    ) -> Recorded:
        """Append one event the hub computes, in one commit with ``after`` (the member's
        events it answers, if any).

        ``build`` runs under the append lock with the transaction's connection and the
        state the rules will check its event against, so what the hub logs is exactly what
        every replay recomputes; it may write its own rows through ``ctx.conn``, add more
        hub events with ``ctx.also``, or raise to write nothing at all.
        """
        made: dict[str, Any] = {}

        def compute(conn: Connection, state: State, index: int) -> list[SignedEvent]:
            ctx = Computing(conn, state, index, self)
            body = build(ctx)
            made["body"] = body
            return [self.sign(kind, body), *ctx.extra]

        done = self.append(after, after=compute)
        return Recorded(made["body"], done.entries[len(after)]["index"], done)

    # -- reads ---------------------------------------------------------------------------

    def read(self) -> AbstractContextManager[Connection]:
        """A connection in one read transaction (one consistent snapshot)."""
        return read_connection(self.engine)

    def projections(self) -> dict[str, list[dict[str, Any]]]:
        """Every projection table's rows, as a remote verifier compares them."""
        with read_connection(self.engine) as conn:
            return projection.db_rows(conn)

    def members(self) -> list[dict[str, Any]]:
        """Every member, as the log's replay has them (from the state in memory: the same
        rows as the ``members`` projection, without reading every table)."""
        return sorted((m.to_json() for m in self.state.members.values()), key=lambda r: r["key"])

    def pending_members(self) -> list[dict[str, Any]]:
        """Newcomers waiting for approval: who approved each, and how many must."""
        state = self.state
        needed = rules.approvals_needed(state) if state.charter is not None else 0
        return [
            {
                **m.to_json(),
                "approved_by": sorted(state.approvals.get(m.key, frozenset())),
                "approvals_needed": needed,
            }
            for m in sorted(state.members.values(), key=lambda m: m.joined_index)
            if m.status == "pending"
        ]

    def waiting_for(self, member: str) -> dict[str, Any]:
        """What waits for ``member`` now: reviews, votes, reveals, their latest payout."""
        return views.waiting(self.state, member, self.clock())

    def community(self) -> dict[str, Any]:
        """The community's row: name, origin, hub key, founder and charter (JSON text)."""
        state = self.state
        if state.charter is None:
            raise NotFound("this hub has no community yet")
        return projection.community_row(state)

    # -- maintenance ---------------------------------------------------------------------

    def private_paths(self) -> list[Path]:
        """What holds the hub's secrets or its members' private data on this machine: the
        hub directory (its keys, its config, the vault's KEKs) and the SQLite database
        with its ``-wal``, ``-shm`` and ``-journal`` files, wherever it lives."""
        paths: list[Path] = []
        if self.directory is not None:
            paths += [self.directory, self.directory / KEK_DIRECTORY]
        db = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if db and db != ":memory:":
            paths += [Path(db + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
        return paths

    def exposed(self) -> list[tuple[Path, int]]:
        """Those of ``private_paths`` (and what the two directories hold) that the group or
        others can use, with their modes: ``serve`` warns about each."""
        return exposed(self.private_paths())

    def rebuild(self) -> dict[str, int]:
        """Drop every projection and recreate it by replaying the whole log."""
        with self._lock, write_connection(self.engine) as conn:
            size, _ = self.store.lock_head(conn)
            with projection.gc_paused():
                state = rules.replay(
                    _trusted_leaf(b) for b in self.store.iter_leaf_bytes(conn, 0, size)
                )
            counts = projection.rebuild(conn, state)
        self._state = state
        return {"entries": size, **counts}


class _Batch:
    """The entries one append builds under the lock, before anything is written.

    Each event is encoded as the leaf it will be, checked and applied by the rules, and
    hashed into a copy of the tree; the state moves on event by event, so each later
    event is checked against the ones before it in the same batch.
    """

    def __init__(
        self, state: State, frontier: Frontier, size: int, log_time: str, *, numbered: bool
    ) -> None:
        self.state = state
        self.frontier = frontier  # a copy: the hub's own moves on only after commit
        self.size = size  # the log's size before the batch
        self.log_time = log_time  # one log time for the whole batch
        self.numbered = numbered  # refusals name the event as events[i]
        self.rows: list[EntryRow] = []
        self.nodes: list[tuple[int, int, bytes]] = []
        self.touched: list[rules.Touched] = []
        self.acks: list[dict[str, Any]] = []
        self.withdrawn: list[str] = []  # items whose content goes when the batch commits
        self.names: names.NameIndex | None = None  # the hub's lookalike check, if it has one

    @property
    def next_index(self) -> int:
        """The log index the next event added will have."""
        return self.size + len(self.rows)

    def add(self, ev: SignedEvent, pos: int | None) -> None:
        """Check and apply ``ev`` as the next entry; ``pos`` is its place among the
        member's events (``None`` for the hub's own)."""
        index = self.next_index
        if ev.hub is None:
            # Replay still reads version 1 (old logs hold it); a new entry names its hub,
            # else it could be lifted from this log and replayed to another community.
            exc = InvalidInput(
                f"{ev.kind}: this client signs events in an older form (version 1, naming "
                "no hub); update it"
            )
            if pos is not None and self.numbered:
                exc = InvalidInput(f"events[{pos}]: {exc.message}")
            raise exc
        data = encode_leaf(ev.data, index, self.log_time, ev.sig)
        leaf = Leaf(index, self.log_time, ev.event, ev.sig, data)
        try:
            after = rules.apply(self.state, leaf)
            if ev.kind == "member.join" and self.names is not None:
                # An admission check only, not replayed (see hub.names for why); after the
                # rules, so an exact duplicate gets the rules' own message.
                self.names.check(self.state, ev.actor, ev.body["name"])
                self.names.admitted(ev.actor, ev.body["name"])
            self.state = after
        except CommonwealError as exc:
            if pos is not None and self.numbered:
                exc.message = f"events[{pos}]: {exc.message}"
                exc.args = (exc.message,)
            raise
        lh = leaf_hash(data)
        self.nodes.extend(self.frontier.append(lh))
        self.rows.append(EntryRow(index, data, ev.kind, ev.actor, self.log_time))
        self.touched.append(rules.touched(leaf, self.state))
        self.acks.append({"index": index, "leaf_hash": lh.hex(), "kind": ev.kind})
        # A withdrawal, a vote taking items down, a member leaving: the content goes.
        self.withdrawn.extend(rules.erased_items(leaf, self.state))


def _trusted_leaf(data: bytes) -> Leaf:
    return decode_leaf(data, strict=False)


def _resolve_sqlite(url: str, directory: Path) -> str:
    """Relative SQLite paths in hub.toml are relative to the hub directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((directory / url[len(prefix) :]).resolve())
    return url


def _write_private(path: Path, text: str) -> None:
    write_private(path, text, replace=False)
