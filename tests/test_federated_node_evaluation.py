"""Valuing members on the nodes' held-out parts when the hub has no evaluation set: the
coalition models the ServerApp sends, the correct counts a node returns, and the pooled
arithmetic that turns them into coalition utilities, checked without a Flower deployment."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from commonweal.community.federated_math import needed_coalitions, round_shapley
from commonweal.errors import InvalidInput
from commonweal.ml import federated as fed

server_app = pytest.importorskip("commonweal.federated.server_app")

Data = tuple[NDArray[np.float64], NDArray[np.intp]]


@pytest.fixture(scope="module")
def nodes() -> tuple[list[fed.Params], list[int], list[Data]]:
    """Three nodes' updates from zeros, and three held-out parts of different sizes."""
    d = load_digits()
    X, y = d.data / 16.0, d.target.astype(np.intp)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    order = np.random.default_rng(42).permutation(len(ytr))
    start = fed.zeros(10, 64)
    parts = [(Xtr[p], ytr[p]) for p in np.array_split(order, 3)]
    ups = [fed.softmax_train(start, Xp, yp, epochs=20, lr=0.5, l2=1e-4) for Xp, yp in parts]
    cuts = np.split(np.arange(len(yte)), [50, 170])
    holdouts = [(Xte[c], yte[c]) for c in cuts]
    return ups, [len(p[1]) for p in parts], holdouts


def test_pooled_counts_are_each_coalitions_accuracy_on_the_union_of_holdouts(
    nodes: tuple[list[fed.Params], list[int], list[Data]],
) -> None:
    ups, examples, holdouts = nodes
    start = fed.zeros(10, 64)
    masks = needed_coalitions(3, 0, 7)
    models = fed.coalition_models("fedavg", ups, examples, start, masks, trim_pct=20, malicious=1)
    assert models[0].shape == (8, 10, 64) and models[1].shape == (8, 10)
    replies = [(fed.correct_counts(models, X, y), len(y)) for X, y in holdouts]
    pooled = fed.pooled_accuracies(replies)
    assert pooled is not None
    X_all = np.concatenate([h[0] for h in holdouts])
    y_all = np.concatenate([h[1] for h in holdouts])
    central = fed.coalition_utilities(
        "fedavg", ups, examples, start, X_all, y_all, masks, trim_pct=20, malicious=1
    )
    for mask, share in zip(masks, pooled, strict=True):
        assert share.denominator <= len(y_all)
        assert float(share) == pytest.approx(central[mask], abs=1e-12)
    assert pooled[0] == Fraction(int(np.sum(y_all == 0)), len(y_all))  # zeros pick label 0
    assert pooled[7] > Fraction(8, 10)


