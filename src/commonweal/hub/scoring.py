"""How good a new version is, in numbers members can compare.

Every version is scored on the community's evaluation set: accuracy and macro-F1 (or MAE,
RMSE and R² for a regression), each label's precision and recall, and — beside the SISA
model's own — the same metrics of **one unsharded model** fitted once on the same rows with
the same recipe: SISA buys cheap unlearning with some accuracy, and members should see how
much. Where there is a previous version, both are also scored on the evaluation items they
share, so the change between versions is measured on the same items.

All metrics are decimal strings, as the log holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from commonweal.ml.sisa import ShardedModel, fit_shard

__all__ = ["behind_unsharded", "compared_metrics", "metrics", "unsharded_metrics"]


def metrics(kind: str, labels: Sequence[str], y: Any, model: Any, X: Any) -> dict[str, str]:
    """The held-out metrics of ``model`` on ``X``, ``y``."""
    from sklearn import metrics as m

    if kind.endswith("regression"):
        pred = model.predict(X)
        return {
            "mae": f"{m.mean_absolute_error(y, pred):.6f}",
            "rmse": f"{float(np.sqrt(m.mean_squared_error(y, pred))):.6f}",
            "r2": f"{m.r2_score(y, pred):.6f}",
        }
    pred = model.predict(X).astype(str)
    out = {
        "accuracy": f"{m.accuracy_score(y, pred):.6f}",
        "macro_f1": f"{m.f1_score(y, pred, average='macro', zero_division=0):.6f}",
    }
    precision, recall, _, support = m.precision_recall_fscore_support(
        y, pred, labels=list(labels), zero_division=0
    )
    for label, p, r, n in zip(labels, precision, recall, support, strict=True):
        if n:
            out[f"precision.{label}"] = f"{p:.6f}"
            out[f"recall.{label}"] = f"{r:.6f}"
    return out


def unsharded_metrics(
    fitter: Any, state: Any, training: Sequence[str], evaluation: Sequence[str]
) -> dict[str, str]:
    """The headline metrics of one model fitted on all of ``training`` (same trainer,
    parameters and seed), prefixed ``unsharded.``."""
    X, y = fitter.arrays(state, training)
    Xe, ye = fitter.arrays(state, evaluation)
    kind = fitter.task.kind
    model = ShardedModel(
        [fit_shard(fitter.trainer, kind, X, y, seed=fitter.seed, shard=0, shards=1)],
        fitter.task.labels or None,
    )
    got = metrics(kind, fitter.task.labels, ye, model, Xe)
    return {f"unsharded.{k}": v for k, v in got.items() if "." not in k}


def compared_metrics(
    fitter: Any, state: Any, new: Any, old: Any, common: Sequence[str]
) -> dict[str, str]:
    """The new and the previous version's headline metrics on the evaluation items both
    were scored on, prefixed ``compared.`` and ``previous.``."""
    if not common:
        return {}
    X, y = fitter.arrays(state, common)
    kind, labels = fitter.task.kind, fitter.task.labels
    ours = metrics(kind, labels, y, new, X)
    theirs = metrics(kind, labels, y, old, X)
    out = {"compared.items": str(len(common))}
    out.update({f"compared.{k}": v for k, v in ours.items() if "." not in k})
    out.update({f"previous.{k}": v for k, v in theirs.items() if "." not in k})
    return out


def behind_unsharded(got: dict[str, str]) -> float | None:
    """How many points (of 100) the SISA model is behind the unsharded one on its headline
    metric (accuracy, or R² for a regression); None if there is no comparison."""
    for name in ("accuracy", "r2"):
        if name in got and f"unsharded.{name}" in got:
            return 100.0 * (float(got[f"unsharded.{name}"]) - float(got[name]))
    return None
