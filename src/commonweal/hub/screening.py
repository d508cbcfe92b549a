"""Screening of contributed items: what the hub finds in each item before review.

Hard checks (``commonweal.items`` and ``hub.data``) have already refused malformed batches
whole. Screening decides item by item and is logged by the hub as a
``contribution.screen`` event: exact duplicates (an HMAC under the hub's secret,
never an unsalted hash), near duplicates (MinHash LSH for text, perceptual hashes for
images), and personal data (redacted, refused or flagged, as the charter says). Each item
gets a quality report that names what was found by kind and position, never by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from commonweal.community.charter import Charter
from commonweal.items import decode_image, item_text_fields
from commonweal.ledger.canonical import canonical
from commonweal.ml import duplicates as dup
from commonweal.ml.privacy import find_personal_data, redact
from commonweal.store import screening as stored

__all__ = ["Screened", "Screener"]


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
    resembles: str | None = None  # the earlier item this one copies, exactly or nearly

    def refuse(self, reason: str) -> None:
        """Refuse the item, saying why."""
        self.status = "refused"
        self.reasons.append(reason)

    def result(self) -> dict[str, Any]:
        """What the contributor's receipt says of the item."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "flags": self.flags,
            "reasons": self.reasons,
        }
        if self.resembles is not None and self.status == "in_review":
            out["resembles"] = self.resembles  # the log says which item is the original
        return out


class Screener:
    """The hub's duplicate indexes and secret, and the per-item screening."""

    def __init__(self) -> None:
        self._secret: bytes | None = None
        self._text: dup.TextNearDuplicates | None = None
        self._image: dup.ImageNearDuplicates | None = None
        self._loaded = False

    def dedup_secret(self, conn: Connection) -> bytes:
        """The hub's secret key for exact-duplicate HMACs, made on first use."""
        if self._secret is None:
            self._secret = stored.dedup_secret(conn)
        return self._secret

    def _near_index(self, conn: Connection, charter: Charter) -> Any:
        assert charter.task is not None
        if not self._loaded:
            pct = charter.duplicates.near_threshold_pct
            self._text = dup.TextNearDuplicates(threshold=pct / 100)
            self._image = dup.ImageNearDuplicates(
                max_distance=charter.duplicates.image_max_distance
            )
            index: Any = self._image if charter.task.kind == "image-classification" else self._text
            for iid, sig in stored.near_signatures_stored(conn):
                index.add(iid, index.from_bytes(sig))
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
        """Drop the in-memory indexes; they reload from the database on next use."""
        self._loaded = False
        self._text = self._image = None

    def screen(
        self, conn: Connection, charter: Charter, items: list[tuple[str, dict[str, Any]]]
    ) -> list[Screened]:
        """Screen a batch (already shape-checked); write its index rows and reports."""
        assert charter.task is not None
        secret = self.dedup_secret(conn)
        index = self._near_index(conn, charter)
        out: list[Screened] = []
        first_copies: dict[str, str] = {}  # exact key -> the item of this batch indexed for it
        added: list[tuple[str, Any]] = []  # (item, near-duplicate signature) kept
        for iid, item in items:
            s = Screened(iid, "in_review", stored=item)
            key = dup.exact_key(secret, item)
            earlier = first_copies.get(key) or _indexed_copy(conn, key)
            _check_exact_duplicate(charter, s, earlier)
            sig = _near_signature(charter, index, item)
            _check_near_duplicates(charter, s, _near_matches(charter, index, item, sig), earlier)
            stored = _check_personal_data(charter, s, item)
            s.stored = stored if s.status == "in_review" else None
            s.report.update({"status": s.status, "flags": s.flags, "reasons": s.reasons})
            if s.status == "in_review":
                if earlier is None:  # the index keeps the first copy (a flagged copy is not)
                    first_copies[key] = iid
                added.append((iid, sig))
                # Joins the index at once so later items of this batch see it; if the
                # batch is rolled back the hub calls reset() and the index reloads.
                index.add(iid, sig)
            out.append(s)
        _write_screening(conn, index, first_copies, added, out)
        return out


