"""``ledger verify``: check a whole log from its bytes, trusting nothing but the hub's key.

For a log of N entries and the hub's signed checkpoint this checks, in one streaming pass:

1. the checkpoint's signature, with the verifier key the user trusts;
2. every leaf is canonical JSON, sits at its own index, and carries a valid Ed25519 signature
   by its actor over the event's exact bytes (in worker processes: this is the costly part,
   and it is embarrassingly parallel);
3. the RFC 9162 root of all leaves equals the checkpoint's root, and its size matches;
4. the log extends the last checkpoint this verifier saw of the same log: the root of the
   first ``old.size`` leaves must equal the remembered root (an append-only log can only
   grow, so a rewritten history is caught even if the new checkpoint is validly signed);
5. replaying every event through the community's rules succeeds, the founding event names
   this hub's key and origin, and the replayed state equals the hub's projections;
6. given the hub's stored tree (``stored_nodes``), every stored complete-subtree hash equals
   the one recomputed from the leaves: proofs and the next checkpoint are built from them.

It fails on the first bad entry and names it.
"""

from __future__ import annotations

import binascii
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from commonweal.community import rules
from commonweal.community.state import State
from commonweal.errors import CommonwealError, VerificationFailed
from commonweal.ledger.event import decode_leaf
from commonweal.ledger.merkle import Frontier, NodeKey, leaf_hash
from commonweal.ledger.note import Checkpoint, NoteVerifier, parse_checkpoint
from commonweal.store.projection import gc_paused, state_rows
from commonweal.verify.witness import Witness

__all__ = ["VerifyReport", "verify_chunk", "verify_log"]

CHUNK = 2000
Rows = dict[str, list[dict[str, Any]]]
# The stored tree nodes that leaves [start, end) complete (``LogStore.nodes_completed_by``).
StoredNodes = Callable[[int, int], Mapping[NodeKey, bytes]]


@dataclass
class VerifyReport:
    """What a verification checked, of which log, and how fast; ``state`` is the replay."""

    origin: str
    size: int
    root: str
    checks: list[str] = field(default_factory=list)
    previous_size: int | None = None
    members: int = 0
    seconds: float = 0.0
    state: State | None = None

    def to_json(self) -> dict[str, Any]:
        """The report as ``ledger verify --format json`` prints it."""
        return {
            "ok": True,
            "origin": self.origin,
            "size": self.size,
            "root": self.root,
            "previous_size": self.previous_size,
            "members": self.members,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.size / self.seconds) if self.seconds else None,
            "checks": self.checks,
        }


_EVENT_AT = len(b'{"event":')
_ACTOR_AT = len(b'{"event":{"actor":"')  # canonical order puts the actor first
_SIG_B64 = 88  # base64 of a 64-byte signature


def verify_chunk(start: int, leaves: list[bytes]) -> list[tuple[int, str]]:
    """Check each leaf's signature by its actor; return the failures.

    Runs in worker processes, so it does nothing but the signature check: it reads the
    actor, signed bytes and signature at their fixed places in a canonical leaf, and the
    main process parses every leaf strictly (a malformed one is reported there too).
    """
    bad: list[tuple[int, str]] = []
    a2b, fromhex, open_signed = binascii.a2b_base64, bytes.fromhex, crypto_sign_open
    for i, data in enumerate(leaves, start):
        try:
            public_key = fromhex(data[_ACTOR_AT : _ACTOR_AT + 64].decode("ascii"))
            sig = a2b(data[-2 - _SIG_B64 : -2], strict_mode=True)
            end = data.rindex(b',"index":')
            if len(public_key) != 32 or len(sig) != 64:
                raise ValueError
            open_signed(sig + data[_EVENT_AT:end], public_key)
            ok = True
        except (ValueError, UnicodeDecodeError, binascii.Error, BadSignatureError):
            ok = False
        if not ok:
            who = data[_ACTOR_AT : _ACTOR_AT + 16].decode("ascii", "replace")
            bad.append((i, f"signature by {who}… does not verify"))
    return bad


def _chunks(leaves: Iterable[bytes], n: int) -> Iterator[list[bytes]]:
    buf: list[bytes] = []
    for leaf in leaves:
        buf.append(leaf)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf


@contextmanager
def _pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    if workers <= 1:
        yield None
        return
    # fork: workers start in milliseconds and inherit the imported modules.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


