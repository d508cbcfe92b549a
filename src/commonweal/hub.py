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

import base64
import binascii
import os
import threading
import tomllib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select

from commonweal import vault
from commonweal.community import governance, rules
from commonweal.community.charter import Charter
from commonweal.community.state import ModelVersion, State
from commonweal.errors import (
    CommonwealError,
    ConfigError,
    Forbidden,
    InvalidInput,
    NotFound,
    TooLarge,
)
from commonweal.ledger.canonical import canonical, parse
from commonweal.ledger.event import Leaf, SignedEvent, decode_leaf, encode_leaf, now, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import (
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_at,
)
from commonweal.ledger.note import Checkpoint, NoteSigner, NoteVerifier
from commonweal.store import projection
from commonweal.store.database import open_engine, read_connection, write_connection
from commonweal.store.log import EntryRow, LogStore

if TYPE_CHECKING:
    from commonweal.intake import Screened, Screener
    from commonweal.serving import Meter, Models
    from commonweal.training import Progress

__all__ = ["MAX_BATCH", "Appended", "Hub", "default_origin"]

MAX_BATCH = 1000
CONFIG_FILE = "hub.toml"
HUB_KEY_FILE = "hub.key"
FOUNDER_KEY_FILE = "founder.key"


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


class Hub:
    """A community's hub over one database and one signing key."""

    def __init__(
        self, *, engine: Engine, signer: NoteSigner, directory: Path | None = None
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.directory = directory
        self.log = LogStore(engine)
        self._lock = threading.Lock()
        self._state: State | None = None
        self._frontier: Frontier | None = None
        self._screener: Screener | None = None
        self._meter: Meter | None = None
        self._models: Models | None = None
        self._checked_at = 0.0
        with read_connection(engine) as conn:
            self.log.check_schema(conn)
            stale = self.log.needs_upgrade(conn)
        if stale:
            with write_connection(engine) as conn:
                upgraded = self.log.needs_upgrade(conn)
                if upgraded:
                    self.log.upgrade(conn)
            if upgraded:
                self.rebuild()  # the new projections (the treasury row, say) fill from the log

    @property
    def screener(self) -> Screener:
        """Screening (duplicate indexes, personal data): loaded on first use, since its
        libraries take a noticeable part of a second to import and most commands never
        screen anything."""
        if self._screener is None:
            from commonweal.intake import Screener

            self._screener = Screener()
        return self._screener

    @property
    def meter(self) -> Meter:
        if self._meter is None:
            from commonweal.serving import Meter

            self._meter = Meter(self)
        return self._meter

    @property
    def models_cache(self) -> Models:
        if self._models is None:
            from commonweal.serving import Models

            self._models = Models(self)
        return self._models

    # -- opening -------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def verifier(self) -> NoteVerifier:
        return self.signer.verifier

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, database: str | None = None) -> Hub:
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
        return cls(engine=open_engine(_resolve_sqlite(url, d)), signer=signer, directory=d)

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
    ) -> tuple[Hub, SigningKey]:
        """Create a hub directory, its database and keys, and log the founding event."""
        d = Path(directory)
        if (d / CONFIG_FILE).exists():
            raise ConfigError(f"{d} already holds a hub; pick another directory")
        d.mkdir(parents=True, exist_ok=True)
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
        (d / CONFIG_FILE).write_text(
            f'# Commonweal hub: {charter.name}\ndatabase = "{url}"\norigin = "{signer.name}"\n'
        )
        hub = cls(engine=engine, signer=signer, directory=d)
        genesis = sign_event(
            founder,
            "community.found",
            {
                "charter": charter.to_json(),
                "hub_key": signer.key.key_id,
                "origin": signer.name,
                "founder_name": founder_name,
            },
        )
        hub.append([genesis])
        return hub, founder

    def close(self) -> None:
        if self._meter is not None:
            self._meter.flush()
        self.engine.dispose()

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The replayed state as of the last catch-up (loaded on first use)."""
        with self._lock:
            if self._state is None:
                with read_connection(self.engine) as conn:
                    self._catch_up(conn, self.log.head(conn)[0])
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
            size = self.log.head(conn)[0]
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
                    (_leaf(b) for b in self.log.iter_leaf_bytes(conn, state.size, size)), state
                )
        if self._frontier is None or self._frontier.size != size:
            keys = Frontier.keys_for(size)
            got = self.log.get_nodes(conn, keys)
            self._frontier = Frontier(size, [got[k] for k in keys])
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
        withdrawn: list[str] = []
        try:
            with self._lock, write_connection(self.engine) as conn:
                size, _ = self.log.lock_head(conn)
                if (
                    self._state is None
                    or self._state.size != size
                    or self._frontier is None
                    or self._frontier.size != size
                ):
                    self._catch_up(conn, size)
                assert self._state is not None and self._frontier is not None
                state: State = self._state
                frontier = self._frontier.copy()
                log_time = now()
                rows: list[EntryRow] = []
                nodes: list[tuple[int, int, bytes]] = []
                touched: list[rules.Touched] = []
                acks: list[dict[str, Any]] = []

                def add(ev: SignedEvent, pos: int | None) -> None:
                    nonlocal state
                    index = size + len(rows)
                    data = encode_leaf(ev.data, index, log_time, ev.sig)
                    leaf = Leaf(index, log_time, ev.event, ev.sig, data)
                    try:
                        state = rules.apply(state, leaf)
                    except CommonwealError as exc:
                        if pos is not None and len(signed) > 1:
                            exc.message = f"events[{pos}]: {exc.message}"
                            exc.args = (exc.message,)
                        raise
                    lh = leaf_hash(data)
                    nodes.extend(frontier.append(lh))
                    rows.append(EntryRow(index, data, ev.kind, ev.actor, log_time))
                    touched.append(rules.touched(leaf, state))
                    acks.append({"index": index, "leaf_hash": lh.hex(), "kind": ev.kind})
                    if ev.kind == "contribution.withdraw":
                        withdrawn.extend(ev.body["items"])
                    # A vote may take items down: their content goes as a withdrawal's does.
                    withdrawn.extend(governance.removed_items(leaf, state))

                for pos, ev in enumerate(signed):
                    add(ev, pos)
                if after is not None:
                    for ev in after(conn, state, size + len(rows)):
                        add(ev, None)
                if any(r.kind == "review.submit" for r in rows):
                    owed = self._owed_decisions(state, size + len(rows))
                    if owed is not None:
                        add(self.sign("review.decide", owed), None)
                if withdrawn:
                    vault.shred(conn, withdrawn)
                new_size, root = frontier.size, frontier.root()
                note = Checkpoint(self.origin, new_size, root).sign(self.signer)
                self.log.write_entries(conn, rows)
                self.log.write_nodes(conn, nodes)
                projection.write_touched(conn, state, touched)
                self.log.set_head(conn, new_size, root)
                self.log.add_checkpoint(conn, new_size, root, note)
                # The transaction commits when this block exits; only then does the cache
                # move on.
        except BaseException:
            if self._screener is not None:
                self._screener.reset()  # its in-memory index may hold the refused batch
            raise
        self._state, self._frontier = state, frontier
        if withdrawn:
            if self._screener is not None:
                self._screener.forget(withdrawn)
            vault.purge_deleted(self.engine)
        return Appended(acks, new_size, note)

    def _owed_decisions(self, state: State, upto: int) -> dict[str, Any] | None:
        """The review decisions the hub must log now (see ``verdicts``)."""
        from commonweal.verdicts import pending_decisions

        return pending_decisions(state, upto)

    def sign(self, kind: str, body: dict[str, Any]) -> SignedEvent:
        """An event signed by the hub itself (screening results, review decisions)."""
        return sign_event(self.signer.key, kind, body)

    # -- contributions -------------------------------------------------------------------

    def contribute(self, doc: Any) -> dict[str, Any]:
        """Take a signed batch with its content: check it, screen it, store it encrypted.

        ``doc`` is ``{"event": ..., "sig": ..., "content": [{"id", "salt", "item"}, ...]}``.
        A batch that fails a hard check is refused whole (nothing is stored); otherwise the
        answer is a receipt: each item in review, or refused with its reasons.
        """
        from commonweal.intake import check_item, commitment_of, item_label

        if not isinstance(doc, dict) or set(doc) != {"event", "sig", "content"}:
            raise InvalidInput('send {"event": ..., "sig": ..., "content": [...]}')
        signed = SignedEvent.from_wire({"event": doc["event"], "sig": doc["sig"]})
        if signed.kind != "contribution.submit":
            raise InvalidInput(f"expected a contribution.submit event, got {signed.kind}")
        state = self.state
        charter = state.charter
        if charter is None or charter.task is None:
            raise Forbidden("this community has no task in its charter, so it takes no data")
        described = signed.body.get("items")
        content = doc["content"]
        if not isinstance(described, list) or not isinstance(content, list):
            raise InvalidInput("the event's items and the content must be lists")
        if len(content) != len(described):
            raise InvalidInput(
                f"the batch describes {len(described)} items but carries {len(content)}"
            )
        items: list[tuple[str, dict[str, Any]]] = []
        for n, (meta, part) in enumerate(zip(described, content, strict=True)):
            where = f"content[{n}]"
            if not isinstance(part, dict) or set(part) != {"id", "salt", "item"}:
                raise InvalidInput(f'{where} must be {{"id", "salt", "item"}}')
            if not isinstance(meta, dict) or part["id"] != meta.get("id"):
                raise InvalidInput(f"{where}: id does not match the event's items[{n}]")
            check_item(charter, part["item"], f"{where}.item")
            try:
                salt = base64.b64decode(part["salt"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise InvalidInput(f"{where}.salt must be base64") from None
            if len(salt) < 16:
                raise InvalidInput(f"{where}.salt must be at least 16 random bytes")
            if commitment_of(salt, part["item"]) != meta.get("commitment"):
                raise InvalidInput(f"{where}: the item does not match its signed commitment")
            if len(canonical(part["item"])) != meta.get("bytes"):
                raise InvalidInput(f"{where}: bytes does not match the item's canonical size")
            if item_label(charter, part["item"]) != meta.get("label"):
                raise InvalidInput(f"{where}: label does not match the signed label")
            items.append((part["id"], part["item"]))
        screened: list[Screened] = []

        def screen(conn: Connection, st: State, index: int) -> list[SignedEvent]:
            assert st.charter is not None
            screened.extend(self.screener.screen(conn, st.charter, items))
            keep = [(s.id, s.stored) for s in screened if s.stored is not None]
            vault.store_items(conn, signed.actor, keep)
            results = [s.result() for s in screened]
            return [self.sign("contribution.screen", {"batch": index - 1, "results": results})]

        done = self.append([signed], after=screen)
        return {
            "batch": done.entries[0]["index"],
            "size": done.size,
            "checkpoint": done.checkpoint,
            "items": [{**s.result(), "report": s.report} for s in screened],
        }

    def contributions(
        self,
        *,
        member: str | None = None,
        status: str | None = None,
        flag: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        from sqlalchemy import literal

        from commonweal.store.schema import contributions as table

        stmt = select(table).order_by(table.c.batch_index, table.c.id).limit(limit)
        if member:
            stmt = stmt.where(table.c.member == member)
        if status:
            stmt = stmt.where(table.c.status == status)
        if flag:
            # Flags are a comma-separated list: match a whole one (LIKE's _ escaped).
            escaped = flag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            listed = literal(",") + table.c.flags + literal(",")
            stmt = stmt.where(listed.like(f"%,{escaped},%", escape="\\"))
        with read_connection(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def contribution(self, item_id: str) -> dict[str, Any]:
        rows = self.contributions_by_id([item_id])
        if not rows:
            raise NotFound(f"there is no item {item_id}")
        return rows[0]

    def contributions_by_id(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        from commonweal.store.schema import contributions as table

        with read_connection(self.engine) as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(select(table).where(table.c.id.in_(list(ids))))
            ]

    def next_review(self, reviewer: str) -> dict[str, Any] | None:
        """An item in review that ``reviewer`` may review, with its content: the one with
        the fewest reviews first, so items finish rather than all advancing slowly."""
        state = self.state
        candidates = sorted(
            (
                c
                for c in state.contributions.values()
                if c.status == "in_review" and c.member != reviewer and reviewer not in c.reviewers
            ),
            key=lambda c: (c.reviews_needed - c.reviews, c.updated_index),
        )
        for c in candidates:
            try:
                content = self.item_content(c.id)
            except NotFound:
                continue
            return {**c.to_json(), "content": content, "report": self.quality_report(c.id)}
        return None

    def reviewer_reliability(self) -> dict[str, float]:
        from commonweal.verdicts import reliability

        return reliability(self.state)

    def member_export(self, member: str) -> dict[str, Any]:
        """Everything ``member`` contributed (content included) and every log entry by
        them or naming them: what data portability owes them."""
        mine = self.contributions(member=member, limit=10**9)
        with read_connection(self.engine) as conn:
            content = vault.load_items(conn, [c["id"] for c in mine])
        events = []
        my_items = {c["id"] for c in mine}
        with read_connection(self.engine) as conn:
            size = self.log.head(conn)[0]
            for data in self.log.iter_leaf_bytes(conn, 0, size):
                leaf = decode_leaf(data, strict=False)
                body = leaf.body
                named = (
                    leaf.actor == member
                    or body.get("member") == member
                    or body.get("item") in my_items
                    or any(
                        isinstance(r, dict) and r.get("id") in my_items
                        for r in body.get("results", []) + body.get("decisions", [])
                    )
                )
                if named:
                    events.append(leaf.to_json())
        return {
            "member": member,
            "contributions": [{**c, "content": content.get(c["id"])} for c in mine],
            "events": events,
        }

    def scan_labels(self, *, seed: int = 0) -> dict[str, Any]:
        """Look for suspected label errors across the pool (confident learning) and flag
        them in the log for reviewers. Needs enough items per label to mean anything."""
        from commonweal.quality import label_features

        state = self.state
        charter = state.charter
        if charter is None or charter.task is None or not charter.task.labels:
            raise InvalidInput("label checks need a classification task in the charter")
        pool = sorted(
            (c for c in state.contributions.values() if c.status in ("in_review", "accepted")),
            key=lambda c: c.id,
        )
        with read_connection(self.engine) as conn:
            content = vault.load_items(conn, [c.id for c in pool])
        pool = [c for c in pool if c.id in content]
        labels = [c.decided_label or c.label or "" for c in pool]
        suspects = label_features(charter, [content[c.id] for c in pool], labels, seed=seed)
        new = [pool[i].id for i in suspects if "suspected-label-error" not in pool[i].flags]
        result: dict[str, Any] = {"scanned": len(pool), "suspected": len(suspects), "flagged": new}
        if new:
            ev = self.sign(
                "contribution.flag",
                {"items": new, "flag": "suspected-label-error", "method": "cleanlab"},
            )
            result["entry"] = self.append([ev]).entries[0]["index"]
        return result

    def item_content(self, item_id: str) -> Any:
        with read_connection(self.engine) as conn:
            return vault.load_item(conn, item_id)

    def quality_report(self, item_id: str) -> dict[str, Any]:
        from commonweal.store.schema import quality_reports

        with read_connection(self.engine) as conn:
            row = conn.execute(
                select(quality_reports.c.report).where(quality_reports.c.id == item_id)
            ).first()
        if row is None:
            raise NotFound(f"item {item_id} has no quality report (unknown or withdrawn)")
        return parse(row[0])  # type: ignore[no-any-return]

    # -- the model -----------------------------------------------------------------------

    def train(
        self, *, incremental: bool = False, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Train and register a new model version (see ``commonweal.training``)."""
        from commonweal.training import train

        return train(self, incremental=incremental, progress=progress)

    def models(self) -> list[dict[str, Any]]:
        """Every model version, oldest first, metrics as numbers."""
        return [_model_row(m) for m in sorted(self.state.models.values())]

    def model(self, version: str | int) -> dict[str, Any]:
        """A version's projection row and the whole ``model.version`` event body."""
        from commonweal.serving import resolve_version

        v = resolve_version(self, version)
        mv = self.state.models[v]
        body = self.entries(mv.entry, mv.entry + 1)[0].body
        return {**_model_row(mv), "event": body}

    def predict(
        self, version: str | int, inputs: Any, *, api_key: str | None, metered: bool = True
    ) -> dict[str, Any]:
        from commonweal.serving import predict

        return predict(self, version, inputs, api_key=api_key, metered=metered)

    def close_revenue(self) -> dict[str, Any] | None:
        from commonweal.serving import close_revenue

        return close_revenue(self)

    # -- reads ---------------------------------------------------------------------------

    def read(self) -> AbstractContextManager[Connection]:
        """A connection in one read transaction (one consistent snapshot)."""
        return read_connection(self.engine)

    def checkpoint(self) -> str:
        with read_connection(self.engine) as conn:
            return self.log.latest_checkpoint(conn)

    def size(self) -> int:
        with read_connection(self.engine) as conn:
            return self.log.head(conn)[0]

    def entries(self, start: int = 0, end: int | None = None, *, limit: int = 1000) -> list[Leaf]:
        with read_connection(self.engine) as conn:
            size = self.log.head(conn)[0]
            end = size if end is None else min(end, size)
            if start < 0 or start > end:
                raise InvalidInput(f"entries: need 0 <= start <= end <= {size}; got {start}..{end}")
            end = min(end, start + limit)
            return self.log.leaves(conn, start, end)

    def leaf_bytes(self, start: int, end: int) -> list[bytes]:
        with read_connection(self.engine) as conn:
            return self.log.leaf_bytes(conn, start, end)

    def _size_arg(self, conn: Any, size: int | None) -> int:
        head = self.log.head(conn)[0]
        if size is None:
            return head
        if not 0 <= size <= head:
            raise NotFound(f"tree size {size} is not between 0 and the log's size {head}")
        return size

    def inclusion(self, index: int, size: int | None = None) -> dict[str, Any]:
        with read_connection(self.engine) as conn:
            n = self._size_arg(conn, size)
            if not 0 <= index < n:
                raise NotFound(f"entry {index} is not in a tree of size {n}")
            reader = self.log.node_reader(conn)
            proof = inclusion_proof(index, n, reader)
            leaf = self.log.leaf_bytes(conn, index, index + 1)[0]
            return {
                "index": index,
                "size": n,
                "leaf_hash": leaf_hash(leaf).hex(),
                "root": root_at(n, reader).hex(),
                "proof": [h.hex() for h in proof],
            }

    def consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        with read_connection(self.engine) as conn:
            n = self._size_arg(conn, new)
            if not 0 <= old <= n:
                raise NotFound(f"old size {old} is not between 0 and {n}")
            reader = self.log.node_reader(conn)
            return {
                "old": old,
                "new": n,
                "old_root": root_at(old, reader).hex(),
                "new_root": root_at(n, reader).hex(),
                "proof": [h.hex() for h in consistency_proof(old, n, reader)],
            }

    def projections(self) -> dict[str, list[dict[str, Any]]]:
        with read_connection(self.engine) as conn:
            return projection.db_rows(conn)

    def members(self) -> list[dict[str, Any]]:
        return self.projections()["members"]

    def community(self) -> dict[str, Any]:
        rows = self.projections()["community"]
        if not rows:
            raise NotFound("this hub has no community yet")
        return rows[0]

    # -- maintenance ---------------------------------------------------------------------

    def rebuild(self) -> dict[str, int]:
        """Drop every projection and recreate it by replaying the whole log."""
        with self._lock, write_connection(self.engine) as conn:
            size, _ = self.log.lock_head(conn)
            with projection.gc_paused():
                state = rules.replay(_leaf(b) for b in self.log.iter_leaf_bytes(conn, 0, size))
            counts = projection.rebuild(conn, state)
        self._state = state
        return {"entries": size, **counts}


def _model_row(m: ModelVersion) -> dict[str, Any]:
    return {**m.to_json(), "metrics": {k: float(v) for k, v in parse(m.metrics).items()}}


def _leaf(data: bytes) -> Leaf:
    return decode_leaf(data, strict=False)


def _resolve_sqlite(url: str, directory: Path) -> str:
    """Relative SQLite paths in hub.toml are relative to the hub directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((directory / url[len(prefix) :]).resolve())
    return url


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
