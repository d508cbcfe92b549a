"""Signed events and the log leaves that wrap them.

An event is the envelope ``{"v": 2, "hub", "kind", "actor", "time", "nonce", "body"}``;
its signature is Ed25519 over the event's canonical (RFC 8785) bytes, by the actor's key.
On the wire a signed event is ``{"event": {...}, "sig": "<base64>"}``.

``hub`` is the origin line of the log the event was signed for (the name the hub signs its
checkpoints under, unique per hub), so an event taken from one community's public log
cannot be replayed to another community where the same key is a member: the rules refuse
an event whose ``hub`` is not the log's origin. Version 1 events name no hub; they stay
valid in the logs that already hold them, but a hub admits only version 2.

When the hub appends an event it wraps it as a *leaf*, the canonical JSON object
``{"event": {...}, "index": N, "log_time": "...", "sig": "..."}``. Those bytes are what
RFC 9162 hashes. Because canonical JSON nests (an object's canonical form is the same inside
a parent as alone), and ``event`` sorts first, the signed bytes are a literal slice of the
leaf: ``leaf[9 : leaf.rindex(b',"index":')]`` — the last such marker, since everything after
the event is an integer and two strings that cannot hold a raw quote.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from commonweal.errors import InvalidInput, TooLarge
from commonweal.ledger.canonical import canonical, has_float, is_canonical, parse_trusted
from commonweal.ledger.keys import SigningKey, check_signature, is_key_id

__all__ = [
    "EVENT_VERSION",
    "MAX_EVENT_BYTES",
    "Leaf",
    "SignedEvent",
    "decode_leaf",
    "encode_leaf",
    "instant",
    "now",
    "sign_event",
]

EVENT_VERSION = 2
MAX_EVENT_BYTES = 64 * 1024
# Version 1 (no hub) is still read: logs written before version 2 hold it.
_ENVELOPE_KEYS_V1 = frozenset({"v", "kind", "actor", "time", "nonce", "body"})
_ENVELOPE_KEYS = _ENVELOPE_KEYS_V1 | {"hub"}
_ENVELOPES = {1: _ENVELOPE_KEYS_V1, 2: _ENVELOPE_KEYS}
# A log origin as C2SP tlog-checkpoint names it (the same pattern community.found checks).
ORIGIN = re.compile(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*")
MAX_ORIGIN = 200
# Used with fullmatch: "$" alone would also match before a trailing newline.
_KIND = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z")
_LEAF_KEYS = frozenset({"event", "index", "log_time", "sig"})
_LEAF_PREFIX = b'{"event":'
_LEAF_MARK = b',"index":'


def now() -> str:
    """The current UTC time as RFC 3339 with milliseconds, as events and leaves carry it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def instant(t: object) -> datetime | None:
    """The UTC instant ``t`` names, or None when it is not RFC 3339 UTC or names no real
    instant (month 13, 30 February, hour 99). A leap second (``:60``) is refused too: no
    clock we stamp with produces one, and refusing it keeps time arithmetic exact."""
    if not isinstance(t, str) or not _TIME.fullmatch(t):
        return None
    try:
        # fromisoformat (3.11) reads the Z and any number of fractional digits.
        return datetime.fromisoformat(t)
    except ValueError:
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True, slots=True)
class SignedEvent:
    """An event with its canonical bytes and signature, already checked for shape."""

    event: dict[str, Any]
    data: bytes  # canonical bytes: exactly what was signed
    sig: bytes

    @property
    def kind(self) -> str:
        return self.event["kind"]  # type: ignore[no-any-return]

    @property
    def actor(self) -> str:
        return self.event["actor"]  # type: ignore[no-any-return]

    @property
    def body(self) -> dict[str, Any]:
        return self.event["body"]  # type: ignore[no-any-return]

    @property
    def hub(self) -> str | None:
        """The origin of the log the event was signed for (None: a version 1 event)."""
        return self.event.get("hub")

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.event, "sig": _b64(self.sig)}

    @classmethod
    def from_wire(cls, doc: Any, *, where: str = "event") -> SignedEvent:
        """Check a wire document's shape and signature. Raises InvalidInput/BadSignature."""
        if not isinstance(doc, dict) or set(doc) != {"event", "sig"}:
            raise InvalidInput(f'{where}: expected an object {{"event": {{...}}, "sig": "..."}}')
        event, sig_b64 = doc["event"], doc["sig"]
        check_envelope(event, where=where)
        if not isinstance(sig_b64, str):
            raise InvalidInput(f"{where}: sig must be a base64 string")
        try:
            sig = base64.b64decode(sig_b64, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text (a plain ValueError)
            raise InvalidInput(f"{where}: sig is not valid base64") from None
        data = canonical(event)
        if len(data) > MAX_EVENT_BYTES:
            raise TooLarge(f"{where}: event is {len(data)} bytes; the limit is {MAX_EVENT_BYTES}")
        check_signature(event["actor"], data, sig, what=where)
        return cls(event, data, sig)


def check_envelope(event: Any, *, where: str = "event") -> None:
    """Raise InvalidInput naming the first field that is missing or malformed."""
    if not isinstance(event, dict):
        raise InvalidInput(f"{where}: event must be a JSON object")
    v = event.get("v")
    if type(v) is not int or v not in _ENVELOPES:
        raise InvalidInput(f"{where}: v must be {EVENT_VERSION} (1 in old logs), got {v!r}")
    expected, keys = _ENVELOPES[v], set(event)
    if keys != expected:
        missing, extra = sorted(expected - keys), sorted(keys - expected)
        raise InvalidInput(
            f"{where}: envelope fields of a version {v} event must be exactly "
            f"{sorted(expected)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
        )
    if v >= 2:
        h = event["hub"]
        if not isinstance(h, str) or len(h) > MAX_ORIGIN or not ORIGIN.fullmatch(h):
            raise InvalidInput(
                f"{where}: hub must be the origin line of the hub's log, like "
                f"'example.org/commonweal/river-a1b2c3d4', got {str(h)[:70]!r}"
            )
    kind = event["kind"]
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise InvalidInput(f"{where}: kind {kind!r} is not like 'member.join'")
    if not is_key_id(event["actor"]):
        raise InvalidInput(
            f"{where}: actor must be the 64-hex-digit public key of the signer, "
            f"got {str(event['actor'])[:70]!r}"
        )
    t = event["time"]
    if instant(t) is None:
        raise InvalidInput(
            f"{where}: time {t!r} is not a real RFC 3339 UTC instant like 2026-01-31T12:00:00Z"
        )
    n = event["nonce"]
    if not isinstance(n, str) or not _NONCE.fullmatch(n):
        raise InvalidInput(f"{where}: nonce must be 16-64 characters of base64url, got {n!r}")
    if not isinstance(event["body"], dict):
        raise InvalidInput(f"{where}: body must be a JSON object")


def sign_event(
    key: SigningKey,
    kind: str,
    body: dict[str, Any],
    *,
    hub: str | None,
    time: str | None = None,
) -> SignedEvent:
    """Build and sign an event as ``key`` for the hub whose log origin is ``hub``: what a
    member's CLI or SDK does locally.

    ``hub`` is required so that no caller signs for no hub by forgetting it; ``None``
    signs the version 1 form, which names no hub. Only replay accepts that form (logs
    written before version 2, test vectors); every hub refuses it at admission.
    """
    event: dict[str, Any] = {
        "v": EVENT_VERSION if hub is not None else 1,
        "kind": kind,
        "actor": key.key_id,
        "time": time or now(),
        "nonce": base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode(),
        "body": body,
    }
    if hub is not None:
        event["hub"] = hub
    check_envelope(event)
    data = canonical(event)
    return SignedEvent(event, data, key.sign(data))


class Leaf(NamedTuple):
    """A log entry: the event the hub appended at ``index`` and when.

    A named tuple rather than a dataclass because verification builds one per entry and a
    tuple is built several times faster. (Its ``index`` field hides ``tuple.index``.)
    """

    index: int  # type: ignore[assignment]
    log_time: str
    event: dict[str, Any]
    sig: bytes
    data: bytes  # the leaf bytes: what the Merkle tree hashes

    @property
    def kind(self) -> str:
        return self.event["kind"]  # type: ignore[no-any-return]

    @property
    def actor(self) -> str:
        return self.event["actor"]  # type: ignore[no-any-return]

    @property
    def body(self) -> dict[str, Any]:
        return self.event["body"]  # type: ignore[no-any-return]

    def signed_bytes(self) -> bytes:
        return signed_slice(self.data)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "log_time": self.log_time,
            "leaf": _b64(self.data),
            "event": self.event,
            "sig": _b64(self.sig),
        }


