"""Ingest of contributed items: what the hub checks before an item may enter review.

Hard checks refuse the whole batch with a 4xx and store nothing: the item's shape against
the charter's task, its size, binary junk in text, and that its content matches the salted
commitment the member signed. Soft checks (screening) decide item by item and are logged by
the hub as a ``contribution.screen`` event: exact duplicates (an HMAC under the hub's secret,
never an unsalted hash), near duplicates (MinHash LSH for text, perceptual hashes for
images), and personal data (redacted, refused or flagged, as the charter says). Each item
gets a quality report that names what was found by kind and position, never by value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import os
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert, select

from commonweal.community.charter import Charter, Task
from commonweal.errors import InvalidInput, TooLarge
from commonweal.ledger.canonical import canonical
from commonweal.ml import duplicates as dup
from commonweal.ml.privacy import find_personal_data, redact
from commonweal.store.schema import dedup_exact, hub_settings, near_signatures, quality_reports

__all__ = [
    "Screened",
    "Screener",
    "check_item",
    "commitment_of",
    "decode_image",
    "item_text_fields",
    "parse_number",
]

SALT_BYTES = 16


def commitment_of(salt: bytes, item: Any) -> str:
    """SHA-256 of the salt and the item's canonical JSON, as hex."""
    return hashlib.sha256(salt + canonical(item)).hexdigest()


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


def decode_image(value: Any, task: Task, where: str) -> np.ndarray:
    """Decode a base64 PNG/JPEG into a grayscale array no larger than the charter allows."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a base64 PNG or JPEG")
    try:
        raw = base64.b64decode(value, validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            if img.format not in ("PNG", "JPEG"):
                raise InvalidInput(f"{where} is {img.format}, not PNG or JPEG")
            if img.width > task.image_width or img.height > task.image_height:
                raise InvalidInput(
                    f"{where} is {img.width}x{img.height}; the charter allows at most "
                    f"{task.image_width}x{task.image_height}"
                )
            return np.asarray(img.convert("L"), dtype=np.uint8)
    except (binascii.Error, UnidentifiedImageError, OSError):
        raise InvalidInput(f"{where} is not a readable PNG or JPEG image") from None


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
        decode_image(item["image"], task, f"{where}.image")
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
    assert charter.task is not None
    if charter.task.kind == "tabular-classification":
        return item["target"]  # type: ignore[no-any-return]
    return item.get("label")


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


def _set_text(item: dict[str, Any], path: str, value: str) -> dict[str, Any]:
    out = dict(item)
    if path.startswith("features."):
        out["features"] = {**item["features"], path.split(".", 1)[1]: value}
    else:
        out[path] = value
    return out


@dataclass
class Screened:
    """One item's screening outcome."""

    id: str
    status: str  # in_review | refused
    flags: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    stored: dict[str, Any] | None = None  # the (possibly redacted) item to keep
    report: dict[str, Any] = field(default_factory=dict)

    def result(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "flags": self.flags, "reasons": self.reasons}


