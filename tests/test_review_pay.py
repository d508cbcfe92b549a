"""The review pool pays for information, not for agreeing (``community.review_pay``)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from commonweal.community.review_pay import (
    ReviewTally,
    decision_category,
    informative_weight,
    verdict_category,
)
from commonweal.community.state import Contribution, Verdict

ITEM = Contribution("i", "m", 0, "c", "3", "CC0-1.0", "train", "in_review", "", "", 2, 2, None, 0)
OUTCOMES = st.sampled_from(["keep", "reject", "relabel:1", "relabel:2"])


def tally(pairs: list[tuple[str, str]]) -> ReviewTally:
    t = ReviewTally()
    for said, decided in pairs:
        t = t.add(said, decided)
    return t


@given(st.lists(OUTCOMES, min_size=1, max_size=300))
def test_a_rubber_stamper_earns_nothing_whatever_the_decisions(decided: list[str]) -> None:
    assert informative_weight(tally([("keep", d) for d in decided])) == 0


@given(st.lists(st.tuples(OUTCOMES, OUTCOMES), min_size=1, max_size=300))
def test_a_weight_is_never_negative_and_agreeing_always_earns_at_least_as_much(
    pairs: list[tuple[str, str]],
) -> None:
    w = informative_weight(tally(pairs))
    assert w >= 0
    honest = informative_weight(tally([(d, d) for _, d in pairs]))
    assert honest >= w


@settings(max_examples=30)
@given(st.integers(min_value=0, max_value=2**31), st.integers(min_value=50, max_value=400))
def test_a_random_reviewer_earns_a_small_fraction_of_a_careful_one(seed: int, n: int) -> None:
    rng = random.Random(seed)
    decided = ["reject" if rng.random() < 0.2 else "keep" for _ in range(n)]
    careful = informative_weight(tally([(d, d) for d in decided]))
    coin = informative_weight(
        tally([("reject" if rng.random() < 0.5 else "keep", d) for d in decided])
    )
    if "reject" in decided:
        assert careful > 0
        assert coin <= careful * 0.25


def test_a_careful_reviewer_earns_about_the_verdicts_that_carried_information() -> None:
    # 90 good items kept, 10 bad ones rejected: kappa 1, chance agreement 0.82.
    w = informative_weight(tally([("keep", "keep")] * 90 + [("reject", "reject")] * 10))
    assert w == 18 * 10**6


def test_categories_follow_the_proposed_label() -> None:
    assert verdict_category(Verdict("r", "accept", None), ITEM) == "keep"
    assert verdict_category(Verdict("r", "relabel", "3"), ITEM) == "keep"
    assert verdict_category(Verdict("r", "relabel", "5"), ITEM) == "relabel:5"
    assert verdict_category(Verdict("r", "flag", None), ITEM) == "reject"
    assert decision_category("accepted", "3", ITEM) == "keep"
    assert decision_category("accepted", "5", ITEM) == "relabel:5"
    assert decision_category("rejected", None, ITEM) == "reject"
