"""The numerics of a federation: the linear softmax members train, how their updates are
screened and aggregated, and what each coalition of updates is worth.

A federated model is a multinomial logistic regression, parameters ``(W, b)`` with ``W`` of
shape (labels, features) and ``b`` of shape (labels,), in the charter's label order. A node
trains it by full-batch gradient descent on its own data (:func:`softmax_train`); the hub
screens the returned parameters (:func:`screen`) and aggregates the kept ones
(:func:`aggregate`) with numpy replicas of Flower 1.42's Message-API strategies (FedAvg,
FedTrimmedAvg, FedMedian, Krum, MultiKrum, Bulyan), the same floating-point operations in the
same order, so the hub, a verifier and Flower agree on the aggregate. Updates are whole
parameter vectors, as Flower's strategies aggregate them; distances between updates are the
same whether measured on parameters or on differences from the round's start.

The valuation aggregates every coalition of a round's accepted updates, down to single
members, so each robust rule needs an answer where its own precondition fails. There the rule
falls back to the coordinate-wise median (which is the plain mean for one or two updates):

- ``trimmed-mean`` when ``int(trim_pct / 100 * n) == 0`` (it would cut nothing and be a mean
  an attacker could steer);
- ``krum`` and ``multi-krum`` when ``n <= 2 * malicious + 2`` (Krum's guarantee needs
  ``n > 2f + 2``; below it Flower's Krum picks by argsort ties, i.e. by reply order);
- ``bulyan`` when ``n < 4 * malicious + 3`` (Flower's Bulyan then returns nothing).

Nothing here touches storage, the network or the clock; every function is deterministic for
given inputs on one machine (numpy's BLAS may round differently elsewhere, which is why the
log records hashes of what nodes actually sent, not recomputed parameters).
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from commonweal.errors import InvalidInput

__all__ = [
    "AGGREGATIONS",
    "Params",
    "accuracy",
    "aggregate",
    "coalition_models",
    "coalition_utilities",
    "correct_counts",
    "cross_entropy",
    "distances_to_median",
    "is_finite",
    "local_split",
    "mix",
    "pooled_accuracies",
    "screen",
    "softmax_train",
    "update_sha256",
    "zeros",
]

Params = tuple[NDArray[np.float64], NDArray[np.float64]]
"""``(W, b)``: ``W`` of shape (labels, features), ``b`` of shape (labels,), float64."""

AGGREGATIONS = ("fedavg", "trimmed-mean", "median", "krum", "multi-krum", "bulyan")


def zeros(labels: int, features: int) -> Params:
    """The all-zero model: every label equally likely (a federation that starts from zeros)."""
    if labels < 2 or features < 1:
        raise InvalidInput(
            f"a softmax needs at least 2 labels and 1 feature, not {labels} labels and "
            f"{features} features: check the charter's labels and the featurizer"
        )
    return np.zeros((labels, features), dtype=np.float64), np.zeros(labels, dtype=np.float64)


def _params(params: Params) -> Params:
    w, b = params
    W = np.ascontiguousarray(w, dtype=np.float64)
    B = np.ascontiguousarray(b, dtype=np.float64)
    if W.ndim != 2 or B.shape != (W.shape[0],):
        raise InvalidInput(
            f"parameters have shapes W {W.shape} and b {B.shape}; expected W (labels, features) "
            "and b (labels,): send the model the charter describes"
        )
    return W, B


def _data(params: Params, X: Any, y: Any) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    Xa = np.ascontiguousarray(X, dtype=np.float64)
    ya = np.asarray(y)
    labels, features = params[0].shape
    if Xa.ndim != 2 or Xa.shape[1] != features:
        raise InvalidInput(
            f"features have shape {Xa.shape}; the model expects (rows, {features}): "
            "featurize the data with the charter's task"
        )
    if ya.shape != (Xa.shape[0],):
        raise InvalidInput(f"{ya.shape[0] if ya.ndim else 0} labels for {Xa.shape[0]} rows")
    if Xa.shape[0] == 0:
        raise InvalidInput("no rows to train or score on: give the node some data")
    if not np.issubdtype(ya.dtype, np.integer):
        raise InvalidInput(f"labels must be label indices (integers), not {ya.dtype}")
    if ya.min() < 0 or ya.max() >= labels:
        raise InvalidInput(
            f"label index {int(ya.max() if ya.max() >= labels else ya.min())} is outside "
            f"0..{labels - 1}: map labels through the charter's label list"
        )
    return Xa, ya.astype(np.intp, copy=False)


def _probabilities(
    W: NDArray[np.float64], b: NDArray[np.float64], X: NDArray[np.float64]
) -> NDArray[np.float64]:
    z = X @ W.T + b
    z -= z.max(axis=1, keepdims=True)  # exp cannot overflow; softmax is shift-invariant
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def softmax_train(
    params: Params, X: Any, y: NDArray[np.intp], *, epochs: int, lr: float, l2: float
) -> Params:
    """``epochs`` full-batch gradient steps on mean cross-entropy + ``l2/2 * ||W||^2``.

    Deterministic (no sampling, no shuffling). ``y`` holds label indices and may lack some
    labels entirely: a label-skewed node simply pushes those labels' scores down. The input
    arrays are not modified."""
    W, b = _params(params)
    Xa, ya = _data((W, b), X, y)
    if epochs < 0:
        raise InvalidInput(f"local_epochs {epochs} is negative: use 1 or more")
    if not (np.isfinite(lr) and lr > 0):
        raise InvalidInput(f"learning_rate {lr} must be a positive number")
    if not (np.isfinite(l2) and l2 >= 0):
        raise InvalidInput(f"l2 {l2} must be zero or positive")
    W, b = W.copy(), b.copy()
    n = Xa.shape[0]
    rows = np.arange(n)
    for _ in range(epochs):
        g = _probabilities(W, b, Xa)
        g[rows, ya] -= 1.0
        g /= n
        W -= lr * (g.T @ Xa + l2 * W)
        b -= lr * g.sum(axis=0)
    return W, b


def cross_entropy(params: Params, X: Any, y: Any, *, l2: float = 0.0) -> float:
    """The objective :func:`softmax_train` lowers: mean cross-entropy + ``l2/2 * ||W||^2``."""
    W, b = _params(params)
    Xa, ya = _data((W, b), X, y)
    z = Xa @ W.T + b
    m = z.max(axis=1, keepdims=True)
    log_norm = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    ce = float(np.mean(log_norm - z[np.arange(len(ya)), ya]))
    return ce + 0.5 * l2 * float(np.sum(W * W))


def accuracy(params: Params, X: Any, y: Any) -> float:
    """Share of rows whose highest-scoring label is the true one (ties: the first label)."""
    W, b = _params(params)
    Xa, ya = _data((W, b), X, y)
    return float(np.mean(np.argmax(Xa @ W.T + b, axis=1) == ya))


def update_sha256(params: Params) -> str:
    """SHA-256 of ``W`` then ``b`` as float64 little-endian C-order bytes: what a node sent,
    as ``b"".join(a.tobytes() for a in arrays)`` gives it on a little-endian machine."""
    W, b = params
    h = hashlib.sha256()
    for a in (W, b):
        h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
    return h.hexdigest()


def is_finite(params: Params) -> bool:
    """No NaN or infinity anywhere in ``W`` or ``b``."""
    return bool(np.isfinite(params[0]).all() and np.isfinite(params[1]).all())


def _flat(params: Params) -> NDArray[np.float64]:
    # Flower's Krum flattens an ArrayRecord the same way: arrays in order, each raveled.
    return np.concatenate([np.asarray(a, dtype=np.float64) for a in params], axis=None).ravel()


def distances_to_median(updates: list[Params]) -> list[float]:
    """L2 distance of each update to the coordinate-wise median of the finite updates.

    A non-finite update is at distance ``inf`` (and is not part of the median, so one NaN
    cannot hide every other update's distance)."""
    if not updates:
        return []
    flat = np.stack([_flat(_params(u)) for u in updates])
    finite = np.asarray(np.isfinite(flat).all(axis=1), dtype=np.bool_)
    if not finite.any():
        return [float("inf")] * len(updates)
    median = np.median(flat[finite], axis=0)
    return [
        float(np.linalg.norm(row - median)) if ok else float("inf")
        for row, ok in zip(flat, finite.tolist(), strict=True)
    ]


def screen(updates: list[Params], outlier_factor: float) -> list[str | None]:
    """Per update, ``None`` (kept) or a one-line reason it is rejected.

    Rejected: any update with a NaN or infinity; and, when ``outlier_factor`` > 0 and at
    least 3 finite updates came in, any whose distance to the coordinate-wise median update
    exceeds ``outlier_factor`` times the median of those distances (the median and the
    distances are over the finite updates only). With fewer than 3 there is no majority to
    measure against, so only finiteness is checked."""
    if outlier_factor < 0 or not np.isfinite(outlier_factor):
        raise InvalidInput(f"outlier_factor {outlier_factor} must be 0 (off) or positive")
    finite = [is_finite(u) for u in updates]
    reasons: list[str | None] = [None if ok else "not finite" for ok in finite]
    kept = [i for i, ok in enumerate(finite) if ok]
    if outlier_factor == 0 or len(kept) < 3:
        return reasons
    dist = distances_to_median([updates[i] for i in kept])
    typical = float(np.median(dist))
    limit = f"{outlier_factor:g}"
    for i, d in zip(kept, dist, strict=True):
        if typical > 0 and d > outlier_factor * typical:
            reasons[i] = (
                f"{d / typical:.1f}x the median distance to the coordinate-wise median "
                f"(limit {limit})"
            )
        elif typical == 0 and d > 0:
            reasons[i] = (
                f"distance {d:.3g} to the coordinate-wise median, which most updates equal "
                f"exactly (limit {limit}x the median distance, 0)"
            )
    return reasons


# --- aggregation: numpy replicas of flwr.serverapp.strategy (1.42) --------------------------


def _fedavg(updates: list[Params], examples: list[int]) -> Params:
    # strategy_utils.aggregate_arrayrecords: weights w / sum(w), accumulated in reply order.
    total = sum(examples)
    factors = [w / total for w in examples]
    out: list[NDArray[np.float64]] = []
    for layer in range(2):
        acc = updates[0][layer] * factors[0]
        for u, f in zip(updates[1:], factors[1:], strict=True):
            acc += u[layer] * f
        out.append(np.asarray(acc))
    return out[0], out[1]


def _median(updates: list[Params]) -> Params:
    # FedMedian: np.median over the stacked layer.
    W = np.asarray(np.median(np.stack([u[0] for u in updates]), axis=0))
    b = np.asarray(np.median(np.stack([u[1] for u in updates]), axis=0))
    return W, b


def _trim_mean(array: NDArray[np.float64], cut_fraction: float) -> NDArray[np.float64]:
    # fedtrimmedavg.trim_mean, operation for operation.
    nobs = array.shape[0]
    lowercut = int(cut_fraction * nobs)
    uppercut = nobs - lowercut
    atmp = np.partition(array, (lowercut, uppercut - 1), 0)
    return np.asarray(np.mean(atmp[lowercut:uppercut], axis=0))


def _select_multikrum(updates: list[Params], malicious: int, select: int) -> list[int]:
    # multikrum.select_multikrum: squared distances by |x|^2 + |y|^2 - 2 x.y, each node scored
    # by its n-f-2 nearest others (argsort position 0 is taken to be itself), lowest first.
    flat = np.stack([_flat(u) for u in updates], axis=0)
    norms = np.square(flat).sum(axis=1)
    dm = norms[:, None] + norms[None, :] - 2 * flat @ flat.T
    num_closest = max(1, len(updates) - malicious - 2)
    closest = [np.argsort(row)[1 : num_closest + 1].tolist() for row in dm]
    scores = [np.sum(dm[i, closest[i]]) for i in range(len(dm))]
    return [int(i) for i in np.argsort(scores)[:select]]


def _bulyan(updates: list[Params], malicious: int) -> Params:
    # bulyan.Bulyan.aggregate_train + aggregate_n_closest_weights.
    theta = len(updates) - 2 * malicious
    beta = theta - 2 * malicious
    selected = [updates[i] for i in _select_multikrum(updates, malicious, theta)]
    out: list[NDArray[np.float64]] = []
    for layer in range(2):
        stack = np.stack([u[layer] for u in selected])
        ref = np.median(stack, axis=0)
        idx = np.argpartition(np.abs(stack - ref), beta - 1, axis=0)[:beta]
        out.append(np.asarray(np.mean(np.take_along_axis(stack, idx, axis=0), axis=0)))
    return out[0], out[1]


def aggregate(
    name: str, updates: list[Params], examples: list[int], *, trim_pct: int, malicious: int
) -> Params:
    """Aggregate kept updates by the charter's rule (see the module docstring for the
    small-coalition fallbacks). ``examples`` weights FedAvg and the Krum family's mean, as
    Flower's ``num-examples``; the median, trimmed mean and Bulyan ignore it, as Flower's do."""
    if name not in AGGREGATIONS:
        raise InvalidInput(f"aggregation {name!r} is unknown: use one of {', '.join(AGGREGATIONS)}")
    if not updates:
        raise InvalidInput("no updates to aggregate: a round needs at least one kept reply")
    if len(examples) != len(updates):
        raise InvalidInput(f"{len(examples)} example counts for {len(updates)} updates")
    if any(e <= 0 for e in examples):
        raise InvalidInput(f"example counts {examples} must all be positive")
    if not 0 <= trim_pct < 50:
        raise InvalidInput(f"trim_pct {trim_pct} must be in 0..49")
    if malicious < 0:
        raise InvalidInput(f"malicious {malicious} must be 0 or more")
    ups = [_params(u) for u in updates]
    shape = ups[0][0].shape
    if any(u[0].shape != shape for u in ups):
        raise InvalidInput(
            f"updates have different shapes ({sorted({u[0].shape for u in ups})}): "
            "every node must train the charter's model"
        )
    n = len(ups)
    if name == "fedavg":
        return _fedavg(ups, examples)
    if name == "median":
        return _median(ups)
    if name == "trimmed-mean":
        beta = trim_pct / 100
        if int(beta * n) == 0:
            return _median(ups)
        return _trim_mean(np.stack([u[0] for u in ups]), beta), _trim_mean(
            np.stack([u[1] for u in ups]), beta
        )
    if name in ("krum", "multi-krum"):
        if n <= 2 * malicious + 2:
            return _median(ups)
        chosen = _select_multikrum(ups, malicious, 1 if name == "krum" else n - malicious)
        return _fedavg([ups[i] for i in chosen], [examples[i] for i in chosen])
    # bulyan
    if n < 4 * malicious + 3:
        return _median(ups)
    return _bulyan(ups, malicious)


def mix(aggregate: Params, examples: int, central: Params, central_examples: int) -> Params:
    """The nodes' aggregate and the hub's update on its central items, weighted by how
    many examples each stands for: central and federated members in one model."""
    total = examples + central_examples
    a, c = examples / total, central_examples / total
    return (a * aggregate[0] + c * central[0], a * aggregate[1] + c * central[1])


def _coalition_model(
    name: str,
    updates: list[Params],
    examples: list[int],
    previous: Params,
    mask: int,
    *,
    trim_pct: int,
    malicious: int,
    central: tuple[Params, int] | None = None,
) -> Params:
    full = (1 << len(updates)) - 1
    if mask < 0 or mask > full:
        raise InvalidInput(f"coalition mask {mask} is outside 0..{full} for {len(updates)}")
    if mask == 0:
        return _params(previous if central is None else central[0])
    members = [i for i in range(len(updates)) if mask >> i & 1]
    model = aggregate(
        name,
        [updates[i] for i in members],
        [examples[i] for i in members],
        trim_pct=trim_pct,
        malicious=malicious,
    )
    if central is not None:
        model = mix(model, sum(examples[i] for i in members), *central)
    return model


def coalition_utilities(
    name: str,
    updates: list[Params],
    examples: list[int],
    previous: Params,
    X: Any,
    y: Any,
    masks: list[int],
    *,
    trim_pct: int,
    malicious: int,
    central: tuple[Params, int] | None = None,
) -> dict[int, float]:
    """Utility of each coalition ``mask`` (bit ``i`` = ``updates[i]``): the accuracy on
    ``(X, y)`` of what the rule aggregates from that coalition alone; mask 0 is the accuracy
    of ``previous`` (the round's starting model: a round nobody joins changes nothing).

    With ``central`` (the hub's update on its central items, and their count), the hub
    takes part in every coalition: a coalition's model is its aggregate mixed with the
    central update (``mix``), and mask 0 is the central update alone — members are valued
    for what they add to the community's own data."""
    out: dict[int, float] = {}
    for mask in masks:
        if mask not in out:
            model = _coalition_model(
                name,
                updates,
                examples,
                previous,
                mask,
                trim_pct=trim_pct,
                malicious=malicious,
                central=central,
            )
            out[mask] = accuracy(model, X, y)
    return out


def coalition_models(
    name: str,
    updates: list[Params],
    examples: list[int],
    previous: Params,
    masks: list[int],
    *,
    trim_pct: int,
    malicious: int,
    central: tuple[Params, int] | None = None,
) -> Params:
    """What each coalition ``mask`` aggregates to, stacked in ``masks`` order: ``W`` of shape
    (masks, labels, features), ``b`` of shape (masks, labels); mask 0 is ``previous``. The
    models :func:`coalition_utilities` scores, for scoring elsewhere (on nodes' held-out
    parts, when the hub has no evaluation set of its own)."""
    if not masks:
        raise InvalidInput("no coalitions to aggregate: a round values at least one player")
    models = [
        _coalition_model(
            name,
            updates,
            examples,
            previous,
            mask,
            trim_pct=trim_pct,
            malicious=malicious,
            central=central,
        )
        for mask in masks
    ]
    return np.stack([m[0] for m in models]), np.stack([m[1] for m in models])


def correct_counts(models: Params, X: Any, y: Any) -> NDArray[np.int64]:
    """For each stacked model (as :func:`coalition_models` gives them), how many rows of
    ``(X, y)`` it labels right, by the rule :func:`accuracy` uses (ties: the first label).
    No rows: all zeros (a node whose held-out part is empty counts nothing)."""
    Ws = np.asarray(models[0], dtype=np.float64)
    bs = np.asarray(models[1], dtype=np.float64)
    if Ws.ndim != 3 or bs.shape != Ws.shape[:2]:
        raise InvalidInput(
            f"stacked models have shapes W {Ws.shape} and b {bs.shape}; expected W "
            "(models, labels, features) and b (models, labels)"
        )
    if len(np.asarray(y)) == 0:
        return np.zeros(Ws.shape[0], dtype=np.int64)
    Xa, ya = _data((Ws[0], bs[0]), X, y)
    # One model at a time: memory stays rows x labels however many coalitions there are.
    return np.array(
        [int(np.sum(np.argmax(Xa @ W.T + b, axis=1) == ya)) for W, b in zip(Ws, bs, strict=True)],
        dtype=np.int64,
    )


def pooled_accuracies(replies: list[tuple[Any, int]]) -> list[Fraction] | None:
    """Accuracy of each model over the union of several nodes' held-out parts, exactly.

    ``replies`` holds, per node, its correct counts (one per model, the same models in the
    same order on every node) and its held-out example count; each model's accuracy is its
    summed correct count over the summed examples, so a node weighs by its rows, not by one
    vote. ``None`` when no rows were scored at all (no replies, or only empty held-out
    parts). A malformed reply is an error: callers drop it before pooling."""
    if not replies:
        return None
    width = len(np.asarray(replies[0][0]))
    total = 0
    sums = [0] * width
    for counts, examples in replies:
        arr = np.asarray(counts)
        if arr.ndim != 1 or len(arr) != width or not np.issubdtype(arr.dtype, np.integer):
            raise InvalidInput(
                f"correct counts of shape {arr.shape} ({arr.dtype}); expected {width} integers"
            )
        if isinstance(examples, bool) or not isinstance(examples, int) or examples < 0:
            raise InvalidInput(f"held-out example count {examples!r} must be an integer >= 0")
        if width and (int(arr.min()) < 0 or int(arr.max()) > examples):
            raise InvalidInput(
                f"correct counts {int(arr.min())}..{int(arr.max())} are outside 0..{examples}, "
                "the node's held-out examples"
            )
        total += examples
        sums = [s + int(c) for s, c in zip(sums, arr.tolist(), strict=True)]
    if total == 0:
        return None
    return [Fraction(s, total) for s in sums]


def local_split(n: int, holdout_pct: int, seed: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Train and held-out row indices (each sorted) for a node's ``n`` rows.

    Rows are ordered by SHA-256 of ``f"{seed}:{row}"`` (not numpy's generator, whose
    streams may change between versions) and the first ``holdout_pct`` percent, rounded down,
    are held out; when that rounds to 0 but ``holdout_pct`` > 0 and there are 2 rows or more,
    one row is held out, so a node always has something to score on and to train on."""
    if n < 0:
        raise InvalidInput(f"row count {n} is negative")
    if not 0 <= holdout_pct < 100:
        raise InvalidInput(f"local_holdout_pct {holdout_pct} must be in 0..99")
    k = n * holdout_pct // 100
    if k == 0 and holdout_pct > 0 and n >= 2:
        k = 1
    order = sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
    holdout = np.sort(np.asarray(order[:k], dtype=np.intp))
    train = np.sort(np.asarray(order[k:], dtype=np.intp))
    return train, holdout
