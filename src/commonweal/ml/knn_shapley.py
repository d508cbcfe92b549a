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
training index (a stable sort), so the order, and so the values, are fully determined by the
inputs. Under that total order the values are the exact Shapley values of ``U`` (up to float
rounding of the sums), including on ties.

Test points are processed in batches so memory stays bounded: a batch's distance matrix is
kept under about 64 MB by default, so with the sort indices and the sorted label matches a
batch's working set stays under about 256 MB. Within a batch everything is vectorised (one
argsort over the batch's distance rows, the recursion as a reversed cumulative sum).

Determinism: each test point's row of values is computed by element-wise operations and a
sequential cumulative sum along that row, so it does not depend on which batch it falls in;
the rows are then added into one accumulator one test point at a time, in test order, and
divided by the number of test points at the end. So the result is bit-identical whatever
``batch`` is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.distance import cdist

__all__ = ["DEFAULT_BATCH_BYTES", "knn_shapley"]

DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
"""Budget for one batch's float64 distance matrix when ``batch`` is not given."""


def _check_features(name: str, x: Any) -> NDArray[np.float64]:
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
        x_train: training features, shape ``(n_train, n_features)``.
        y_train: training labels, shape ``(n_train,)``; any values comparable with ``==``
            (ints, strings, ...).
        x_test: test features, shape ``(n_test, n_features)``.
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
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if batch is not None and (
        isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1
    ):
        raise ValueError(f"batch must be None or an integer >= 1, got {batch!r}")

    xtr = _check_features("x_train", x_train)
    xte = _check_features("x_test", x_test)
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"x_test has {xte.shape[1]} features but x_train has {xtr.shape[1]}")
    n_train, n_test = xtr.shape[0], xte.shape[0]
    ytr = _check_labels("y_train", y_train, n_train, "x_train")
    yte = _check_labels("y_test", y_test, n_test, "x_test")

    if batch is None:
        batch = max(1, DEFAULT_BATCH_BYTES // (8 * n_train))
    batch = min(int(batch), n_test)

    # 1 / max(K, i) for 1-based positions i = 1 .. N-1 (the factor between i and i+1).
    positions = np.arange(1, n_train, dtype=np.float64)
    denom = np.maximum(float(k), positions)

    acc = np.zeros(n_train, dtype=np.float64)
    for start in range(0, n_test, batch):
        stop = min(start + batch, n_test)
        dist = cdist(xte[start:stop], xtr, metric="sqeuclidean")
        order = np.argsort(dist, axis=1, kind="stable")  # nearest first, ties by index
        del dist
        match = (ytr[order] == yte[start:stop, None]).astype(np.float64)
        # Steps s_i - s_(i+1) for i = N-1 down to 1, preceded by s_N: a running sum of this
        # row is the recursion evaluated from the farthest point inwards.
        rev = np.empty_like(match)
        rev[:, 0] = match[:, -1] / float(max(k, n_train))
        rev[:, 1:] = ((match[:, :-1] - match[:, 1:]) / denom)[:, ::-1]
        del match
        s_sorted = np.cumsum(rev, axis=1)[:, ::-1]
        del rev
        for row in range(stop - start):
            acc[order[row]] += s_sorted[row]
        if progress is not None:
            progress(stop, n_test)
    result: NDArray[np.float64] = acc / n_test
    return result
