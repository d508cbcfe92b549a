"""What an item must look like: the one place that checks items against the charter.

A contributed item (text, an image, or a row of features, with its label) and a prediction
input (the same without its label) are checked here, by the hub's intake and by serving,
so that both refuse the same things with the same words. Checks raise ``InvalidInput`` or
``TooLarge`` naming the bad field; images are decoded within the charter's bounds.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

import numpy as np

from commonweal.community.charter import Charter, Task
from commonweal.errors import InvalidInput, TooLarge
from commonweal.images import MAX_IMAGE_BYTES, open_image
from commonweal.ledger.canonical import canonical
from commonweal.wire import label_of

__all__ = [
    "check_input",
    "check_item",
    "decode_image",
    "item_label",
    "item_text_fields",
    "parse_number",
]


def _clean_text(value: Any, where: str, *, max_bytes: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string")
    if required and not value.strip():
        raise InvalidInput(f"{where} is empty")
    if len(value.encode()) > max_bytes:
        raise TooLarge(f"{where} is {len(value.encode())} bytes; the charter allows {max_bytes}")
    for ch in value:
        if ch in "\t\n\r":
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs", "Co", "Cn") or ch == "\ufffd":
            raise InvalidInput(
                f"{where} holds binary or control characters (U+{ord(ch):04X}); send text"
            )
    return value


def decode_image(
    value: Any, task: Task, where: str, *, max_bytes: int = MAX_IMAGE_BYTES
) -> np.ndarray:
    """Decode a base64 PNG/JPEG into a grayscale array no larger than the charter allows
    (``images.open_image``: bytes, dimensions and decompression bounded before decoding)."""
    img = open_image(
        value, where, max_width=task.image_width, max_height=task.image_height, max_bytes=max_bytes
    )
    with img:
        return np.asarray(img.convert("L"), dtype=np.uint8)


def check_item(charter: Charter, item: Any, where: str) -> None:
    """Raise InvalidInput/TooLarge if ``item`` does not fit the charter's task."""
    task = charter.task
    assert task is not None
    limit = charter.limits.max_item_bytes
    if not isinstance(item, dict):
        raise InvalidInput(f"{where} must be an object")
    kind = task.kind

    def exact_keys(required: set[str], optional: frozenset[str] = frozenset()) -> None:
        missing, extra = required - set(item), set(item) - required - optional
        if missing or extra:
            raise InvalidInput(
                f"{where}: a {kind} item has fields {sorted(required)}"
                + (f" (and optionally {sorted(optional)})" if optional else "")
                + (f"; missing {sorted(missing)}" if missing else "")
                + (f"; unexpected {sorted(extra)}" if extra else "")
            )

    if kind == "text-classification":
        exact_keys({"text", "label"})
        _clean_text(item["text"], f"{where}.text", max_bytes=limit)
    elif kind == "image-classification":
        exact_keys({"image", "label"}, frozenset({"caption"}))
        # The item's bytes bound its image's: refused before decoding, not after.
        decode_image(item["image"], task, f"{where}.image", max_bytes=limit)
        if "caption" in item:
            _clean_text(item["caption"], f"{where}.caption", max_bytes=1000, required=False)
    else:
        exact_keys({"features", "target"})
        feats = item["features"]
        if not isinstance(feats, dict) or set(feats) != {c.name for c in task.columns}:
            raise InvalidInput(
                f"{where}.features must have exactly the columns {[c.name for c in task.columns]}"
            )
        for col in task.columns:
            value = feats[col.name]
            if col.type == "numeric":
                parse_number(value, f"{where}.features.{col.name}")
            else:
                _clean_text(value, f"{where}.features.{col.name}", max_bytes=200)
                if col.categories and value not in col.categories:
                    raise InvalidInput(
                        f"{where}.features.{col.name}: {value!r} is not one of {col.categories}"
                    )
        if kind == "tabular-regression":
            parse_number(item["target"], f"{where}.target")
    if "label" in item and item["label"] not in task.labels:
        raise InvalidInput(f"{where}: label {item['label']!r} is not one of {task.labels}")
    if kind == "tabular-classification" and item["target"] not in task.labels:
        raise InvalidInput(f"{where}: target {item['target']!r} is not one of {task.labels}")
    if len(canonical(item)) > limit:
        raise TooLarge(f"{where} is over the charter's {limit}-byte limit per item")


def parse_number(value: Any, where: str) -> float:
    # Numbers travel as decimal strings (or integers): the log's canonical JSON has no
    # floats, and a string keeps the member's exact digits.
    if type(value) is int:
        return float(value)
    if isinstance(value, str):
        try:
            x = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(x):
                return x
    raise InvalidInput(f"{where} must be a number, as an integer or a decimal string")


def item_label(charter: Charter, item: dict[str, Any]) -> str | None:
    """The label of a checked item, by the rule members sign with (``wire.label_of``)."""
    assert charter.task is not None
    return label_of(charter.task.kind, item)  # type: ignore[no-any-return]


def item_text_fields(charter: Charter, item: dict[str, Any]) -> list[tuple[str, str]]:
    """The free-text fields of an item, where personal data could hide."""
    assert charter.task is not None
    kind = charter.task.kind
    if kind == "text-classification":
        return [("text", item["text"])]
    if kind == "image-classification":
        return [("caption", item["caption"])] if "caption" in item else []
    return [
        (f"features.{c.name}", item["features"][c.name])
        for c in charter.task.columns
        if c.type == "categorical"
    ]


def check_input(task: Task, item: Any, where: str, *, max_bytes: int = MAX_IMAGE_BYTES) -> None:
    """What a prediction input must look like: an item without its label or target (an
    image of at most ``max_bytes``: the charter's limit per item, for the hub)."""
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
        decode_image(item["image"], task, f"{where}.image", max_bytes=max_bytes)
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
