"""From logged reviews to review decisions: the one function the hub and ``ledger verify``
both call, so a decision in the log can be recomputed by anyone who replays it.

The hub decides every item that has its required number of reviews, by the charter's
consensus method (Dawid–Skene by default: reviewers are weighted by the reliability their
own history shows), over every review logged before the decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from commonweal.community.state import State

if TYPE_CHECKING:
    from commonweal.ml.consensus import Review as ConsensusReview

# ``commonweal.ml.consensus`` (numpy) loads when a decision is first computed: every hub
# process imports this module, and most of them (the CLI's reads) never decide anything.

__all__ = ["pending_decisions", "reliability"]


def _inputs(state: State, upto: int) -> tuple[list[ConsensusReview], dict[str, int]]:
    from commonweal.ml.consensus import Review as ConsensusReview

    reviews = []
    needed: dict[str, int] = {}
    for r in state.reviews.values():
        if r.entry >= upto:
            continue
        item = state.contributions[r.item]
        reviews.append(
            ConsensusReview(
                item=r.item,
                reviewer=r.reviewer,
                verdict=r.verdict,
                label=r.label,
                given_label=item.label,
            )
        )
        needed[r.item] = item.reviews_needed
    return reviews, needed


def pending_decisions(state: State, upto: int) -> dict[str, Any] | None:
    """The body of the ``review.decide`` event the hub owes after entry ``upto - 1``, or
    None if no item in review has all its reviews."""
    charter = state.charter
    if charter is None or charter.task is None:
        return None
    ready = {
        c.id
        for c in state.contributions.values()
        if c.status == "in_review" and c.reviews >= c.reviews_needed
    }
    if not ready:
        return None
    from commonweal.ml.consensus import decide

    reviews, needed = _inputs(state, upto)
    decisions, _ = decide(
        reviews,
        method=charter.review.consensus,
        min_reviews=needed,
        accept_threshold=charter.review.accept_threshold_pct / 100,
    )
    chosen = [
        {
            "id": d.item,
            "outcome": d.outcome,
            "label": d.label,
            "confidence_pct": round(d.confidence * 100),
        }
        for d in sorted(decisions, key=lambda d: d.item)
        if d.item in ready
    ]
    if not chosen:
        return None
    return {"method": charter.review.consensus, "upto": upto, "decisions": chosen}


def reliability(state: State) -> dict[str, float]:
    """Each reviewer's estimated reliability over every logged review."""
    charter = state.charter
    if charter is None or charter.task is None or not state.reviews:
        return {}
    from commonweal.ml.consensus import decide

    reviews, needed = _inputs(state, state.size)
    _, rel = decide(
        reviews,
        method=charter.review.consensus,
        min_reviews=needed,
        accept_threshold=charter.review.accept_threshold_pct / 100,
    )
    return rel
