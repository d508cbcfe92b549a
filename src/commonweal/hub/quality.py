"""Pool-wide quality checks the hub runs on decrypted items (not per batch): for now,
suspected label errors by confident learning, over features that fit the task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from commonweal.community.charter import Charter
from commonweal.items import decode_image
from commonweal.ml import label_noise

__all__ = ["suspected_mislabels"]


def suspected_mislabels(
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
        from commonweal.hub.features import featurize

        feats = featurize(task, items)  # numbers and one-hot categories, as training uses
    return sorted(label_noise.suspected_label_errors(feats, list(labels), seed=seed))
