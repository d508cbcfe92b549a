"""Exact KNN-Shapley values of contributed training items (Jia et al., VLDB 2019).

For one test point ``(x, y)`` the utility of a training subset ``S`` is that of an unweighted
K-nearest-neighbour classifier,

    U(S) = (1/K) * #{j <= min(K, |S|) : label of the j-th nearest point of S == y},  U({}) = 0,

and the utility over a test set is the mean of the per-test-point utilities. Its Shapley values
have a closed form: sort the training points by distance to ``x`` (nearest first, 1-based
positions ``i``) and let ``m_i = 1[y_(i) == y]``; then

    s_N = m_N / max(K, N),    s_i = s_(i+1) + (m_i - m_(i+1)) / max(K, i)    (i = N-1, ..., 1),

where ``1 / max(K, i) = (1/K) * min(K, i) / i`` is the paper's factor. The value of a training
point is its ``s`` averaged over the test points. When ``N >= K`` (the paper's setting) this is
the paper's recursion, ``s_N = m_N / N``, evaluated with the same floating-point operations in
the same order per test point as pyDVL 0.10's ``KNNShapleyValuation``, so the values are
bit-identical to it given the same neighbour order. When ``N < K`` the paper's and pyDVL's
``s_N = m_N / N`` is not the Shapley value of ``U`` (the values then do not even sum to
``U(train set)``): the farthest point adds ``m_N / K`` exactly when fewer than ``K`` others
are present, which under the Shapley weights happens with probability ``min(K, N) / N``, so
its value is ``m_N / max(K, N)``; that is what is used here, and it coincides with ``m_N / N``
whenever ``N >= K``.

"Nearest" is by Euclidean distance, ordered through squared distances (same order, without a
square root that could round two different distances onto one value); ties are broken by
training index, so the order, and so the values, are fully determined by the inputs. Under
that total order the values are the exact Shapley values of ``U`` (up to float rounding of
the sums), including on ties. The order is found with numpy's unstable (SIMD) argsort, two to
three times faster than its stable one on a million points, after which each run of equal
distances is sorted by index: exactly the order a stable sort gives.

Dense features: squared distances from ``scipy.spatial.distance.cdist`` (``sqeuclidean``),
which sums the squared coordinate differences, so equal distances are equal and small integer
features give exact ones. Sparse features (any ``scipy.sparse`` matrix or array; if either
side is sparse both are used as sparse): ``|a|^2 + |b|^2 - 2 a.b`` from sparse products, one
test batch at a time, clipped at 0, as text models need with their 2^18 hashed columns. Both
matrices are first put in canonical CSR form (duplicates summed, zeros dropped, indices
sorted), so the summation order, and so every bit, depends on the matrices' values only, not
on their storage format; a training point equal to a test point is at distance exactly 0
(``a.a`` and ``|a|^2`` are summed in the same order). The two formulas round differently, so
sparse and dense inputs give the same values unless two distances are within rounding of
each other (and bit-identical values when the distances are exact, e.g. small integers).

Test points are processed in batches so memory stays bounded: a batch's distance matrix is
kept under about 64 MB by default (``DEFAULT_BATCH_BYTES``); a test point's own working set
(its order, the sorted label matches, the recursion) is a few arrays of ``n_train`` numbers
more. Labels are first turned into one-byte codes where their kind allows, so gathering them
in distance order reads one byte per training point.

Determinism: each test point's row of values is computed from its distance row alone, by
element-wise operations and a sequential cumulative sum, so it does not depend on which batch
it falls in; the rows are then added into one accumulator one test point at a time, in test
order, and divided by the number of test points at the end. So the result is bit-identical
whatever ``batch`` is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.spatial.distance import cdist

__all__ = ["DEFAULT_BATCH_BYTES", "knn_shapley"]

DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
"""Budget for one batch's float64 distance matrix when ``batch`` is not given."""

# Label kinds whose values np.unique can sort and whose == is plain value equality: bool,
# signed and unsigned ints, floats (NaN equals nothing, as with ==), str and bytes.
_CODED_KINDS = frozenset("biufUS")


def _check_features(name: str, x: Any) -> NDArray[np.float64] | Any:
    """A dense float64 array, or for any scipy.sparse input a canonical float64 CSR matrix
    (duplicates summed, explicit zeros dropped, indices sorted), so the sparse products'
    summation order depends on the matrix only, not on how it was stored."""
    if sparse.issparse(x):
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D (points x features), got shape {x.shape}")
        csr = sparse.csr_matrix(x, dtype=np.float64, copy=True)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        csr.sort_indices()
        if csr.shape[0] == 0:
            raise ValueError(f"{name} must contain at least one point")
        if not np.all(np.isfinite(csr.data)):
            raise ValueError(f"{name} must contain only finite values")
        return csr
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (points x features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one point")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values")
    return arr