def encode_leaf(event_data: bytes, index: int, log_time: str, sig: bytes) -> bytes:
    """The canonical leaf bytes, built by concatenation (keys are already in order)."""
    if not _TIME.fullmatch(log_time):
        raise InvalidInput(f"log_time {log_time!r} is not RFC 3339 UTC")
    return b"".join(
        (
            _LEAF_PREFIX,
            event_data,
            _LEAF_MARK,
            str(index).encode(),
            b',"log_time":"',
            log_time.encode(),
            b'","sig":"',
            _b64(sig).encode(),
            b'"}',
        )
    )


def signed_slice(leaf: bytes) -> bytes:
    """The event's signed bytes inside ``leaf`` (see the module docstring)."""
    if not leaf.startswith(_LEAF_PREFIX):
        raise InvalidInput('leaf does not start with {"event":')
    end = leaf.rfind(_LEAF_MARK)
    if end < 0:
        raise InvalidInput("leaf has no index")
    return leaf[len(_LEAF_PREFIX) : end]


def decode_leaf(data: bytes, *, strict: bool = True, check_floats: bool = True) -> Leaf:
    """Parse leaf bytes.

    With ``strict`` (for bytes not yet trusted), also require them to be exactly canonical
    and every envelope field to be well-formed. Without it (for leaves already checked so,
    such as a replay whose signatures workers are checking), only the shape is checked.
    ``check_floats=False`` skips the search for floats, for a caller that replays every
    leaf through the rules anyway: no rule accepts a float in any field.
    """
    # orjson is ~4x faster than the stdlib here; it parses floats, which strict mode then
    # refuses with has_float (the log holds none).
    doc = parse_trusted(data)
    if not isinstance(doc, dict) or doc.keys() != _LEAF_KEYS:
        raise InvalidInput("leaf must hold exactly event, index, log_time and sig")
    if strict and ((check_floats and has_float(doc)) or not is_canonical(data, doc)):
        raise InvalidInput("leaf bytes are not canonical JSON")
    event, index, log_time = doc["event"], doc["index"], doc["log_time"]
    if strict:
        check_envelope(event, where="leaf event")
        if instant(log_time) is None:
            raise InvalidInput(f"leaf log_time {log_time!r} is not a real RFC 3339 UTC instant")
    elif not isinstance(event, dict) or event.keys() not in (_ENVELOPE_KEYS, _ENVELOPE_KEYS_V1):
        raise InvalidInput("leaf event does not have the envelope's fields")
    if type(index) is not int or index < 0:
        raise InvalidInput(f"leaf index {index!r} is not a non-negative integer")
    try:
        sig = binascii.a2b_base64(doc["sig"], strict_mode=True)
    except (binascii.Error, TypeError, ValueError):
        raise InvalidInput("leaf sig is not base64") from None
    return Leaf(index, log_time, event, sig, data)
