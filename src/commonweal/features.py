"""From items (as members send them, or consumers ask about them) to the arrays a trainer
takes: the one place that knows both the charter's task and the trainers' features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from commonweal.community.charter import Task
from commonweal.errors import InvalidInput
from commonweal.ml.trainers import hashing_features, pixel_features

__all__ = ["check_input", "featurize", "targets"]


def check_input(task: Task, item: Any, where: str) -> None:
    """What a prediction input must look like: an item without its label or target."""
    from commonweal.intake import decode_image, parse_number

    if not isinstance(item, dict):
        raise InvalidInput(f"{where} must be an object")
    kind = task.kind
    if kind == "text-classification":
        need = {"text"}
    elif kind == "image-classification":
        need = {"image"}
    else:
        need = {"features"}
    if set(item) != need:
        raise InvalidInput(f"{where}: a {kind} input has exactly the fields {sorted(need)}")
    if kind == "text-classification":
        if not isinstance(item["text"], str) or not item["text"].strip():
            raise InvalidInput(f"{where}.text must be a non-empty string")
    elif kind == "image-classification":
        decode_image(item["image"], task, f"{where}.image")
    else:
        feats = item["features"]
        names = [c.name for c in task.columns]
        if not isinstance(feats, dict) or set(feats) != set(names):
            raise InvalidInput(f"{where}.features must have exactly the columns {names}")
        for col in task.columns:
            v = feats[col.name]
            if col.type == "numeric":
                # Consumers may send JSON floats (the log never sees them); the rest is
                # what a contributed number may be.
                if type(v) is float:
                    v = str(v)
                parse_number(v, f"{where}.features.{col.name}")
            elif not isinstance(v, str):
                raise InvalidInput(f"{where}.features.{col.name} must be a string")


def featurize(task: Task, items: Sequence[dict[str, Any]]) -> Any:
    """The feature matrix for ``items`` (contributed items or prediction inputs)."""
    kind = task.kind
    if kind == "text-classification":
        return hashing_features([it["text"] for it in items])
    if kind == "image-classification":
        from commonweal.intake import decode_image

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