def _indexed_copy(conn: Connection, key: str) -> str | None:
    """The item an earlier batch indexed under this exact-duplicate key, if any."""
    return stored.exact_copy(conn, key)


def _check_exact_duplicate(charter: Charter, s: Screened, earlier: str | None) -> None:
    if earlier is None:
        return
    s.report["duplicate_of"] = earlier
    if charter.duplicates.exact == "refuse":
        s.refuse(f"exact duplicate of item {earlier}")
    else:
        s.flags.append("duplicate")
        s.resembles = earlier


def _near_signature(charter: Charter, index: Any, item: dict[str, Any]) -> Any:
    """What the index keeps of the item: for an image, its hash and those of it moved by
    a pixel each way (see ``_near_matches``)."""
    assert charter.task is not None
    if charter.task.kind == "image-classification":
        return index.index_signature(decode_image(item["image"], charter.task, "image"))
    return index.signature(_near_text(charter, item))


def _near_matches(
    charter: Charter, index: Any, item: dict[str, Any], sig: Any
) -> list[tuple[str, float]]:
    """Indexed items near this one. Moving a small picture by one pixel changes its
    perceptual hash more than the difference between two different pictures does, so an
    image is matched both ways: against each indexed image moved by a pixel (what a
    shifted copy of it is, even where the move pushed a stroke out of the frame), and
    moved back by a pixel itself against the indexed images."""
    assert charter.task is not None
    if charter.task.kind != "image-classification":
        return sorted(index.query(sig), key=lambda pair: (-pair[1], pair[0]))
    found = dict(index.query(sig, moved=True))
    pixels = decode_image(item["image"], charter.task, "image")
    for shifted in index.shifted_signatures(pixels):
        for other, score in index.query(shifted):
            found[other] = max(score, found.get(other, 0.0))
    return sorted(found.items(), key=lambda pair: (-pair[1], pair[0]))


def _check_near_duplicates(
    charter: Charter, s: Screened, matches: list[tuple[str, float]], earlier: str | None
) -> None:
    near = [(other, score) for other, score in matches if other != earlier]
    if not near:
        return
    s.report["near_duplicates"] = [
        {"id": other, "similarity_pct": round(score * 100)} for other, score in near[:5]
    ]
    if charter.duplicates.near == "refuse":
        s.refuse(f"near duplicate of item {near[0][0]}")
    else:
        s.flags.append("near-duplicate")
        if s.resembles is None:
            s.resembles = max(near, key=lambda m: m[1])[0]


def _check_personal_data(charter: Charter, s: Screened, item: dict[str, Any]) -> dict[str, Any]:
    """Report personal data by kind and position; the item to keep (redacted if the
    charter says so)."""
    policy = charter.privacy.personal_data
    found: list[dict[str, Any]] = []
    stored = item
    for path, text in item_text_fields(charter, item):
        hits = find_personal_data(text, regions=charter.privacy.phone_regions)
        if hits:
            found.extend(
                {"field": path, "kind": h.kind, "start": h.start, "end": h.end} for h in hits
            )
            if policy == "redact":
                stored = _set_text(stored, path, redact(text, hits))
    if found:
        s.report["personal_data"] = found
        kinds = sorted({f["kind"] for f in found})
        if policy == "refuse":
            s.refuse(f"personal data ({', '.join(kinds)}); remove it and resend")
        elif policy == "redact":
            s.flags.append("personal-data-redacted")
        else:
            s.flags.append("personal-data")
    return stored


def _write_screening(
    conn: Connection,
    index: Any,
    first_copies: dict[str, str],
    added: list[tuple[str, Any]],
    screened: list[Screened],
) -> None:
    """The batch's exact keys, near-duplicate signatures and quality reports."""
    stored.add_exact_keys(conn, first_copies)
    stored.add_near_signatures(conn, [(iid, index.to_bytes(sig)) for iid, sig in added])
    stored.add_reports(conn, [(s.id, s.report) for s in screened])


def _near_text(charter: Charter, item: dict[str, Any]) -> str:
    assert charter.task is not None
    if charter.task.kind == "text-classification":
        return item["text"]  # type: ignore[no-any-return]
    return canonical(item.get("features", item)).decode()
