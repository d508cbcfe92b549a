"""Verify a hub's own database: what ``ledger verify --hub`` runs.

Besides the log itself (``verify_log``), everything the hub stores and later relies on is
recomputed and compared: the log head and the entries past the checkpoint, every stored
Merkle tree node (the hub proves entries and signs its next checkpoint from them), the
projections, each model version's stored item list and artifact, and stored values.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from commonweal.errors import VerificationFailed
from commonweal.hub import Hub
from commonweal.ledger.note import Checkpoint, NoteVerifier
from commonweal.store.projection import compare
from commonweal.verify.log import VerifyReport, checkpoint_of, verify_log
from commonweal.verify.witness import Witness

__all__ = ["verify_hub"]


def verify_hub(
    hub: Hub,
    *,
    verifier: NoteVerifier | None = None,
    witness: Witness | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify a hub's own database: its log, its latest checkpoint, its stored tree, its
    projections and its model artifacts, read in one transaction so that they are one
    snapshot even while the hub appends."""
    verifier = verifier or hub.verifier
    with hub.read() as conn:
        note = hub.store.latest_checkpoint(conn)
        cp = checkpoint_of(note, verifier)
        # First: the head the hub appends after must be the checkpoint's, or everything
        # after it (entries, projections) describes a log no checkpoint signs.
        head = _check_head(hub, conn, cp)
        report = verify_log(
            hub.store.iter_leaf_bytes(conn, 0, cp.size),
            checkpoint_note=note,
            verifier=verifier,
            witness=witness,
            projections=lambda state: compare(conn, state),
            workers=workers,
            progress=progress,
            stored_nodes=lambda start, end: hub.store.nodes_completed_by(conn, start, end),
        )
        report.checks.append(head)
        report.checks.append(_check_stored_extent(hub, conn, cp))
        state = report.state
        if state is not None and state.models:
            for v in sorted(state.models):
                hub.models.check_artifact(conn, state, v)
            report.checks.append(
                f"stored artifacts of {len(state.models)} model version(s) hash to the "
                "SHA-256 their entries logged"
            )
    if report.state is not None and report.state.models:
        # The hub's stored item lists of each version (what it trained on, and what it was
        # scored on, which valuing it reads) must hash to the roots the rules recomputed
        # from the log (what `lineage --model V` shows people).
        for v in sorted(report.state.models):
            hub.models.manifest_ids(v)
            hub.models.evaluation_ids(v)
        report.checks.append(
            f"stored manifests and evaluation sets of {len(report.state.models)} model "
            "version(s) match their roots"
        )
    if report.state is not None and report.state.fl_versions:
        # Trained on members' machines: nothing here can retrain it (the data never came
        # to the hub). Its rounds replayed above; its artifact hashed above; it must load.
        from commonweal.hub.training import load_model

        for v in sorted(report.state.fl_versions):
            load_model(hub, v)
        report.checks.append(
            f"federated: trained on members' machines: {len(report.state.fl_versions)} "
            "version(s) not retrained; their artifacts hash to their entries and load"
        )
    if report.state is not None and report.state.valuations:
        for record in report.state.valuations.values():
            hub.ownership.check_valuation(record)
        report.checks.append(
            f"stored values of {len(report.state.valuations)} valuation(s) match their roots "
            "and members' totals"
        )
    return report


def _check_head(hub: Hub, conn: Connection, cp: Checkpoint) -> str:
    """The head the hub appends after is the latest signed checkpoint."""
    size, root = hub.store.head(conn)
    if size != cp.size or root != cp.root:
        raise VerificationFailed(
            f"the stored log head (size {size}, root {root.hex()[:16]}…) is not the latest "
            f"signed checkpoint's (size {cp.size}, root {cp.root.hex()[:16]}…): the database "
            "was altered"
        )
    return "the log head is the latest signed checkpoint"


def _check_stored_extent(hub: Hub, conn: Connection, cp: Checkpoint) -> str:
    """Once the checkpoint's entries verified: no entry or tree node is stored past them."""
    last = hub.store.last_entry(conn)
    if (last if last is not None else -1) != cp.size - 1:
        raise VerificationFailed(
            f"the database holds entries up to index {last}, but the signed checkpoint covers "
            f"{cp.size}: an entry was added without the hub signing it",
            index=cp.size,
        )
    nodes, want = hub.store.count_nodes(conn), 2 * cp.size - cp.size.bit_count()
    if nodes != want:
        raise VerificationFailed(
            f"the database holds {nodes} Merkle tree nodes where a log of {cp.size} entries "
            f"has {want}: a node was added past the log"
        )
    return f"no entry or tree node stored past the checkpoint's {cp.size} entries"
