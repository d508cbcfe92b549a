"""From items (as members send them, or consumers ask about them) to the arrays a trainer
takes: the one place that knows both the charter's task and the trainers' features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from commonweal.community.charter import Task
from commonweal.ml.trainers import hashing_features, pixel_features

__all__ = ["featurize", "targets"]


def featurize(task: Task, items: Sequence[dict[str, Any]]) -> Any:
    """The feature matrix for ``items`` (contributed items or prediction inputs)."""
    kind = task.kind
    if kind == "text-classification":
        return hashing_features([it["text"] for it in items])
    if kind == "image-classification":
        from commonweal.items import decode_image

        images = [decode_image(it["image"], task, "image") for it in items]
        return pixel_features(images, task.image_width, task.image_height)
    width = sum(1 if c.type == "numeric" else max(1, len(c.categories)) for c in task.columns)
    X = np.zeros((len(items), width), dtype=np.float64)
    for n, it in enumerate(items):
        feats = it["features"]
        j = 0
        for col in task.columns:
            v = feats[col.name]
            if col.type == "numeric":
                X[n, j] = float(v)
                j += 1
            else:
                # Categories the charter lists are one-hot; a categorical column with no
                # listed categories carries nothing a fixed-width model can use.
                if v in col.categories:
                    X[n, j + col.categories.index(v)] = 1.0
                j += max(1, len(col.categories))
    return X


def targets(
    task: Task, items: Sequence[dict[str, Any]], labels: Sequence[str | None]
) -> NDArray[Any]:
    """What the model learns: the decided label, or the numeric target for regression."""
    if task.kind == "tabular-regression":
        return np.array([float(it["target"]) for it in items], dtype=np.float64)
    return np.array(labels, dtype=object).astype(str)
