"""The federated softmax's numerics (``commonweal.ml.federated``): aggregation agrees with
Flower 1.42's own strategies, local training does what it says, and the screen catches
poisoned updates without catching honest label-skewed ones."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from commonweal.errors import InvalidInput
from commonweal.ml import federated as fed

flwr_app = pytest.importorskip("flwr.app")
flwr_strategy = pytest.importorskip("flwr.serverapp.strategy")
task_identity = pytest.importorskip("flwr.supercore.task_identity")

Data = tuple[NDArray[np.float64], NDArray[np.intp]]


@pytest.fixture(scope="module")
def digits() -> tuple[Data, Data]:
    d = load_digits()
    X, y = d.data / 16.0, d.target.astype(np.intp)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    return (Xtr, ytr), (Xte, yte)


def iid_parts(train: Data, n: int) -> list[Data]:
    X, y = train
    order = np.random.default_rng(42).permutation(len(y))
    return [(X[p], y[p]) for p in np.array_split(order, n)]


def skewed_parts(train: Data) -> list[Data]:
    """5 clients; client c holds 80% of digits 2c and 2c+1, the other 20% of every digit is
    spread evenly over the other four clients."""
    X, y = train
    rng = np.random.default_rng(42)
    rows: list[list[int]] = [[] for _ in range(5)]
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(y == digit))
        owner = digit // 2
        k = int(0.8 * len(idx))
        rows[owner].extend(idx[:k].tolist())
        others = [c for c in range(5) if c != owner]
        for c, part in zip(others, np.array_split(idx[k:], 4), strict=True):
            rows[c].extend(part.tolist())
    return [(X[np.sort(r)], y[np.sort(r)]) for r in rows]


def random_updates(n: int, seed: int) -> tuple[list[fed.Params], list[int]]:
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(10, 64)), rng.normal(size=10)
    ups = [
        (centre[0] + rng.normal(scale=0.3, size=(10, 64)), centre[1] + rng.normal(size=10))
        for _ in range(n)
    ]
    ups[0] = (-3 * ups[0][0], -3 * ups[0][1])  # one attacker, so the rules have work to do
    return ups, [int(e) for e in rng.integers(20, 400, size=n)]


@pytest.fixture
def flower_task(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Flower stamps a new Message with the running task's identity; outside a ServerApp
    # there is none, so give it one for the test.
    ti = task_identity.TaskIdentity
    monkeypatch.setattr(ti, "_run_id", 1)
    monkeypatch.setattr(ti, "_node_id", 1)
    monkeypatch.setattr(ti, "_task_id", 1)
    yield


def flower_aggregate(strategy: Any, updates: list[fed.Params], examples: list[int]) -> fed.Params:
    replies = [
        flwr_app.Message(
            flwr_app.RecordDict(
                {
                    "arrays": flwr_app.ArrayRecord([w.copy(), b.copy()]),
                    "metrics": flwr_app.MetricRecord({"num-examples": e}),
                }
            ),
            dst_node_id=i + 1,
            message_type="train",
        )
        for i, ((w, b), e) in enumerate(zip(updates, examples, strict=True))
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    W, b = arrays.to_numpy_ndarrays()
    return W, b


FLOWER_CASES = [
    ("fedavg", 7, 20, 1, lambda: flwr_strategy.FedAvg()),
    ("median", 7, 20, 1, lambda: flwr_strategy.FedMedian()),
    ("median", 6, 20, 1, lambda: flwr_strategy.FedMedian()),
    ("trimmed-mean", 7, 20, 1, lambda: flwr_strategy.FedTrimmedAvg(beta=0.2)),
    ("trimmed-mean", 10, 30, 1, lambda: flwr_strategy.FedTrimmedAvg(beta=0.3)),
    ("krum", 7, 20, 1, lambda: flwr_strategy.Krum(num_malicious_nodes=1)),
    ("krum", 9, 20, 2, lambda: flwr_strategy.Krum(num_malicious_nodes=2)),
    (
        "multi-krum",
        7,
        20,
        1,
        lambda: flwr_strategy.MultiKrum(num_malicious_nodes=1, num_nodes_to_select=6),
    ),
    (
        "multi-krum",
        9,
        20,
        2,
        lambda: flwr_strategy.MultiKrum(num_malicious_nodes=2, num_nodes_to_select=7),
    ),
    ("bulyan", 7, 20, 1, lambda: flwr_strategy.Bulyan(num_malicious_nodes=1)),
    ("bulyan", 12, 20, 2, lambda: flwr_strategy.Bulyan(num_malicious_nodes=2)),
]


@pytest.mark.parametrize(("rule", "n", "trim_pct", "f", "make"), FLOWER_CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aggregate_agrees_with_flowers_strategy(
    flower_task: None, rule: str, n: int, trim_pct: int, f: int, make: Any, seed: int
) -> None:
    updates, examples = random_updates(n, seed)
    W, b = fed.aggregate(rule, updates, examples, trim_pct=trim_pct, malicious=f)
    fW, fb = flower_aggregate(make(), updates, examples)
    np.testing.assert_allclose(W, fW, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b, fb, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("rule", "n", "f"),
    [("krum", 4, 1), ("multi-krum", 4, 1), ("bulyan", 6, 1), ("trimmed-mean", 4, 1)],
)
def test_small_coalitions_fall_back_to_the_median(rule: str, n: int, f: int) -> None:
    updates, examples = random_updates(n, 3)
    W, b = fed.aggregate(rule, updates, examples, trim_pct=20, malicious=f)
    mW, mb = fed.aggregate("median", updates, examples, trim_pct=20, malicious=f)
    assert np.array_equal(W, mW) and np.array_equal(b, mb)


@pytest.mark.parametrize("rule", fed.AGGREGATIONS)
def test_every_rule_gives_a_lone_update_back_and_averages_a_pair(rule: str) -> None:
    updates, examples = random_updates(2, 4)
    W, b = fed.aggregate(rule, updates[1:], examples[1:], trim_pct=20, malicious=1)
    np.testing.assert_allclose(W, updates[1][0], atol=1e-12)
    np.testing.assert_allclose(b, updates[1][1], atol=1e-12)
    pW, _ = fed.aggregate(rule, updates, [1, 1], trim_pct=20, malicious=1)
    np.testing.assert_allclose(pW, (updates[0][0] + updates[1][0]) / 2, atol=1e-12)


def test_aggregate_refuses_bad_input() -> None:
    updates, examples = random_updates(3, 5)
    with pytest.raises(InvalidInput, match="'mean' is unknown"):
        fed.aggregate("mean", updates, examples, trim_pct=20, malicious=1)
    with pytest.raises(InvalidInput, match="no updates"):
        fed.aggregate("fedavg", [], [], trim_pct=20, malicious=1)
    with pytest.raises(InvalidInput, match="different shapes"):
        fed.aggregate(
            "fedavg", [*updates, fed.zeros(3, 64)], [*examples, 5], trim_pct=0, malicious=0
        )


def test_training_lowers_the_loss_and_is_deterministic(digits: tuple[Data, Data]) -> None:
    (X, y), (Xte, yte) = digits
    start = fed.zeros(10, 64)
    a = fed.softmax_train(start, X, y, epochs=30, lr=1.0, l2=1e-4)
    b = fed.softmax_train(start, X, y, epochs=30, lr=1.0, l2=1e-4)
    assert fed.update_sha256(a) == fed.update_sha256(b)
    assert not start[0].any()  # the input is left alone
    assert fed.cross_entropy(a, X, y, l2=1e-4) < 0.5 * fed.cross_entropy(start, X, y, l2=1e-4)
    more = fed.softmax_train(a, X, y, epochs=30, lr=1.0, l2=1e-4)
    assert fed.cross_entropy(more, X, y, l2=1e-4) < fed.cross_entropy(a, X, y, l2=1e-4)
    assert fed.accuracy(more, Xte, yte) > 0.9


def test_a_node_missing_labels_trains_and_learns_only_what_it_has(
    digits: tuple[Data, Data],
) -> None:
    (X, y), (Xte, _) = digits
    mine = np.isin(y, [3, 7])
    params = fed.softmax_train(fed.zeros(10, 64), X[mine], y[mine], epochs=20, lr=1.0, l2=1e-4)
    assert fed.is_finite(params)
    assert fed.accuracy(params, X[mine], y[mine]) > 0.95
    predicted = np.argmax(Xte @ params[0].T + params[1], axis=1)
    assert set(predicted.tolist()) <= {3, 7}  # absent labels were pushed down, not learned


def test_training_refuses_labels_outside_the_model(digits: tuple[Data, Data]) -> None:
    (X, y), _ = digits
    with pytest.raises(InvalidInput, match=r"label index 10 is outside 0\.\.9"):
        fed.softmax_train(fed.zeros(10, 64), X, y + 1, epochs=1, lr=1.0, l2=0.0)


def test_update_hash_is_the_bytes_a_node_sends() -> None:
    W, b = np.arange(6.0).reshape(2, 3), np.array([0.5, -1.0])
    expected = hashlib.sha256(b"".join(a.tobytes() for a in (W, b))).hexdigest()
    assert fed.update_sha256((W, b)) == expected
    assert fed.update_sha256((np.asfortranarray(W), b)) == expected


def local_updates(parts: list[Data], start: fed.Params, epochs: int = 10) -> list[fed.Params]:
    return [fed.softmax_train(start, X, y, epochs=epochs, lr=2.0, l2=1e-4) for X, y in parts]


def test_screen_rejects_non_finite_updates(digits: tuple[Data, Data]) -> None:
    (train, _) = digits
    ups = local_updates(iid_parts(train, 4), fed.zeros(10, 64))
    ups[1][0][2, 3] = np.nan
    ups[3][1][0] = np.inf
    assert fed.screen(ups, 0) == [None, "not finite", None, "not finite"]
    assert fed.screen(ups, 3) == [None, "not finite", None, "not finite"]
    assert np.isinf(fed.distances_to_median(ups)[1])


@pytest.mark.parametrize("scale", [-3.0, 3.0])
def test_screen_rejects_a_boosted_update_among_five_honest_ones(
    digits: tuple[Data, Data], scale: float
) -> None:
    (train, _) = digits
    parts = iid_parts(train, 6)
    start = fed.softmax_train(fed.zeros(10, 64), *parts[0], epochs=5, lr=1.0, l2=1e-4)
    ups = local_updates(parts, start)
    ups[2] = (scale * ups[2][0], scale * ups[2][1])
    reasons = fed.screen(ups, 3)
    assert [r is None for r in reasons] == [True, True, False, True, True, True]
    assert reasons[2] is not None
    assert "the median distance to the coordinate-wise median (limit 3)" in reasons[2]
    assert fed.screen(ups, 0) == [None] * 6  # factor 0: finiteness only


def test_screen_keeps_honest_label_skewed_updates(digits: tuple[Data, Data]) -> None:
    # The recommended recipe (100 local epochs, learning rate 2): the longer a skewed node
    # trains, the further it drifts towards its own digits, so this is the hard case.
    (train, _) = digits
    parts = skewed_parts(train)
    examples = [len(p[1]) for p in parts]
    model = fed.zeros(10, 64)
    for _ in range(3):
        ups = local_updates(parts, model, epochs=100)
        assert fed.screen(ups, 3) == [None] * 5
        model = fed.aggregate("fedavg", ups, examples, trim_pct=20, malicious=1)


def test_screen_needs_three_updates_to_call_one_an_outlier() -> None:
    updates, _ = random_updates(2, 6)
    assert fed.screen(updates, 3) == [None, None]


def test_coalition_utilities_score_each_coalition(digits: tuple[Data, Data]) -> None:
    train, (Xte, yte) = digits
    parts = iid_parts(train, 3)
    start = fed.zeros(10, 64)
    ups = local_updates(parts, start)
    examples = [len(p[1]) for p in parts]
    u = fed.coalition_utilities(
        "median", ups, examples, start, Xte, yte, list(range(8)), trim_pct=20, malicious=1
    )
    assert sorted(u) == list(range(8))
    assert u[0] == fed.accuracy(start, Xte, yte)
    assert u[0b010] == fed.accuracy(ups[1], Xte, yte)
    assert u[0b111] == fed.accuracy(
        fed.aggregate("median", ups, examples, trim_pct=20, malicious=1), Xte, yte
    )
    with pytest.raises(InvalidInput, match=r"mask 8 is outside 0\.\.7"):
        fed.coalition_utilities(
            "median", ups, examples, start, Xte, yte, [8], trim_pct=20, malicious=1
        )


def test_local_split_is_deterministic_disjoint_and_complete() -> None:
    train, hold = fed.local_split(100, 20, 7)
    assert len(hold) == 20 and len(train) == 80
    assert sorted([*train.tolist(), *hold.tolist()]) == list(range(100))
    again = fed.local_split(100, 20, 7)
    assert np.array_equal(train, again[0]) and np.array_equal(hold, again[1])
    assert not np.array_equal(hold, fed.local_split(100, 20, 8)[1])
    assert [len(h) for _, h in (fed.local_split(n, 20, 1) for n in (0, 1, 2, 4))] == [0, 0, 1, 1]
    assert len(fed.local_split(10, 0, 1)[1]) == 0
