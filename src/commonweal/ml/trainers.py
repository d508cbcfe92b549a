"""Trainers: a named scikit-learn estimator with fixed parameters, per kind of task.

Features are computed without fitting anything (hashing for text, scaled pixels for images,
numbers and one-hot categories for tables), so every SISA shard — and the server — shares
one featurizer, and a shard's model depends only on its own items and the seed.

Parameters are recorded in the log, which holds no floats: they are written here as JSON
with decimal strings, and turned into numbers when the estimator is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "TRAINERS",
    "Trainer",
    "get_trainer",
    "hashing_features",
    "pixel_features",
]

TEXT_FEATURES = 2**18


@dataclass(frozen=True)
class Trainer:
    """How one shard's model is made. ``params`` is what the log records."""

    name: str
    tasks: tuple[str, ...]
    params: dict[str, Any]
    make_classifier: Callable[[dict[str, Any], int], Any] | None = None
    make_regressor: Callable[[dict[str, Any], int], Any] | None = None
    description: str = ""
    features: dict[str, Any] = field(default_factory=dict)
    # scikit-learn weighs a fixed penalty against a loss summed over rows, so a shard with
    # 1/S of the rows is regularised S times harder at the same C. Scaling C by S keeps
    # each shard's balance that of one model on all the data.
    scale_c_by_shards: bool = False

    def make(self, task_kind: str, seed: int, *, shards: int = 1, rows: int | None = None) -> Any:
        regression = task_kind.endswith("regression")
        factory = self.make_regressor if regression else self.make_classifier
        if factory is None or task_kind not in self.tasks:
            raise ValueError(f"trainer {self.name!r} does not train {task_kind} tasks")
        params = _numbers(self.params)
        if self.scale_c_by_shards and "C" in params:
            params["C"] *= shards
        if params.get("min_samples_leaf") == "auto":
            # A tree's leaves need enough rows to mean something but few enough that a
            # small shard can still split: a tenth of the rows, between 2 and 20 (20 is
            # scikit-learn's default, made for data sets far larger than a community's).
            params["min_samples_leaf"] = max(2, min(20, (rows or 200) // 10))
        return factory(params, seed)

    def logged_params(self) -> dict[str, Any]:
        out = {**self.params, "features": self.features}
        if self.scale_c_by_shards:
            out["C_per_shard"] = "C x shards"
        return out


def _numbers(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, str):
            try:
                out[k] = float(v)
                continue
            except ValueError:
                pass
        out[k] = v
    return out


def _logreg(p: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=p["C"], max_iter=p["max_iter"], random_state=seed)


def _hgb_classifier(p: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=p["max_iter"],
        learning_rate=p["learning_rate"],
        min_samples_leaf=p.get("min_samples_leaf", 20),
        random_state=seed,
    )


def _hgb_regressor(p: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        max_iter=p["max_iter"],
        learning_rate=p["learning_rate"],
        min_samples_leaf=p.get("min_samples_leaf", 20),
        random_state=seed,
    )


def _ridge(p: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(alpha=p["alpha"], random_state=seed)


TRAINERS: dict[str, Trainer] = {
    t.name: t
    for t in (
        Trainer(
            "hashing-logreg",
            ("text-classification",),
            {"C": "10.0", "max_iter": 1000},
            make_classifier=_logreg,
            description="hashed word 1-2 grams, L2-normalised; multinomial logistic regression",
            features={"hashing": TEXT_FEATURES, "ngrams": [1, 2], "norm": "l2"},
            scale_c_by_shards=True,
        ),
        Trainer(
            "pixels-logreg",
            ("image-classification",),
            {"C": "1.0", "max_iter": 2000},
            make_classifier=_logreg,
            description="greyscale pixels scaled to [0, 1]; multinomial logistic regression",
            features={"pixels": "grey/255"},
            scale_c_by_shards=True,
        ),
        Trainer(
            "gradient-boosting",
            ("tabular-classification", "tabular-regression"),
            {"max_iter": 200, "learning_rate": "0.1", "min_samples_leaf": "auto"},
            make_classifier=_hgb_classifier,
            make_regressor=_hgb_regressor,
            description="histogram gradient boosting on numbers and one-hot categories",
            features={"tabular": "numeric + one-hot"},
        ),
        Trainer(
            "linear",
            ("tabular-classification", "tabular-regression", "image-classification"),
            {"C": "1.0", "alpha": "1.0", "max_iter": 2000},
            make_classifier=_logreg,
            make_regressor=_ridge,
            description="logistic regression, or ridge regression for numeric targets",
            features={"tabular": "numeric + one-hot", "pixels": "grey/255"},
        ),
    )
}


def get_trainer(name: str, task_kind: str) -> Trainer:
    trainer = TRAINERS.get(name)
    if trainer is None:
        raise ValueError(f"unknown trainer {name!r}; known: {sorted(TRAINERS)}")
    if task_kind not in trainer.tasks:
        raise ValueError(f"trainer {name!r} does not train {task_kind} tasks")
    return trainer


_VECTORIZER: Any = None


def hashing_features(texts: list[str]) -> Any:
    """Sparse hashed word 1-2 grams: stateless, so training and serving need no
    vocabulary, and two runs give identical columns."""
    global _VECTORIZER
    if _VECTORIZER is None:
        from sklearn.feature_extraction.text import HashingVectorizer

        _VECTORIZER = HashingVectorizer(
            n_features=TEXT_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm="l2"
        )
    from sklearn import config_context

    # The vectorizer's parameters were checked once when it was made; re-checking them on
    # every call is half the cost of featurizing one text at prediction time.
    with config_context(assume_finite=True, skip_parameter_validation=True):
        return _VECTORIZER.transform(texts)


def pixel_features(images: list[NDArray[Any]], width: int, height: int) -> NDArray[np.float64]:
    """Greyscale pixels in [0, 1] on the charter's canvas. A smaller image is resized to
    it, so every row has width × height columns."""
    out = np.empty((len(images), width * height), dtype=np.float64)
    for n, img in enumerate(images):
        a = np.asarray(img)
        if a.shape != (height, width):
            from PIL import Image

            a = np.asarray(Image.fromarray(a.astype(np.uint8)).resize((width, height)))
        out[n] = a.reshape(-1) / 255.0
    return out
