"""Read an exported log (``ledger export``: one JSON line per entry) for verification.

Each line holds the entry's ``leaf`` (base64 of the exact bytes the tree hashes and the
actor signed) and, for people and tools that read the file, the same entry decoded:
``index``, ``log_time``, ``event`` and ``sig``. Verification checks the leaves; this
reader also checks that the decoded fields say exactly what the leaf says, so that no one
can edit what a reader sees while the signed bytes stay intact.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from commonweal.errors import VerificationFailed
from commonweal.ledger.canonical import is_canonical

__all__ = ["ExportReader"]

_DECODED = ("event", "index", "log_time", "sig")
_FIELDS = frozenset({"leaf", *_DECODED})


class ExportReader:
    """The leaves of an exported log, in order. A malformed line fails at once; a line
    whose decoded fields disagree with its leaf is remembered (``mismatch``) and reported
    by ``check`` once the leaves themselves verified, so that an altered leaf is named as
    such (its signature or the root) and an edited decoded field as that field."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mismatch: VerificationFailed | None = None

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                leaf, doc = self._leaf(line, lineno)
                if self.mismatch is None and not is_canonical(leaf, {k: doc[k] for k in _DECODED}):
                    self.mismatch = self._disagreement(leaf, doc, lineno)
                yield leaf

    def check(self) -> str:
        """Raise the first disagreement between a line's decoded fields and its leaf."""
        if self.mismatch is not None:
            raise self.mismatch
        return "each line's decoded event, index, log time and signature are its leaf's"

    def _leaf(self, line: bytes, lineno: int) -> tuple[bytes, dict[str, Any]]:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VerificationFailed(
                f"{self.path}:{lineno}: not UTF-8 text (byte 0x{line[exc.start]:02x}); "
                "an exported log is UTF-8 JSON lines",
                index=lineno - 1,
            ) from None
        try:
            doc = orjson.loads(line)
            leaf = base64.b64decode(doc["leaf"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise VerificationFailed(
                f"{self.path}:{lineno}: not an exported entry (no base64 'leaf')",
                index=lineno - 1,
            ) from None
        if not isinstance(doc, dict) or doc.keys() != _FIELDS:
            got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
            raise VerificationFailed(
                f"{self.path}:{lineno}: an exported entry holds exactly "
                f"{', '.join(sorted(_FIELDS))}; this line holds {got}",
                index=lineno - 1,
            )
        return leaf, doc

    def _disagreement(self, leaf: bytes, doc: dict[str, Any], lineno: int) -> VerificationFailed:
        try:
            signed = orjson.loads(leaf)
        except orjson.JSONDecodeError:
            signed = {}  # the leaf itself is malformed: verification names it first
        fields = [
            k
            for k in _DECODED
            if not isinstance(signed, dict)
            or k not in signed
            or orjson.dumps(signed[k], option=orjson.OPT_SORT_KEYS) != _dump_or_none(doc[k])
        ] or list(_DECODED)
        verb = "does" if len(fields) == 1 else "do"
        return VerificationFailed(
            f"{self.path}:{lineno}: the decoded {', '.join(repr(f) for f in fields)} of entry "
            f"{lineno - 1} {verb} not match its leaf (the signed, hashed bytes): the export "
            "was edited",
            index=lineno - 1,
        )


def _dump_or_none(value: Any) -> bytes | None:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return None