@dataclass
class _Replay:
    """The one streaming pass's running results: the tree, the state, and what it saw."""

    previous: Checkpoint | None  # the checkpoint this verifier saw last time, if any
    frontier: Frontier = field(default_factory=Frontier)
    state: State = field(default_factory=State)
    old_root: bytes | None = None  # the root of the first ``previous.size`` leaves
    position: int = 0  # the index the next leaf must carry
    decisions: int = 0  # review decisions recomputed
    created: list[tuple[int, int, bytes]] | None = None  # nodes the chunk completed, if kept

    def take(self, chunk: list[bytes]) -> tuple[int, str] | None:
        """Hash, parse and replay each leaf of ``chunk``; the first refusal, if any."""
        for data in chunk:
            why = self._take(data)
            if why is not None:
                return self.position, why
            self.position += 1
        return None

    def _take(self, data: bytes) -> str | None:
        made = self.frontier.append(leaf_hash(data))
        if self.created is not None:
            self.created.extend(made)
        if self.previous is not None and self.frontier.size == self.previous.size:
            self.old_root = self.frontier.root()
        try:
            leaf = decode_leaf(data, strict=True, check_floats=False)
        except CommonwealError as exc:
            return f"leaf is malformed: {exc.message}"
        if leaf.index != self.position:
            return f"leaf says it is entry {leaf.index}"
        if leaf.event["kind"] == "review.decide":
            why = _recompute_decision(self.state, leaf)
            if why:
                return why
            self.decisions += 1
        try:
            self.state = rules.apply(self.state, leaf)
        except CommonwealError as exc:
            return f"the rules refuse it: {exc.message}"
        return None


Projections = Rows | Callable[[State], str | None]


def verify_log(
    leaves: Iterable[bytes],
    *,
    checkpoint_note: str,
    verifier: NoteVerifier,
    witness: Witness | None = None,
    projections: Projections | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    stored_nodes: StoredNodes | None = None,
) -> VerifyReport:
    """Verify a whole log. Raises :class:`VerificationFailed` naming the first bad entry
    (or the first stored tree node that is not the hash of the leaves it covers)."""
    t0 = time.perf_counter()
    cp = checkpoint_of(checkpoint_note, verifier)
    checks = [f"checkpoint signature by {verifier.name} (key hash {verifier.key_hash.hex()})"]
    previous = witness.last(verifier) if witness else None
    if previous is not None and previous.size > cp.size:
        raise VerificationFailed(
            f"the log shrank: this verifier saw size {previous.size}, the checkpoint says "
            f"{cp.size}; the hub rewrote its history"
        )
    n_workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    replay = _Replay(previous, created=[] if stored_nodes is not None else None)
    failures, problem, tree_problem = _stream(
        leaves, replay, cp.size, n_workers, progress, projections, stored_nodes
    )
    if failures:
        index, why = min(failures)
        raise VerificationFailed(f"entry {index}: {why}", index=index)
    checks.append(f"{replay.position} leaves canonical, in place, and signed by their actors")
    checks.append(f"{replay.position} events replayed through the community's rules")
    if replay.decisions:
        checks.append(f"{replay.decisions} review decisions recomputed from the logged reviews")
    try:
        checks.append(_check_root(replay.frontier, cp))
    except VerificationFailed as exc:
        if tree_problem is not None and tree_problem[1] == 0:
            # The stored hash of this leaf, logged when it was appended, is not the hash
            # of the leaf now: the leaf is what changed (the checkpoint is signed).
            idx = tree_problem[2]
            raise VerificationFailed(
                f"entry {idx}: its leaf was changed after it was logged (it no longer hashes "
                f"to its stored leaf hash); {exc.message}",
                index=idx,
            ) from None
        raise
    _check_founding(replay.state, cp, verifier)
    if previous is not None:
        checks.append(_check_extension(replay.old_root, previous))
    if stored_nodes is not None:
        if tree_problem:
            raise VerificationFailed(tree_problem[0])
        checks.append(
            f"{2 * cp.size - cp.size.bit_count()} stored tree nodes recomputed from the leaves"
        )
    if projections is not None:
        if problem:
            raise VerificationFailed(
                f"projection {problem}; run `commonweal rebuild` to recreate it"
            )
        checks.append("projections equal the replayed state")
    if witness is not None:
        witness.remember(verifier, cp, checkpoint_note)
    return VerifyReport(
        origin=cp.origin,
        size=cp.size,
        root=cp.root.hex(),
        checks=checks,
        previous_size=previous.size if previous else None,
        members=len(replay.state.members),
        seconds=time.perf_counter() - t0,
        state=replay.state,
    )


