"""SISA training (Bourtoule et al., "Machine Unlearning", 2021): one model per shard,
predictions averaged, so forgetting an item means retraining only the shard that held it.

A shard's model is a pure function of its items (features and labels, in a fixed order),
the trainer and the seed; the hub keys stored shard models by that, so a version trained
"incrementally" predicts exactly what a full retrain of the same manifest would.

Shard models are saved with skops, which refuses to load any type not on our list of
scikit-learn and numpy types: loading an artifact never runs code it carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from commonweal.ml.trainers import Trainer

__all__ = ["ShardedModel", "UnsafeArtifact", "dump_shard", "fit_shard", "load_shard", "shard_seed"]


class UnsafeArtifact(ValueError):
    """An artifact holds a type that is not on the list of types safe to load."""


def shard_seed(seed: int, shard: int) -> int:
    """Each shard its own random stream, fixed by the community's seed."""
    return (seed * 1_000_003 + shard) % 2**32


def fit_shard(
    trainer: Trainer,
    task_kind: str,
    X: Any,
    y: NDArray[Any],
    *,
    seed: int,
    shard: int,
    shards: int = 1,
) -> Any:
    """Fit one shard's model. A classification shard that holds a single label cannot fit
    a discriminative model; it predicts that label's prior instead (it still votes)."""
    if task_kind.endswith("classification") and len(np.unique(y)) < 2:
        from sklearn.dummy import DummyClassifier

        return DummyClassifier(strategy="prior").fit(X, y)
    est = trainer.make(task_kind, shard_seed(seed, shard), shards=shards, rows=len(y))
    if _is_linear_classifier(est) and _is_sparse(X):
        return _fit_on_active_columns(est, X, y)
    return est.fit(X, y)


def _is_sparse(X: Any) -> bool:
    from scipy import sparse

    return bool(sparse.issparse(X))


def _is_linear_classifier(est: Any) -> bool:
    from sklearn.linear_model import LogisticRegression

    return isinstance(est, LogisticRegression)


def _fit_on_active_columns(est: Any, X: Any, y: NDArray[Any]) -> Any:
    """Fit a logistic regression on the hashed columns the shard actually uses, then widen
    its weights back to every column. A column that is zero in every row gets no gradient
    from the loss, so under the L2 penalty its optimal weight is exactly zero: the result
    is the same model, but the optimiser works on thousands of weights instead of a
    million, which is most of a text shard's fitting time."""
    X = X.tocsr()
    cols = np.unique(X.indices)
    est.fit(X[:, cols], y)
    full = np.zeros((est.coef_.shape[0], X.shape[1]), dtype=est.coef_.dtype)
    full[:, cols] = est.coef_
    est.coef_ = full
    est.n_features_in_ = X.shape[1]
    return est


class ShardedModel:
    """The aggregate of a version's shard models: the mean of the shards' class
    probabilities (columns in the charter's label order), or of their predicted values.

    Logistic-regression shards are stacked into one weight matrix, so a prediction is one
    matrix product and a softmax per shard instead of S trips through scikit-learn's input
    validation (which costs far more than the arithmetic for a single input)."""

    def __init__(self, shards: Sequence[Any], labels: Sequence[str] | None) -> None:
        self.shards = [s for s in shards if s is not None]
        if not self.shards:
            raise ValueError("a model needs at least one trained shard")
        self.labels = list(labels) if labels else None
        self._linear: list[tuple[int, int, NDArray[np.intp]]] = []  # (row0, rows, columns)
        self._other: list[tuple[Any, NDArray[np.intp]]] = []
        self._W: Any = None
        self._b: NDArray[np.float64] | None = None
        if self.labels is not None:
            index = {label: n for n, label in enumerate(self.labels)}
            weights, biases, row = [], [], 0
            for s in self.shards:
                cols = np.array([index[str(c)] for c in s.classes_], dtype=np.intp)
                if _is_linear_classifier(s):
                    weights.append(np.asarray(s.coef_, dtype=np.float64))
                    biases.append(np.asarray(s.intercept_, dtype=np.float64))
                    self._linear.append((row, s.coef_.shape[0], cols))
                    row += s.coef_.shape[0]
                else:
                    self._other.append((s, cols))
            if weights:
                from scipy import sparse

                self._b = np.concatenate(biases)
                # Hashed text leaves most weights zero: a sparse stack stays small.
                if sum(np.count_nonzero(w) for w in weights) < 0.25 * sum(w.size for w in weights):
                    self._W = sparse.vstack([sparse.csr_matrix(w) for w in weights]).T.tocsr()
                else:
                    self._W = np.ascontiguousarray(np.vstack(weights).T)

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        assert self.labels is not None, "a regression model has no class probabilities"
        n = X.shape[0]
        total = np.zeros((n, len(self.labels)))
        if self._linear:
            Z = X @ self._W
            Z = np.asarray(Z.toarray() if hasattr(Z, "toarray") else Z) + self._b
            for row0, rows, cols in self._linear:
                z = Z[:, row0 : row0 + rows]
                if rows == 1:  # binary: the weights score the second class
                    p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
                    total[:, cols[0]] += 1.0 - p1
                    total[:, cols[1]] += p1
                else:
                    e = np.exp(z - z.max(axis=1, keepdims=True))
                    total[:, cols] += e / e.sum(axis=1, keepdims=True)
        for shard, cols in self._other:
            total[:, cols] += shard.predict_proba(X)
        total /= len(self.shards)
        return total

    def predict(self, X: Any) -> NDArray[Any]:
        if self.labels is None:
            return np.mean([s.predict(X) for s in self.shards], axis=0)  # type: ignore[no-any-return]
        best = self.predict_proba(X).argmax(axis=1)
        out: NDArray[Any] = np.asarray(self.labels, dtype=object)[best]
        return out


# Types beyond skops' own defaults that a shard model of ours may hold.
_SAFE_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.")


def dump_shard(model: Any) -> bytes:
    import skops.io as sio

    return _canonical_skops(sio.dumps(model))


def _canonical_skops(raw: bytes) -> bytes:
    """skops names objects and array files by ``id()`` and stamps each zip entry with the
    current time; renumber the ids in order of first appearance in the schema, fix the
    timestamps, and equal models give equal bytes (so a retrain reproduces the hashes)."""
    import io
    import json
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(raw))
    names = set(src.namelist())
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for k, v in node.items():
                if k == "__id__" and isinstance(v, int):
                    out[k] = ids.setdefault(v, len(ids))
                elif k == "file" and isinstance(v, str) and v in names:
                    out[k] = files.setdefault(v, f"{len(files):06d}.npy")
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(json.loads(src.read("schema.json")))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as dst:
        entries = [("schema.json", json.dumps(schema, sort_keys=True).encode())]
        entries += [(new, src.read(old)) for old, new in sorted(files.items(), key=lambda f: f[1])]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            dst.writestr(info, data)
    return buf.getvalue()


def load_shard(data: bytes) -> Any:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=data)
    unsafe = [t for t in untrusted if not t.startswith(_SAFE_PREFIXES)]
    if unsafe:
        raise UnsafeArtifact(f"the artifact holds types that are not safe to load: {unsafe}")
    return sio.loads(data, trusted=untrusted)
