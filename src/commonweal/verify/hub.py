"""Verify a hub's own database: what ``ledger verify --hub`` runs."""

from __future__ import annotations

from collections.abc import Callable

from commonweal.hub import Hub
from commonweal.ledger.note import NoteVerifier, parse_checkpoint
from commonweal.store.projection import compare
from commonweal.verify.log import VerifyReport, verify_log
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
    """Verify a hub's own database: its log, its latest checkpoint and its projections,
    read in one transaction so that they are one snapshot even while the hub appends."""
    verifier = verifier or hub.verifier
    with hub.read() as conn:
        note = hub.store.latest_checkpoint(conn)
        size = parse_checkpoint(note, verifier).size
        report = verify_log(
            hub.store.iter_leaf_bytes(conn, 0, size),
            checkpoint_note=note,
            verifier=verifier,
            witness=witness,
            projections=lambda state: compare(conn, state),
            workers=workers,
            progress=progress,
        )
    if report.state is not None and report.state.models:
        # The hub's stored item list of each version must hash to the root the rules
        # recomputed from the log (what `lineage --model V` shows people).
        for v in sorted(report.state.models):
            hub.models.manifest_ids(v)
        report.checks.append(
            f"stored manifests of {len(report.state.models)} model version(s) match their roots"
        )
    if report.state is not None and report.state.valuations:
        for record in report.state.valuations.values():
            hub.ownership.check_valuation(record)
        report.checks.append(
            f"stored values of {len(report.state.valuations)} valuation(s) match their roots "
            "and members' totals"
        )
    return report
