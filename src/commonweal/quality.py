"""Pool-wide quality checks the hub runs on decrypted items (not per batch): for now,
suspected label errors by confident learning, over features that fit the task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from commonweal.community.charter import Charter
from commonweal.intake import decode_image
from commonweal.ml import label_noise

__all__ = ["label_features"]


def label_features(
    charter: Charter, items: Sequence[dict[str, Any]], labels: Sequence[str], *, seed: int = 0
) -> list[int]:
    """Indices of items whose label looks wrong, given the task's kind of content."""
    task = charter.task
    assert task is not None
    if not items:
        return []
    if task.kind == "text-classification":
        feats: Any = label_noise.text_features([it["text"] for it in items])
    elif task.kind == "image-classification":
        images = [decode_image(it["image"], task, "image") for it in items]
        feats = label_noise.image_features(images)
    else:
        rows = []
        for it in items:
            row = []
            for col in task.columns:
                v = it["features"][col.name]
                if col.type == "numeric":
                    row.append(float(v))
                else:
                    row.extend(1.0 if v == cat else 0.0 for cat in col.categories)
            rows.append(row)
        feats = np.asarray(rows, dtype=float)
    return sorted(label_noise.suspected_label_errors(feats, list(labels), seed=seed))