def test_pooled_accuracies_weigh_nodes_by_rows_not_by_vote() -> None:
    pooled = fed.pooled_accuracies([(np.array([3, 9]), 10), (np.array([1, 1]), 2)])
    assert pooled == [Fraction(4, 12), Fraction(10, 12)]
    assert fed.pooled_accuracies([]) is None
    assert fed.pooled_accuracies([(np.array([0, 0]), 0)]) is None
    assert fed.pooled_accuracies([(np.array([0, 0]), 0), (np.array([1, 2]), 4)]) == [
        Fraction(1, 4),
        Fraction(1, 2),
    ]


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        ([(np.array([11, 2]), 10)], r"outside 0\.\.10"),
        ([(np.array([-1, 2]), 10)], r"outside 0\.\.10"),
        ([(np.array([1, 2]), 10), (np.array([1]), 10)], "expected 2 integers"),
        ([(np.array([0.5, 2.0]), 10)], "expected 2 integers"),
        ([(np.array([1, 2]), -3)], "integer >= 0"),
    ],
)
def test_pooled_accuracies_refuse_impossible_counts(
    replies: list[tuple[NDArray[np.int64], int]], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        fed.pooled_accuracies(replies)


def test_correct_counts_agree_with_accuracy_and_an_empty_holdout_counts_nothing(
    nodes: tuple[list[fed.Params], list[int], list[Data]],
) -> None:
    ups, _, holdouts = nodes
    X, y = holdouts[1]
    stacked = (np.stack([u[0] for u in ups]), np.stack([u[1] for u in ups]))
    counts = fed.correct_counts(stacked, X, y)
    assert counts.dtype == np.int64
    assert counts.tolist() == [round(fed.accuracy(u, X, y) * len(y)) for u in ups]
    assert fed.correct_counts(stacked, X[:0], y[:0]).tolist() == [0, 0, 0]
    with pytest.raises(InvalidInput, match=r"expected W \(models, labels, features\)"):
        fed.correct_counts(ups[0], X, y)


def test_fraction_text_rounds_exactly_half_even() -> None:
    assert server_app.fraction_text(Fraction(1, 8), 2) == "0.12"
    assert server_app.fraction_text(Fraction(3, 8), 2) == "0.38"
    assert server_app.fraction_text(Fraction(1, 3), 12) == "0.333333333333"
    assert server_app.fraction_text(Fraction(0), 12) == "0"
    assert server_app.fraction_text(Fraction(1), 6) == "1.000000"


def _run(tmp_path: Path) -> object:
    plan = {
        "rounds": 1,
        "min_clients": 1,
        "aggregation": "fedavg",
        "trim_pct": 20,
        "malicious": 1,
        "valuation": {"max_exact_players": 10, "permutations": 200, "seed": 7},
        "labels": [str(i) for i in range(10)],
        "features": 64,
        "start": 0,
        "nodes": {"1": "a" * 64, "2": "b" * 64},
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    np.savez(tmp_path / "start.npz", W=np.zeros((10, 64)), b=np.zeros(10))
    return server_app.FederatedRun(tmp_path)


def test_server_pools_node_counts_into_utilities_values_and_metrics(
    tmp_path: Path, nodes: tuple[list[fed.Params], list[int], list[Data]]
) -> None:
    ups, examples, holdouts = nodes
    run = _run(tmp_path)
    players = ["a" * 64, "b" * 64]
    masks = needed_coalitions(2, 0, 7)
    models = fed.coalition_models(
        "fedavg", ups[:2], examples[:2], run.start, masks, trim_pct=20, malicious=1
    )
    pending = server_app._Pending(players, 0, 7, masks, models)
    aggregate = fed.aggregate("fedavg", ups[:2], examples[:2], trim_pct=20, malicious=1)
    with_aggregate = (
        np.concatenate([aggregate[0][np.newaxis], models[0]]),
        np.concatenate([aggregate[1][np.newaxis], models[1]]),
    )
    good = [(fed.correct_counts(with_aggregate, X, y), len(y)) for X, y in holdouts[:2]]
    liar = (np.array([500] * 5), 10)  # more correct rows than it holds: not counted
    run._pool(1, pending, [*good, liar])
    valuation = run.valuation[1]
    shares = fed.pooled_accuracies(good)
    assert shares is not None
    assert valuation["utilities"] == {
        str(m): server_app.fraction_text(s, 12) for m, s in zip(masks, shares[1:], strict=True)
    }
    assert valuation["values"] == round_shapley(players, valuation["utilities"], 0, 7)
    values = [Fraction(v) for v in valuation["values"].values()]
    assert all(v > 0 for v in values)
    gained = Fraction(valuation["utilities"]["3"]) - Fraction(valuation["utilities"]["0"])
    assert abs(sum(values) - gained) < Fraction(1, 10**10)
    assert run.pooled_metrics[1] == {
        "accuracy": server_app.fraction_text(shares[0]),
        "examples": str(len(holdouts[0][1]) + len(holdouts[1][1])),
    }


def test_server_keeps_zero_utilities_when_no_node_scored(tmp_path: Path) -> None:
    run = _run(tmp_path)
    players = ["a" * 64]
    masks = needed_coalitions(1, 0, 7)
    models = (np.zeros((2, 10, 64)), np.zeros((2, 10)))
    run.valuation[1] = run._shapley(players, {"0": "0", "1": "0"}, 0, 7)
    run._pool(1, server_app._Pending(players, 0, 7, masks, models), [])
    assert run.valuation[1]["utilities"] == {"0": "0", "1": "0"}
    assert Fraction(run.valuation[1]["values"]["a" * 64]) == 0
    assert 1 not in run.pooled_metrics
