"""What this machine remembers of each log it verified: the last checkpoint seen per
origin, and the verifier key first trusted for it (trust on first use). A later log that
does not extend the remembered checkpoint has had its history rewritten."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir

from commonweal.errors import ConfigError, VerificationFailed
from commonweal.ledger.note import Checkpoint, NoteVerifier

__all__ = ["Witness"]


class Witness:
    """What this verifier remembers of each log it checked: the log's key and its last
    verified checkpoint.

    Kept under the user's config dir (``COMMONWEAL_CONFIG_DIR`` overrides it), one file per
    origin, so a log rewritten between two runs is caught by the second, and so is a hub
    that starts signing the same origin with another key.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        base = directory or os.environ.get("COMMONWEAL_CONFIG_DIR") or user_config_dir("commonweal")
        self.directory = Path(base) / "witnessed"

    def _path(self, origin: str) -> Path:
        return self.directory / f"{hashlib.sha256(origin.encode()).hexdigest()[:24]}.json"

    def _doc(self, origin: str) -> dict[str, Any] | None:
        p = self._path(origin)
        if not p.exists():
            return None
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            # What this machine pinned must not be silently forgotten: say so, and stop.
            raise ConfigError(
                f"{p}, this machine's record of log {origin!r}, cannot be read ({exc}); "
                "restore it, or delete it to trust the hub's key afresh"
            ) from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{p}, this machine's record of log {origin!r}, is not an object")
        return doc

    def known_key(self, origin: str) -> NoteVerifier | None:
        """The verifier key first trusted for ``origin``, if this machine saw it."""
        doc = self._doc(origin)
        return NoteVerifier.parse(doc["verifier"]) if doc else None

    def last(self, verifier: NoteVerifier) -> Checkpoint | None:
        """The last checkpoint verified of this log; raises if the log's key changed."""
        doc = self._doc(verifier.name)
        if doc is None:
            return None
        if doc["verifier"] != str(verifier):
            raise VerificationFailed(
                f"log {verifier.name} was signed by key {doc['verifier']} when this verifier "
                f"last checked it, and now by {verifier}: a hub does not change its key"
            )
        return Checkpoint(doc["origin"], int(doc["size"]), base64.b64decode(doc["root"]))

    def remember(self, verifier: NoteVerifier, cp: Checkpoint, note: str) -> None:
        """Remember ``cp`` as the last checkpoint verified of this log."""
        self.directory.mkdir(parents=True, exist_ok=True)
        p = self._path(verifier.name)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "verifier": str(verifier),
                    "origin": cp.origin,
                    "size": cp.size,
                    "root": base64.b64encode(cp.root).decode(),
                    "note": note,
                },
                indent=2,
            )
        )
        os.replace(tmp, p)
