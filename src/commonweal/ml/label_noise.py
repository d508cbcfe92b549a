"""Suspected label errors among contributed items, by confident learning.

A model that never saw an item predicts its class; where the prediction confidently
disagrees with the label the contributor gave, the label is suspect. Concretely:
out-of-fold class probabilities from 5-fold stratified cross-validation of a logistic
regression over the items' features (so no item is scored by a model trained on it), fed to
cleanlab's ``find_label_issues``, which estimates per-class confidence thresholds and the
joint distribution of given and true labels and returns the items most likely mislabelled.
The result is a list for reviewers to look at, not a verdict: the hub flags, people decide.
Everything is seeded, so the same items and seed give the same list on every run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from cleanlab.filter import find_label_issues
from numpy.typing import NDArray
from PIL import Image
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

__all__ = ["image_features", "suspected_label_errors", "text_features"]

FOLDS = 5
# A class needs an item in every fold for its out-of-fold probabilities to mean anything,
# and cleanlab's per-class threshold is an average over the class's own items.
MIN_PER_CLASS = FOLDS


def suspected_label_errors(
    features: Any,
    labels: Sequence[str],
    *,
    seed: int = 0,
    min_items: int = 50,
) -> list[int]:
    """Indices of items whose label is likely wrong, most suspect first.

    ``features`` is one row per item (a dense array, or the sparse matrix ``text_features``
    returns); ``labels`` the label each contributor gave. Returns ``[]`` without looking
    when the evidence is too thin to accuse anyone: fewer than ``min_items`` items (too few
    to learn the classes from the other items), fewer than two classes (nothing to confuse a
    label with), or any class with fewer than five items (five-fold stratified
    cross-validation cannot put one of them in every fold, and a class's confidence
    threshold from a handful of items would flag its members at random).
    """
    if features.shape[0] != len(labels):
        raise ValueError(f"{features.shape[0]} feature rows but {len(labels)} labels")
    classes, given = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    counts = np.bincount(given)
    if len(labels) < min_items or len(classes) < 2 or counts.min() < MIN_PER_CLASS:
        return []
    model = LogisticRegression(max_iter=2000, random_state=seed)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    pred_probs = cross_val_predict(model, features, given, cv=folds, method="predict_proba")
    ranked = find_label_issues(
        labels=given,
        pred_probs=pred_probs,
        return_indices_ranked_by="self_confidence",
        # In-process: cleanlab would otherwise fork a worker pool inside the hub.
        n_jobs=1,
    )
    return [int(i) for i in ranked]


def text_features(texts: Sequence[str]) -> Any:
    """TF-IDF of word unigrams and bigrams (a sparse matrix, one row per text)."""
    # sublinear_tf: a word said five times is not five times the evidence.
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    return vectorizer.fit_transform(list(texts))


def image_features(images: Sequence[NDArray[Any]]) -> NDArray[np.float64]:
    """Flattened pixels scaled to [0, 1], one row per image.

    Integer pixels are divided by their type's maximum (255 for uint8); float pixels are
    taken to be in [0, 1] already. A pool may mix sizes (the charter sets only a maximum), so
    greyscale images not of the most common size are resized to it, bilinearly; colour images
    must all have one shape.
    """
    if not images:
        return np.empty((0, 0), dtype=np.float64)
    arrays = [np.asarray(image) for image in images]
    shapes = Counter(a.shape for a in arrays)
    # Most common shape; ties go to the larger, then to the smaller tuple, so the choice does
    # not depend on the order of the items.
    target = min(shapes, key=lambda s: (-shapes[s], -math.prod(s), s))
    rows = []
    for i, arr in enumerate(arrays):
        scale = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "iu" else 1.0
        unit = arr.astype(np.float64) / scale
        if unit.shape != target:
            if unit.ndim != 2 or len(target) != 2:
                raise ValueError(
                    f"image {i} is {arr.shape} and most are {target}; only greyscale (HxW) "
                    "images are resized to a common size"
                )
            resized = Image.fromarray(unit.astype(np.float32)).resize(
                (target[1], target[0]), Image.Resampling.BILINEAR
            )
            unit = np.asarray(resized, dtype=np.float64)
        rows.append(unit.ravel())
    return np.stack(rows)