class Screener:
    """The hub's duplicate indexes and secret, and the per-item screening."""

    def __init__(self) -> None:
        self._secret: bytes | None = None
        self._text: dup.TextNearDuplicates | None = None
        self._image: dup.ImageNearDuplicates | None = None
        self._loaded = False

    def secret(self, conn: Connection) -> bytes:
        if self._secret is None:
            row = conn.execute(
                select(hub_settings.c.value).where(hub_settings.c.name == "dedup_secret")
            ).first()
            if row is None:
                value = os.urandom(32)
                conn.execute(insert(hub_settings).values(name="dedup_secret", value=value))
                self._secret = value
            else:
                self._secret = bytes(row[0])
        return self._secret

    def _index(self, conn: Connection, charter: Charter) -> Any:
        assert charter.task is not None
        if not self._loaded:
            pct = charter.duplicates.near_threshold_pct
            self._text = dup.TextNearDuplicates(threshold=pct / 100)
            self._image = dup.ImageNearDuplicates(
                max_distance=charter.duplicates.image_max_distance
            )
            index: Any = self._image if charter.task.kind == "image-classification" else self._text
            for iid, sig in conn.execute(select(near_signatures.c.id, near_signatures.c.signature)):
                index.add(iid, index.from_bytes(bytes(sig)))
            self._loaded = True
        if charter.task.kind == "image-classification":
            return self._image
        return self._text

    def forget(self, ids: list[str]) -> None:
        """Drop withdrawn items from the in-memory indexes (their rows are already gone)."""
        for index in (self._text, self._image):
            if index is not None:
                for iid in ids:
                    index.remove(iid)

    def reset(self) -> None:
        self._loaded = False
        self._text = self._image = None

    def screen(
        self, conn: Connection, charter: Charter, items: list[tuple[str, dict[str, Any]]]
    ) -> list[Screened]:
        """Screen a batch (already shape-checked); write its index rows and reports."""
        assert charter.task is not None
        secret = self.secret(conn)
        index = self._index(conn, charter)
        image_task = charter.task.kind == "image-classification"
        policy = charter.privacy.personal_data
        out: list[Screened] = []
        batch_keys: dict[str, str] = {}
        added: list[tuple[str, Any]] = []
        for iid, item in items:
            s = Screened(iid, "in_review", stored=item)
            key = dup.exact_key(secret, item)
            earlier = (
                batch_keys.get(key)
                or conn.execute(select(dedup_exact.c.id).where(dedup_exact.c.key == key)).scalar()
            )
            if earlier is not None:
                s.report["duplicate_of"] = earlier
                if charter.duplicates.exact == "refuse":
                    s.status = "refused"
                    s.reasons.append(f"exact duplicate of item {earlier}")
                else:
                    s.flags.append("duplicate")
            sig = (
                index.signature(decode_image(item["image"], charter.task, "image"))
                if image_task
                else index.signature(_near_text(charter, item))
            )
            near = [(other, score) for other, score in index.query(sig) if other != earlier]
            if near:
                s.report["near_duplicates"] = [
                    {"id": other, "similarity_pct": round(score * 100)} for other, score in near[:5]
                ]
                if charter.duplicates.near == "refuse":
                    s.status = "refused"
                    s.reasons.append(f"near duplicate of item {near[0][0]}")
                else:
                    s.flags.append("near-duplicate")
            found: list[dict[str, Any]] = []
            stored = item
            for path, text in item_text_fields(charter, item):
                hits = find_personal_data(text)
                if hits:
                    found.extend(
                        {"field": path, "kind": h.kind, "start": h.start, "end": h.end}
                        for h in hits
                    )
                    if policy == "redact":
                        stored = _set_text(stored, path, redact(text, hits))
            if found:
                s.report["personal_data"] = found
                kinds = sorted({f["kind"] for f in found})
                if policy == "refuse":
                    s.status = "refused"
                    s.reasons.append(f"personal data ({', '.join(kinds)}); remove it and resend")
                elif policy == "redact":
                    s.flags.append("personal-data-redacted")
                else:
                    s.flags.append("personal-data")
            s.stored = stored if s.status == "in_review" else None
            s.report.update({"status": s.status, "flags": s.flags, "reasons": s.reasons})
            if s.status == "in_review":
                if earlier is None:  # the index keeps the first copy (a flagged copy is not)
                    batch_keys[key] = iid
                added.append((iid, sig))
                # Joins the index at once so later items of this batch see it; if the
                # batch is rolled back the hub calls reset() and the index reloads.
                index.add(iid, sig)
            out.append(s)
        if batch_keys:
            conn.execute(insert(dedup_exact), [{"key": k, "id": v} for k, v in batch_keys.items()])
        if added:
            conn.execute(
                insert(near_signatures),
                [{"id": iid, "signature": index.to_bytes(sig)} for iid, sig in added],
            )
        conn.execute(
            insert(quality_reports),
            [{"id": s.id, "report": canonical(s.report).decode()} for s in out],
        )
        return out


def _near_text(charter: Charter, item: dict[str, Any]) -> str:
    assert charter.task is not None
    if charter.task.kind == "text-classification":
        return item["text"]  # type: ignore[no-any-return]
    return canonical(item.get("features", item)).decode()