def _check_labels(name: str, y: Any, n: int, x_name: str) -> NDArray[Any]:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} labels but {x_name} has {n} points")
    return arr


def _label_codes(ytr: NDArray[Any], yte: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
    """Small integer codes with ``train[i] == test[t]`` exactly when ``ytr[i] == yte[t]``
    (a test label no training point carries gets -1): gathering one byte per training
    point in distance order is much cheaper than gathering the labels themselves. Labels of
    other kinds (objects, mixed kinds) are returned as they are and compared with ``==``."""
    if ytr.dtype.kind != yte.dtype.kind or ytr.dtype.kind not in _CODED_KINDS:
        return ytr, yte
    common = np.result_type(ytr.dtype, yte.dtype)  # same kind: widening, so exact
    classes, train = np.unique(ytr.astype(common), return_inverse=True)
    test_labels = yte.astype(common)
    at = np.minimum(np.searchsorted(classes, test_labels), len(classes) - 1)
    test = np.where(classes[at] == test_labels, at, -1)
    code = np.int8 if len(classes) < 2**7 else np.int16 if len(classes) < 2**15 else np.int32
    return train.astype(code), test.astype(code)


def _nearest_first(dist: NDArray[np.float64]) -> NDArray[np.intp]:
    """Training indices by (squared distance, index): the stable order, from numpy's
    unstable SIMD sort (two to three times faster than its stable sort at a million points)
    followed by sorting each run of equal distances by index, which is what a stable sort
    would have left there."""
    order: NDArray[np.intp] = np.argsort(dist, kind="quicksort")
    ranked = dist[order]
    tied = ranked[1:] == ranked[:-1]
    if tied.any():
        in_run = np.zeros(len(order), dtype=bool)
        in_run[1:] = tied
        in_run[:-1] |= tied
        pos = np.flatnonzero(in_run)
        # Key (run number, index): unique, so any sort puts it in one order, and the runs
        # stay where they are because their numbers increase along the ranking.
        run = np.zeros(len(order), dtype=np.int64)
        np.cumsum(~tied, out=run[1:])
        key = run[pos] * len(order) + order[pos]
        order[pos] = np.sort(key) % len(order)
    return order


def _sparse_sq_dist(
    xte: Any, xtr_t: Any, sq_te: NDArray[np.float64], sq_tr: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Squared distances ``-2 a.b + |a|^2 + |b|^2`` (clipped at 0) of the rows of ``xte`` to
    the training points (``xtr_t``: the training matrix transposed, as CSR). For a test row
    the product sums ``a_f * b_f`` over its features in index order, as ``sq_te`` summed
    ``a_f * a_f``: a copy of a training point is at distance exactly 0, and each entry
    depends on its two rows only, not on the batch."""
    dist: NDArray[np.float64] = (xte @ xtr_t).toarray()
    dist *= -2.0
    dist += sq_te[:, None]
    dist += sq_tr[None, :]
    np.maximum(dist, 0.0, out=dist)
    return dist


def _row_sq_norms(x: Any) -> NDArray[np.float64]:
    # csr @ vector sums each row sequentially in index order (see _sparse_sq_dist).
    sq: NDArray[np.float64] = np.asarray(x.multiply(x) @ np.ones(x.shape[1]), dtype=np.float64)
    return sq


def knn_shapley(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    k: int = 5,
    batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> NDArray[np.float64]:
    """Exact KNN-Shapley value of every training point, averaged over the test points.

    Args:
        x_train: training features, shape ``(n_train, n_features)``: an array, or any
            scipy.sparse matrix or array (CSR, CSC, COO, ...).
        y_train: training labels, shape ``(n_train,)``; any values comparable with ``==``
            (ints, strings, ...).
        x_test: test features, shape ``(n_test, n_features)``, dense or sparse. If either
            feature matrix is sparse, both are treated as sparse.
        y_test: test labels, shape ``(n_test,)``.
        k: number of neighbours of the classifier being valued (``k >= 1``).
        batch: number of test points per batch; by default as many as keep one batch's
            distance matrix under ``DEFAULT_BATCH_BYTES``. Does not change the result.
        progress: called as ``progress(done_test_points, n_test)`` after each batch.

    Returns:
        float64 array of shape ``(n_train,)``. The values sum (up to rounding) to
        ``U(train set) - U(empty set)``, the mean over test points of the fraction of the
        ``k`` nearest training points carrying the test point's label (out of ``k``, even
        when there are fewer than ``k`` training points).

    Raises:
        ValueError: on malformed shapes, non-finite features, ``k < 1`` or ``batch < 1``.
    """
    _check_params(k, batch)
    xtr, xte, labels, targets = _checked_inputs(x_train, y_train, x_test, y_test)
    n_train, n_test = xtr.shape[0], xte.shape[0]
    distances = _squared_distances(xtr, xte)
    if batch is None:
        batch = max(1, DEFAULT_BATCH_BYTES // (8 * n_train))
    batch = min(int(batch), n_test)
    acc = _summed_values(distances, labels, targets, n_test, int(k), batch, progress)
    result: NDArray[np.float64] = acc / n_test
    return result


def _check_params(k: Any, batch: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if batch is not None and (
        isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1
    ):
        raise ValueError(f"batch must be None or an integer >= 1, got {batch!r}")


def _checked_inputs(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any
) -> tuple[Any, Any, NDArray[Any], NDArray[Any]]:
    """The feature matrices (see ``_check_features``) and the labels as codes (see
    ``_label_codes``), once shapes agree."""
    xtr = _check_features("x_train", x_train)
    xte = _check_features("x_test", x_test)
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"x_test has {xte.shape[1]} features but x_train has {xtr.shape[1]}")
    ytr = _check_labels("y_train", y_train, xtr.shape[0], "x_train")
    yte = _check_labels("y_test", y_test, xte.shape[0], "x_test")
    labels, targets = _label_codes(ytr, yte)
    return xtr, xte, labels, targets


def _squared_distances(xtr: Any, xte: Any) -> Callable[[int, int], NDArray[np.float64]]:
    """``distances(start, stop)``: squared distances of test points ``start:stop`` (rows)
    to every training point, sparse if either side is."""
    if sparse.issparse(xtr) or sparse.issparse(xte):
        xtr, xte = sparse.csr_matrix(xtr), sparse.csr_matrix(xte)
        xtr_t = xtr.T.tocsr()
        sq_tr, sq_te = _row_sq_norms(xtr), _row_sq_norms(xte)

        def sparse_distances(start: int, stop: int) -> NDArray[np.float64]:
            return _sparse_sq_dist(xte[start:stop], xtr_t, sq_te[start:stop], sq_tr)

        return sparse_distances

    def dense_distances(start: int, stop: int) -> NDArray[np.float64]:
        dist: NDArray[np.float64] = cdist(xte[start:stop], xtr, metric="sqeuclidean")
        return dist

    return dense_distances


def _summed_values(
    distances: Callable[[int, int], NDArray[np.float64]],
    labels: NDArray[Any],
    targets: NDArray[Any],
    n_test: int,
    k: int,
    batch: int,
    progress: Callable[[int, int], None] | None,
) -> NDArray[np.float64]:
    """The sum over test points, in test order, of each training point's ``s``."""
    n_train = len(labels)
    # The recursion runs from the farthest point inwards, so everything below is indexed
    # farthest first: step j >= 1 is s_(N-j) - s_(N-j+1) = (m_(N-j) - m_(N-j+1)) / divisors[j-1].
    divisors = np.maximum(float(k), np.arange(n_train - 1, 0, -1, dtype=np.float64))
    last_divisor = float(max(k, n_train))

    acc = np.zeros(n_train, dtype=np.float64)
    steps = np.empty(n_train, dtype=np.float64)
    unsorted = np.empty(n_train, dtype=np.float64)
    for start in range(0, n_test, batch):
        stop = min(start + batch, n_test)
        dist = distances(start, stop)
        for row in range(stop - start):
            t = start + row
            order = _nearest_first(dist[row])
            match = labels[order] == targets[t : t + 1]
            far = match[::-1].view(np.int8)  # m_N, m_(N-1), ..., m_1 as 0/1
            # s_N, then the steps: their running sum is s_N, s_(N-1), ..., s_1.
            steps[0] = far[0] / last_divisor
            np.subtract(far[1:], far[:-1], out=steps[1:], dtype=np.float64)
            np.divide(steps[1:], divisors, out=steps[1:])
            np.cumsum(steps, out=steps)
            unsorted[order[::-1]] = steps
            # One test point at a time, in test order: the sums do not depend on `batch`.
            acc += unsorted
        del dist
        if progress is not None:
            progress(stop, n_test)
    return acc
