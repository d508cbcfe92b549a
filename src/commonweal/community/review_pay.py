"""How much information a reviewer's verdicts carried: what the review pool pays for.

Paying reviewers by how many verdicts matched the consensus pays for volume: a member who
accepts everything agrees with the consensus on every good item and earns the most. What
the community needs from a reviewer is the verdicts it could not have guessed — the
rejected junk, the corrected label. So each verdict and each decision is put in an
outcome category (the item kept as proposed, rejected, or relabelled to a given label),
and a reviewer is weighed by their agreement with the consensus *beyond the agreement
their own habits would reach by chance* (Cohen's kappa, with chance from the reviewer's
own verdict mix and the decisions on the items they reviewed):

    n = verdicts, O = verdicts that matched, X = sum over categories of said_k * decided_k
    S = n*O - X                  (n times the agreement above chance)
    weight = S^2 / (n * (n^2 - X))  =  (agreement above chance) * kappa

A rubber-stamper says "keep" every time: X = n * (items kept), O = items kept, so S = 0
and they earn nothing, however many items they wave through. A reviewer who answers at
random agrees about as often as chance: S near 0, and kappa near 0 squeezes what is left.
A careful reviewer's weight is about the number of verdicts that carried information.
Integers throughout (scaled by ``SCALE``), so every replay computes the same award.
"""

from __future__ import annotations

from typing import NamedTuple

from commonweal.community.state import Contribution, Verdict

__all__ = ["SCALE", "ReviewTally", "decision_category", "informative_weight", "verdict_category"]

SCALE = 10**6


class ReviewTally(NamedTuple):
    """One reviewer's verdicts since the last epoch, by outcome category:
    ``(category, times they said it, times the consensus decided it on their items)``."""

    verdicts: int = 0
    matched: int = 0
    categories: tuple[tuple[str, int, int], ...] = ()

    def add(self, said: str, decided: str) -> ReviewTally:
        counts = {c: [s, d] for c, s, d in self.categories}
        counts.setdefault(said, [0, 0])[0] += 1
        counts.setdefault(decided, [0, 0])[1] += 1
        return ReviewTally(
            self.verdicts + 1,
            self.matched + (said == decided),
            tuple((c, s, d) for c, (s, d) in sorted(counts.items())),
        )


def verdict_category(v: Verdict, item: Contribution) -> str:
    """What the reviewer said should become of the item."""
    if v.verdict in ("reject", "flag"):
        return "reject"
    if v.verdict == "relabel" and v.label != item.label:
        return f"relabel:{v.label}"
    return "keep"


def decision_category(outcome: str, label: str | None, item: Contribution) -> str:
    """What the consensus made of the item."""
    if outcome != "accepted":
        return "reject"
    return "keep" if label == item.label else f"relabel:{label}"


def informative_weight(t: ReviewTally) -> int:
    """The reviewer's review-pool weight: agreement above chance times kappa, x SCALE."""
    n = t.verdicts
    chance = sum(s * d for _, s, d in t.categories)  # n^2 times the chance agreement
    above = n * t.matched - chance
    room = n * (n * n - chance)
    if above <= 0 or room <= 0:
        return 0
    return above * above * SCALE // room
