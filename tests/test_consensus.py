"""Review consensus: Dawid–Skene outweighs spammers, decisions follow the reviews, and the
result is a deterministic function of the reviews (order, process and hash seed aside)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonweal.errors import InvalidInput
from commonweal.ml.consensus import (
    REJECT,
    Decision,
    Review,
    answer,
    dawid_skene,
    decide,
)

LABELS = ["bird", "cat", "dog"]
GOOD = [f"good{i}" for i in range(3)]
SPAMMERS = [f"spam{i}" for i in range(4)]


def review(item: str, reviewer: str, ans: str, given: str | None) -> Review:
    """The review whose answer is ``ans`` on an item the contributor labelled ``given``."""
    if ans == REJECT:
        return Review(item, reviewer, "reject", None, given)
    if ans == given or (given is None and ans == "accept"):
        return Review(item, reviewer, "accept", None, given)
    return Review(item, reviewer, "relabel", ans, given)


def spammed_workload(
    seed: int, n_items: int = 300, per_item: int = 5
) -> tuple[dict[str, str], list[Review]]:
    """Three reviewers right 95% of the time, four answering uniformly at random; each item
    gets ``per_item`` of the seven. 20% of items deserve rejection, 30% of the rest carry a
    wrong given label. Returns the true answer per item and the reviews."""
    rng = random.Random(seed)
    answers = [*LABELS, REJECT]
    truth: dict[str, str] = {}
    reviews: list[Review] = []
    for n in range(n_items):
        item = f"item{n:04d}"
        given = rng.choice(LABELS)
        deserves_rejection = rng.random() < 0.2
        true = REJECT if deserves_rejection else given if rng.random() < 0.7 else rng.choice(LABELS)
        truth[item] = true
        for reviewer in rng.sample(GOOD + SPAMMERS, per_item):
            if reviewer in GOOD:
                ans = true if rng.random() < 0.95 else rng.choice([a for a in answers if a != true])
            else:
                ans = rng.choice(answers)
            reviews.append(review(item, reviewer, ans, given))
    return truth, reviews


def share_right(decisions: list[Decision], truth: dict[str, str]) -> float:
    right = sum(
        (d.label if d.outcome == "accepted" else REJECT) == truth[d.item] for d in decisions
    )
    return float(right) / len(decisions)


def digest(decisions: list[Decision], reliability: dict[str, float]) -> str:
    doc = {
        "decisions": [
            [d.item, d.outcome, d.label, repr(d.confidence), d.reviews] for d in decisions
        ],
        "reliability": sorted((w, repr(r)) for w, r in reliability.items()),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("per_item", [5, 7])
def test_reliable_reviewers_outweigh_spammers(per_item: int) -> None:
    truth, reviews = spammed_workload(seed=per_item, per_item=per_item)
    ds, reliability = decide(reviews)
    majority, _ = decide(reviews, method="majority")
    plurality, _ = decide(reviews, method="majority", accept_threshold=0.0)
    assert len(ds) == len(majority) == len(truth)
    ds_right = share_right(ds, truth)
    assert ds_right >= 0.93
    # Not a photo finish: Dawid–Skene beats majority vote (at the same threshold, and even
    # plain plurality) by a wide margin on the same reviews.
    assert ds_right - share_right(majority, truth) >= 0.1
    assert ds_right - share_right(plurality, truth) >= 0.08
    # Every good reviewer is rated above every spammer, and near their true accuracy.
    assert min(reliability[w] for w in GOOD) > max(reliability[w] for w in SPAMMERS)
    assert all(0.85 <= reliability[w] <= 1.0 for w in GOOD)
    assert all(reliability[w] <= 0.4 for w in SPAMMERS)


# crowd-kit 1.4 uses pandas' deprecated in-place methods; that is its business, not ours.
@pytest.mark.filterwarnings("ignore::Warning:crowdkit")
def test_matches_crowd_kit_dawid_skene() -> None:
    """Without the support restriction and smoothing, our EM is crowd-kit's, update for
    update: same posteriors after the same number of iterations. Items get 1 to 20 reviews,
    so products run over several chunks."""
    from crowdkit.aggregation import DawidSkene

    rng = np.random.default_rng(7)
    n_items, n_workers, k = 400, 25, 4
    truth = rng.integers(0, k, n_items)
    accuracy = rng.uniform(0.2, 0.95, n_workers)
    per_item = rng.integers(1, 21, n_items)
    items = np.repeat(np.arange(n_items), per_item)
    workers = np.concatenate([rng.choice(n_workers, n, replace=False) for n in per_item])
    right = rng.random(len(items)) < accuracy[workers]
    labels = np.where(right, truth[items], rng.integers(0, k, len(items)))
    ck: Any = DawidSkene(n_iter=30, tol=-np.inf).fit(
        pd.DataFrame({"task": items, "worker": workers, "label": labels})
    )
    ours = dawid_skene(
        items,
        workers,
        labels,
        n_items=n_items,
        n_reviewers=n_workers,
        n_classes=k,
        max_iter=30,
        tol=0.0,
    )
    assert ours.iterations == 30
    theirs = ck.probas_.sort_index().reindex(columns=range(k)).to_numpy()
    np.testing.assert_allclose(ours.posteriors, theirs, atol=1e-6)
    np.testing.assert_allclose(ours.priors, ck.priors_.reindex(range(k)).to_numpy(), atol=1e-9)
    errors = ck.errors_  # P(worker answers label | true class), rows (worker, label)
    expected = [
        sum(
            float(ck.priors_[c]) * float(errors.loc[(w, c), c])
            for c in range(k)
            if (w, c) in errors.index
        )
        for w in range(n_workers)
    ]
    np.testing.assert_allclose(ours.reliability, expected, atol=1e-6)


def test_relabel_consensus_gives_the_new_label() -> None:
    reviews = [
        Review("x", "ann", "relabel", "dog", "cat"),
        Review("x", "bob", "relabel", "dog", "cat"),
        Review("x", "cy", "accept", None, "cat"),
    ]
    for method in ("dawid-skene", "majority"):
        [d], _ = decide(reviews, method=method)
        assert (d.item, d.outcome, d.label, d.reviews) == ("x", "accepted", "dog", 3)
        assert d.confidence >= 0.5


def test_reject_consensus_rejects() -> None:
    reviews = [
        Review("x", "ann", "reject", None, "cat"),
        Review("x", "bob", "flag", "pii", "cat"),
        Review("x", "cy", "accept", None, "cat"),
    ]
    for method in ("dawid-skene", "majority"):
        [d], _ = decide(reviews, method=method)
        assert (d.outcome, d.label) == ("rejected", None)
        assert d.confidence >= 0.5


def test_accepted_label_is_the_given_one_or_none_without_labels() -> None:
    reviews = [
        Review("a", "ann", "accept", None, "cat"),
        Review("a", "bob", "accept", None, "cat"),
        Review("r", "ann", "accept", None, None),
        Review("r", "bob", "accept", None, None),
    ]
    decisions, _ = decide(reviews)
    assert [(d.item, d.outcome, d.label) for d in decisions] == [
        ("a", "accepted", "cat"),
        ("r", "accepted", None),
    ]


def test_items_below_min_reviews_get_no_decision_but_still_teach_reliability() -> None:
    reviews = [
        Review("a", "ann", "accept", None, "cat"),
        Review("a", "bob", "accept", None, "cat"),
        Review("b", "ann", "reject", None, "cat"),
        Review("c", "ann", "accept", None, "dog"),
        Review("c", "bob", "accept", None, "dog"),
        Review("c", "cy", "accept", None, "dog"),
    ]
    decisions, reliability = decide(reviews)
    assert [d.item for d in decisions] == ["a", "c"]
    assert set(reliability) == {"ann", "bob", "cy"}
    decisions, _ = decide(reviews, min_reviews=3)
    assert [d.item for d in decisions] == ["c"]
    decisions, _ = decide(reviews, min_reviews={"a": 3, "b": 1, "c": 3})
    assert [d.item for d in decisions] == ["b", "c"]
    assert decisions[0].outcome == "rejected"
    decisions, _ = decide(reviews, min_reviews={"b": 1})  # a and c need the default, 2
    assert [d.item for d in decisions] == ["a", "b", "c"]


def test_a_tie_at_the_top_is_no_consensus() -> None:
    between_labels = [
        Review("x", "ann", "relabel", "dog", "cat"),
        Review("x", "bob", "accept", None, "cat"),
    ]
    with_reject = [
        Review("y", "ann", "accept", None, "cat"),
        Review("y", "bob", "reject", None, "cat"),
    ]
    for reviews in (between_labels, with_reject):
        for method in ("dawid-skene", "majority"):
            [d], _ = decide(reviews, method=method, accept_threshold=0.0)
            assert (d.outcome, d.label, d.confidence) == ("rejected", None, 0.5)
    # Majority reliability counts a tie toward REJECT, then the lexicographically first.
    for reviews in (between_labels, with_reject):
        _, reliability = decide(reviews, method="majority")
        assert reliability == {"ann": 0.0, "bob": 1.0}


def test_threshold_rejects_an_unsure_plurality() -> None:
    reviews = [
        Review("x", "ann", "accept", None, "cat"),
        Review("x", "bob", "accept", None, "cat"),
        Review("x", "cy", "relabel", "dog", "cat"),
        Review("x", "di", "reject", None, "cat"),
    ]
    [d], _ = decide(reviews, method="majority", accept_threshold=0.5)
    assert (d.outcome, d.label, d.confidence) == ("accepted", "cat", 0.5)
    [d], _ = decide(reviews, method="majority", accept_threshold=0.6)
    assert (d.outcome, d.label, d.confidence) == ("rejected", None, 0.5)


@pytest.mark.parametrize(
    ("reviews", "words"),
    [
        ([Review("x", "ann", "approve")], "verdict 'approve'"),
        ([Review("x", "ann", "relabel", None, "cat")], "relabel names its new label"),
        ([Review("x", "ann", "relabel", REJECT, "cat")], "relabel names its new label"),
        ([Review("x", "ann", "accept", None, REJECT)], "reserved"),
        ([Review("x", "ann", "accept"), Review("x", "ann", "reject")], "more than once"),
        (
            [Review("x", "ann", "accept", None, "a"), Review("x", "bo", "accept", None, "b")],
            "given",
        ),
    ],
)
def test_bad_reviews_are_refused_by_name(reviews: list[Review], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        decide(reviews)


def test_bad_parameters_are_refused() -> None:
    reviews = [Review("x", "ann", "accept")]
    bad: list[dict[str, Any]] = [
        {"method": "vote"},
        {"accept_threshold": 1.5},
        {"max_iter": 0},
        {"tol": -1.0},
        {"smoothing": float("nan")},
    ]
    for kwargs in bad:
        with pytest.raises(InvalidInput):
            decide(reviews, **kwargs)
    assert decide([]) == ([], {})


def test_answer_maps_verdicts_to_classes() -> None:
    assert answer(Review("x", "a", "accept", None, "cat")) == "cat"
    assert answer(Review("x", "a", "relabel", "dog", "cat")) == "dog"
    assert answer(Review("x", "a", "reject", None, "cat")) == REJECT
    assert answer(Review("x", "a", "flag", "spam", "cat")) == REJECT


def test_input_order_does_not_matter() -> None:
    _, reviews = spammed_workload(seed=3)
    expected = decide(reviews)
    expected_majority = decide(reviews, method="majority")
    rng = random.Random(0)
    for _ in range(3):
        shuffled = reviews[:]
        rng.shuffle(shuffled)
        assert decide(shuffled) == expected
        assert decide(shuffled, method="majority") == expected_majority


_REPLAY = """
import hashlib, json, sys
from commonweal.ml.consensus import Review, decide
reviews = [Review(*r) for r in json.load(sys.stdin)]
decisions, reliability = decide(reviews)
doc = {
    "decisions": [[d.item, d.outcome, d.label, repr(d.confidence), d.reviews] for d in decisions],
    "reliability": sorted((w, repr(r)) for w, r in reliability.items()),
}
print(hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest())
"""


def test_a_fresh_process_recomputes_the_same_digest() -> None:
    _, reviews = spammed_workload(seed=11)
    expected = digest(*decide(reviews))
    rows = [[r.item, r.reviewer, r.verdict, r.label, r.given_label] for r in reviews]
    rows.reverse()  # and in another order
    root = Path(__file__).resolve().parents[1]
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", _REPLAY],
            input=json.dumps(rows),
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            check=True,
            timeout=60,
        )
        assert out.stdout.strip() == expected


@st.composite
def reviews_with_unanimous_items(draw: st.DrawFn) -> tuple[list[Review], dict[str, str]]:
    """Random reviews of up to 8 items by up to 6 reviewers; some items unanimous. Returns
    the reviews and, for each unanimous item, the answer all its reviewers gave."""
    reviewers = [f"r{i}" for i in range(draw(st.integers(1, 6)))]
    answers = st.sampled_from(["cat", "dog", "emu", REJECT])
    reviews: list[Review] = []
    unanimous: dict[str, str] = {}
    for n in range(draw(st.integers(1, 8))):
        item = f"i{n}"
        given = draw(st.sampled_from([None, "cat", "dog"]))
        who = draw(st.lists(st.sampled_from(reviewers), min_size=1, unique=True))
        if draw(st.booleans()):
            ans = draw(answers)
            if given is None and ans != REJECT:
                ans = draw(st.sampled_from(["accept", ans]))
            unanimous[item] = ans
            for w in who:
                if ans == REJECT and draw(st.booleans()):
                    reviews.append(Review(item, w, "flag", "spam", given))
                else:
                    reviews.append(review(item, w, ans, given))
        else:
            reviews.extend(review(item, w, draw(answers), given) for w in who)
    return reviews, unanimous


@settings(max_examples=150, deadline=None)
@given(
    case=reviews_with_unanimous_items(),
    method=st.sampled_from(["dawid-skene", "majority"]),
    threshold=st.floats(0.0, 1.0),
)
def test_unanimous_reviewers_decide_their_item(
    case: tuple[list[Review], dict[str, str]], method: str, threshold: float
) -> None:
    reviews, unanimous = case
    decisions, reliability = decide(
        reviews, method=method, min_reviews=1, accept_threshold=threshold
    )
    assert all(0.0 <= r <= 1.0 for r in reliability.values())
    by_item = {d.item: d for d in decisions}
    assert len(by_item) == len({r.item for r in reviews})
    for item, ans in unanimous.items():
        d = by_item[item]
        if ans == REJECT:
            assert (d.outcome, d.label) == ("rejected", None)
        else:
            label = None if ans == "accept" else ans
            assert (d.outcome, d.label, d.confidence) == ("accepted", label, 1.0)
