"""Exact KNN-Shapley values: axioms, brute-force Shapley, the pyDVL recursion, batching."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from commonweal.ml.knn_shapley import knn_shapley


def _utility(
    subset: tuple[int, ...], dist: np.ndarray, y_train: np.ndarray, y_test: np.ndarray, k: int
) -> float:
    """U(S) of Jia et al., averaged over test points; order by (distance, index)."""
    if not subset:
        return 0.0
    total = 0.0
    for t in range(dist.shape[0]):
        nearest = sorted(subset, key=lambda i: (dist[t, i], i))[:k]
        total += sum(1 for i in nearest if y_train[i] == y_test[t]) / k
    return float(total / dist.shape[0])


def _brute_force_shapley(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, k: int
) -> np.ndarray:
    n = x_train.shape[0]
    dist = cdist(x_test, x_train, metric="sqeuclidean")
    utility = {
        s: _utility(s, dist, y_train, y_test, k)
        for r in range(n + 1)
        for s in itertools.combinations(range(n), r)
    }
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for r in range(n):
            weight = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for s in itertools.combinations(others, r):
                with_i = tuple(sorted((*s, i)))
                values[i] += weight * (utility[with_i] - utility[s])
    return values


def _pydvl_loop(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, k: int
) -> np.ndarray:
    """The recursion written point by point, as in pyDVL 0.10 (index tie-break)."""
    n = x_train.shape[0]
    dist = cdist(x_test, x_train, metric="sqeuclidean")
    total = np.zeros(n)
    for t in range(x_test.shape[0]):
        neighbors = np.argsort(dist[t], kind="stable")
        values = np.zeros(n)
        label = y_test[t]
        values[neighbors[-1]] = float(y_train[neighbors[-1]] == label) / n
        for i in range(n - 1, 0, -1):
            prev_idx, idx = neighbors[i], neighbors[i - 1]
            values[idx] = values[prev_idx]
            values[idx] += (int(y_train[idx] == label) - int(y_train[prev_idx] == label)) / max(
                k, i
            )
        total += values
    result: np.ndarray = total / x_test.shape[0]
    return result


@st.composite
def _tiny_problem(draw: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    n = draw(st.integers(1, 7))
    m = draw(st.integers(1, 3))
    d = draw(st.integers(1, 2))
    n_labels = draw(st.integers(1, 3))
    # Small integer coordinates: plenty of exact distance ties, resolved by training index.
    coord = st.integers(-3, 3)
    x_train = np.array(draw(st.lists(coord, min_size=n * d, max_size=n * d)), float).reshape(n, d)
    x_test = np.array(draw(st.lists(coord, min_size=m * d, max_size=m * d)), float).reshape(m, d)
    label = st.integers(0, n_labels - 1)
    y_train = np.array(draw(st.lists(label, min_size=n, max_size=n)))
    y_test = np.array(draw(st.lists(label, min_size=m, max_size=m)))
    k = draw(st.integers(1, 8))
    return x_train, y_train, x_test, y_test, k


@settings(max_examples=150, deadline=None)
@given(_tiny_problem())
def test_matches_brute_force_shapley(
    problem: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int],
) -> None:
    x_train, y_train, x_test, y_test, k = problem
    got = knn_shapley(x_train, y_train, x_test, y_test, k=k)
    want = _brute_force_shapley(x_train, y_train, x_test, y_test, k)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(_tiny_problem())
def test_bit_identical_to_pydvl_recursion(
    problem: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int],
) -> None:
    x_train, y_train, x_test, y_test, k = problem
    assume(x_train.shape[0] >= k)  # pyDVL's s_N = m_N / N is only right for N >= K
    got = knn_shapley(x_train, y_train, x_test, y_test, k=k)
    want = _pydvl_loop(x_train, y_train, x_test, y_test, k)
    assert np.array_equal(got, want)


def _random_problem(
    seed: int, n: int = 60, m: int = 23, d: int = 3, n_labels: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, d)),
        rng.integers(0, n_labels, size=n),
        rng.normal(size=(m, d)),
        rng.integers(0, n_labels, size=m),
    )


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 10), n=st.integers(1, 80))
def test_efficiency(seed: int, k: int, n: int) -> None:
    x_train, y_train, x_test, y_test = _random_problem(seed, n=n)
    values = knn_shapley(x_train, y_train, x_test, y_test, k=k)
    dist = cdist(x_test, x_train, metric="sqeuclidean")
    full = _utility(tuple(range(n)), dist, y_train, y_test, k)
    assert math.isclose(float(values.sum()), full - 0.0, rel_tol=0, abs_tol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 10))
def test_symmetry_of_duplicates(seed: int, k: int) -> None:
    x_train, y_train, x_test, y_test = _random_problem(seed)
    # Point 40 becomes an exact copy of point 7 (features and label). Continuous random
    # features, so no third point ties with them and they are adjacent in every order.
    x_train[40] = x_train[7]
    y_train[40] = y_train[7]
    values = knn_shapley(x_train, y_train, x_test, y_test, k=k)
    assert values[7] == values[40]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 10))
def test_null_player(seed: int, k: int) -> None:
    # A point farther from every test point than all other training points, whose label no
    # test point has, changes no coalition's utility: it is only among the K nearest of
    # S + {i} when |S| < K, and then it adds no match and displaces nobody. Value exactly 0.
    x_train, y_train, x_test, y_test = _random_problem(seed)
    x_train[12] = 1e3
    y_train[12] = 99
    values = knn_shapley(x_train, y_train, x_test, y_test, k=k)
    assert values[12] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_size_does_not_change_values(seed: int) -> None:
    x_train, y_train, x_test, y_test = _random_problem(seed, n=200, m=53)
    ref = knn_shapley(x_train, y_train, x_test, y_test, k=5)
    for batch in (1, 7, 53, 1000):
        got = knn_shapley(x_train, y_train, x_test, y_test, k=5, batch=batch)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
        assert np.array_equal(got, ref)  # bit-identical, not just close


def test_progress_reports_each_batch() -> None:
    x_train, y_train, x_test, y_test = _random_problem(3, m=23)
    calls: list[tuple[int, int]] = []
    knn_shapley(
        x_train, y_train, x_test, y_test, batch=7, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(7, 23), (14, 23), (21, 23), (23, 23)]


def test_string_labels_match_int_labels() -> None:
    x_train, y_train, x_test, y_test = _random_problem(4)
    names = np.array(["cat", "dog", "owl"])
    ints = knn_shapley(x_train, y_train, x_test, y_test, k=3)
    strs = knn_shapley(x_train, names[y_train], x_test, list(names[y_test]), k=3)
    assert np.array_equal(ints, strs)


def test_hand_computed_example() -> None:
    # One test point at 0; training points at 1, 2, 3 with labels a, b, a; K = 1.
    # Sorted: (1,a) (2,b) (3,a); m = 1, 0, 1.
    # s3 = 1/3; s2 = s3 + (0 - 1)/max(1, 2) = -1/6; s1 = s2 + (1 - 0)/1 = 5/6.
    values = knn_shapley([[3.0], [1.0], [2.0]], ["a", "a", "b"], [[0.0]], ["a"], k=1)
    np.testing.assert_allclose(values, [1 / 3, 5 / 6, -1 / 6], rtol=0, atol=1e-15)
    assert values.dtype == np.float64


def test_fewer_points_than_k() -> None:
    # N = 2 < K = 3, both labels match: U({a}) = U({b}) = 1/3, U({a, b}) = 2/3, so each
    # point is worth 1/3 (pyDVL's s_N = 1/N would give the far point 1/2 and break efficiency).
    values = knn_shapley([[1.0], [2.0]], [1, 1], [[0.0]], [1], k=3)
    np.testing.assert_allclose(values, [1 / 3, 1 / 3], rtol=0, atol=1e-15)


def test_medium_size_runs() -> None:
    x_train, y_train, x_test, y_test = _random_problem(5, n=2000, m=50, d=20, n_labels=4)
    values = knn_shapley(x_train, y_train, x_test, y_test, k=5)
    assert values.shape == (2000,)
    assert values.dtype == np.float64
    assert np.all(np.isfinite(values))
    dist = cdist(x_test, x_train, metric="sqeuclidean")
    full = _utility(tuple(range(2000)), dist, y_train, y_test, 5)
    assert math.isclose(float(values.sum()), full, rel_tol=0, abs_tol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x_train": np.zeros(3)}, "x_train"),
        ({"x_train": np.zeros((0, 2)), "y_train": np.zeros(0)}, "x_train"),
        ({"x_test": np.zeros((2, 3))}, "x_test"),
        ({"y_train": np.zeros(4)}, "y_train"),
        ({"y_train": np.zeros((3, 1))}, "y_train"),
        ({"y_test": np.zeros(1)}, "y_test"),
        ({"x_test": np.full((2, 2), np.nan)}, "x_test"),
        ({"k": 0}, "k"),
        ({"k": 2.5}, "k"),
        ({"k": True}, "k"),
        ({"batch": 0}, "batch"),
    ],
)
def test_validation(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "x_train": np.zeros((3, 2)),
        "y_train": np.zeros(3),
        "x_test": np.zeros((2, 2)),
        "y_test": np.zeros(2),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{message}\b"):
        knn_shapley(**args)
