"""Exact KNN-Shapley values: axioms, brute-force Shapley, the pyDVL recursion, batching,
sparse features."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import sparse
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


def _sparse_problem(
    seed: int, n: int = 150, m: int = 30, d: int = 40, density: float = 0.2
) -> tuple[sparse.csr_matrix, np.ndarray, sparse.csr_matrix, np.ndarray]:
    """Continuous random values on a random sparsity pattern, three labels."""
    rng = np.random.default_rng(seed)

    def features(rows: int) -> sparse.csr_matrix:
        x = sparse.random(rows, d, density=density, format="csr", random_state=rng)
        x.data = rng.normal(size=x.nnz)
        return x

    return features(n), rng.integers(0, 3, size=n), features(m), rng.integers(0, 3, size=m)


def _min_relative_gap(x_train: np.ndarray, x_test: np.ndarray) -> float:
    """Smallest gap between consecutive sorted squared distances of any test point, relative
    to the largest distance: how close the order is to a near-tie."""
    dist = np.sort(cdist(x_test, x_train, metric="sqeuclidean"), axis=1)
    return float(np.min(np.diff(dist, axis=1)) / dist.max())


@pytest.mark.parametrize("seed", range(6))
def test_sparse_matches_dense_without_near_ties(seed: int) -> None:
    x_train, y_train, x_test, y_test = _sparse_problem(seed)
    dense_train, dense_test = x_train.toarray(), x_test.toarray()
    # The sparse formula rounds differently from cdist; away from near-ties the order, and
    # so the values, are the same.
    assert _min_relative_gap(dense_train, dense_test) > 1e-9
    want = knn_shapley(dense_train, y_train, dense_test, y_test, k=5)
    for xtr, xte in [
        (x_train, x_test),
        (x_train.tocsc(), x_test.tocoo()),
        (sparse.csr_array(x_train), sparse.csc_array(x_test)),
        (x_train, dense_test),  # one side sparse: both are treated as sparse
        (dense_train, x_test),
    ]:
        got = knn_shapley(xtr, y_train, xte, y_test, k=5)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@st.composite
def _sparse_integer_problem(
    draw: Any,
) -> tuple[sparse.csr_matrix, np.ndarray, sparse.csr_matrix, np.ndarray, int]:
    n = draw(st.integers(1, 40))
    m = draw(st.integers(1, 6))
    d = draw(st.integers(1, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Few small integers on a sparse pattern: many exact ties (rows sharing no column with a
    # test point are all at |a|^2 + |b|^2), and every distance exact in both formulas.
    density = draw(st.sampled_from([0.05, 0.2, 0.5]))
    xtr = sparse.random(n, d, density=density, format="csr", random_state=rng, dtype=np.float64)
    xte = sparse.random(m, d, density=density, format="csr", random_state=rng, dtype=np.float64)
    xtr.data = rng.integers(-2, 3, size=xtr.nnz).astype(np.float64)
    xte.data = rng.integers(-2, 3, size=xte.nnz).astype(np.float64)
    n_labels = draw(st.integers(1, 3))
    k = draw(st.integers(1, 8))
    return xtr, rng.integers(0, n_labels, n), xte, rng.integers(0, n_labels, m), k


@settings(max_examples=100, deadline=None)
@given(_sparse_integer_problem())
def test_sparse_efficiency_and_exact_distances(
    problem: tuple[sparse.csr_matrix, np.ndarray, sparse.csr_matrix, np.ndarray, int],
) -> None:
    x_train, y_train, x_test, y_test, k = problem
    values = knn_shapley(x_train, y_train, x_test, y_test, k=k)
    dense_train, dense_test = x_train.toarray(), x_test.toarray()
    dist = cdist(dense_test, dense_train, metric="sqeuclidean")
    full = _utility(tuple(range(x_train.shape[0])), dist, y_train, y_test, k)
    assert math.isclose(float(values.sum()), full, rel_tol=0, abs_tol=1e-12)
    # Small integers: both formulas are exact, so the order (ties by index) and the
    # values are the dense path's, to the bit.
    assert np.array_equal(values, knn_shapley(dense_train, y_train, dense_test, y_test, k=k))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 10))
def test_sparse_efficiency_continuous(seed: int, k: int) -> None:
    x_train, y_train, x_test, y_test = _sparse_problem(seed, n=80, m=12)
    values = knn_shapley(x_train, y_train, x_test, y_test, k=k)
    dist = cdist(x_test.toarray(), x_train.toarray(), metric="sqeuclidean")
    assume(_min_relative_gap(x_train.toarray(), x_test.toarray()) > 1e-9)
    full = _utility(tuple(range(80)), dist, y_train, y_test, k)
    assert math.isclose(float(values.sum()), full, rel_tol=0, abs_tol=1e-12)


def test_sparse_is_deterministic_across_storage_and_batches() -> None:
    x_train, y_train, x_test, y_test = _sparse_problem(11, n=300, m=41)
    ref = knn_shapley(x_train, y_train, x_test, y_test, k=5)
    for batch in (1, 7, 41, None):
        got = knn_shapley(x_train.tocsc(), y_train, x_test, y_test, k=5, batch=batch)
        assert np.array_equal(got, ref)
    # The same matrix stored messily: every entry split into two duplicates (x/2 and
    # x - x/2, which sum back to x exactly), unsorted, plus an explicit zero. Canonical CSR
    # comes first, so the same sums happen in the same order.
    coo = x_train.tocoo()
    half = coo.data / 2
    rows = np.concatenate([coo.row, coo.row, [299]])[::-1]
    cols = np.concatenate([coo.col, coo.col, [39]])[::-1]
    data = np.concatenate([half, coo.data - half, [0.0]])[::-1]
    messy = sparse.coo_matrix((data, (rows, cols)), shape=coo.shape)
    assert np.array_equal(knn_shapley(messy, y_train, x_test, y_test, k=5), ref)


def test_sparse_copy_of_a_training_point_is_its_nearest() -> None:
    # Hashed-text-like rows: ~20 columns out of 2^18. The test point is a copy of training
    # point 3, the only one with its label; with K = 1 all of U(full) = 1 is point 3's.
    x_train, y_train, _, _ = _sparse_problem(12, n=50, d=2**18, density=20 / 2**18)
    y_train[:] = 0
    y_train[3] = 1
    values = knn_shapley(x_train, y_train, x_train[3], [1], k=1)
    assert values[3] == 1.0
    assert np.all(values[np.arange(50) != 3] == 0.0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 10))
def test_sparse_symmetry_of_duplicates(seed: int, k: int) -> None:
    x_train, y_train, x_test, y_test = _sparse_problem(seed, n=60, m=9, d=2**18, density=1e-4)
    # Point 59 becomes a copy of point 7; the test set also holds copies of training points
    # (distance 0 to one of the pair, or to both). The two copies tie exactly everywhere.
    x_train = sparse.vstack([x_train[:59], x_train[7]]).tocsr()
    y_train[59] = y_train[7]
    x_test = sparse.vstack([x_test, x_train[[7, 20, 33]]]).tocsr()
    y_test = np.append(y_test, y_train[[7, 20, 33]])
    values = knn_shapley(x_train, y_train, x_test, y_test, k=k)
    assert values[7] == values[59]


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
        ({"x_train": sparse.csr_matrix((0, 2)), "y_train": np.zeros(0)}, "x_train"),
        ({"x_test": sparse.csr_matrix(np.ones((2, 3)))}, "x_test"),
        ({"x_test": sparse.csr_matrix(np.full((2, 2), np.inf))}, "x_test"),
        ({"x_train": sparse.coo_array(np.ones(3))}, "x_train"),
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