def _stream(
    leaves: Iterable[bytes],
    replay: _Replay,
    size: int,
    n_workers: int,
    progress: Callable[[int, int], None] | None,
    projections: Projections | None,
    stored_nodes: StoredNodes | None,
) -> tuple[list[tuple[int, str]], str | None, tuple[str, int, int] | None]:
    """The one pass: signatures in the workers, parsing, replay and the stored tree here.
    Returns every failure found, what differs in the projections and the first stored
    tree node that differs (``None`` if they match or were not compared)."""
    pending: list[Future[list[tuple[int, str]]]] = []
    failures: list[tuple[int, str]] = []
    tree_problem: tuple[str, int, int] | None = None
    with gc_paused(), _pool(n_workers) as pool:
        for chunk in _chunks(leaves, CHUNK):
            start = replay.position
            if pool is not None:
                pending.append(pool.submit(verify_chunk, start, chunk))
            else:
                failures.extend(verify_chunk(start, chunk))
            refused = replay.take(chunk)
            if refused is not None:
                failures.append(refused)
                break
            if stored_nodes is not None and replay.created is not None:
                if tree_problem is None:
                    tree_problem = _compare_nodes(
                        replay.created, stored_nodes(start, replay.position)
                    )
                replay.created.clear()
            if progress:
                progress(replay.position, size)
        # Compare the projections while the workers finish their signatures, so that
        # neither core idles; the result counts only if everything else verifies.
        problem = None
        if projections is not None and not failures:
            problem = (
                projections(replay.state)
                if callable(projections)
                else _compare_rows(state_rows(replay.state), projections)
            )
        for fut in pending:
            failures.extend(fut.result())
    return failures, problem, tree_problem


def _compare_nodes(
    created: list[tuple[int, int, bytes]], stored: Mapping[NodeKey, bytes]
) -> tuple[str, int, int] | None:
    """The first stored node that is missing or differs from the one the leaves give:
    what is wrong, and the node's level and index."""
    for level, idx, h in created:
        got = stored.get((level, idx))
        if got == h:
            continue
        first, last = idx << level, ((idx + 1) << level) - 1
        what = f"entry {first}" if level == 0 else f"entries {first}-{last}"
        if got is None:
            why = (
                f"the stored Merkle tree node (level {level}, index {idx}) over {what} is "
                "missing: the hub could not prove those entries"
            )
        else:
            why = (
                f"the stored Merkle tree node (level {level}, index {idx}) over {what} is "
                f"not the hash of those leaves (stored {got.hex()[:16]}…, recomputed "
                f"{h.hex()[:16]}…): the database was altered, and proofs or checkpoints "
                "built on it are wrong"
            )
        return why, level, idx
    return None


def checkpoint_of(note: str, verifier: NoteVerifier) -> Checkpoint:
    """The checkpoint ``note`` signs; a failure says it is the checkpoint that failed."""
    try:
        return parse_checkpoint(note, verifier)
    except VerificationFailed as exc:
        raise VerificationFailed(f"the signed checkpoint does not verify: {exc.message}") from None


def _check_root(frontier: Frontier, cp: Checkpoint) -> str:
    """The log's size and RFC 9162 root are the checkpoint's."""
    if frontier.size != cp.size:
        raise VerificationFailed(
            f"the checkpoint says {cp.size} entries but the log holds {frontier.size}",
            index=min(frontier.size, cp.size),
        )
    root = frontier.root()
    if root != cp.root:
        raise VerificationFailed(
            f"the Merkle root of {frontier.size} leaves ({root.hex()}) is not the "
            f"checkpoint's ({cp.root.hex()}): some entry was changed"
        )
    return f"RFC 9162 root of {cp.size} leaves matches the checkpoint"


def _check_founding(state: State, cp: Checkpoint, verifier: NoteVerifier) -> None:
    """The founding event names the key that signed the checkpoint, and its origin."""
    if cp.size and (state.hub_key != verifier.public_key.hex() or state.origin != cp.origin):
        raise VerificationFailed(
            "entry 0: the founding event names another hub key or origin than the "
            "checkpoint's signer",
            index=0,
        )


def _check_extension(old_root: bytes | None, previous: Checkpoint) -> str:
    """The log extends the checkpoint this verifier saw before."""
    if previous.size and old_root != previous.root:
        raise VerificationFailed(
            f"the log is not an extension of the size-{previous.size} checkpoint this "
            "verifier saw before: the hub rewrote its history"
        )
    return f"consistent with the size-{previous.size} checkpoint seen before"


def _recompute_decision(state: State, leaf: Any) -> str | None:
    """Recompute a ``review.decide`` entry from the reviews logged before it."""
    from commonweal.hub.decisions import pending_decisions

    body = leaf.body
    upto = body.get("upto")
    if not isinstance(upto, int) or upto != leaf.index:
        return "a review decision must be computed over every review logged before it"
    try:
        expected = pending_decisions(state, upto)
    except CommonwealError as exc:
        return f"its decisions cannot be recomputed: {exc.message}"
    if expected != body:
        return (
            "its decisions differ from what the logged reviews give "
            f"(recomputed {expected and expected['decisions'][:3]}…)"
        )
    return None


def _compare_rows(
    want: dict[str, list[dict[str, Any]]], have: dict[str, list[dict[str, Any]]]
) -> str | None:
    for table, rows in want.items():
        other = have.get(table, [])
        if other != rows:
            for w, h in zip(rows, other, strict=False):
                if w != h:
                    return f"{table!r} differs from the replayed log: replay has {w}, hub has {h}"
            return (
                f"{table!r} differs from the replayed log: replay has {len(rows)} rows, "
                f"hub has {len(other)}"
            )
    return None
