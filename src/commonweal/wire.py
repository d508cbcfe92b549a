"""The few rules that the members' side and the hub must compute identically.

A member's machine (the SDK, the CLI, later the browser) commits to each item before
sending it, labels it, signs requests and mints API keys; the hub checks every one of
those against the same definition. Keeping each rule here, once, means the two sides
cannot drift apart. This module imports nothing of the project but ``ledger`` and
``errors``, so the light SDK can use it without loading the server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from commonweal.errors import Unauthorized
from commonweal.ledger.canonical import canonical
from commonweal.ledger.keys import SigningKey, is_key_id, verify_signature

__all__ = [
    "AUTH_HEADER",
    "AUTH_VERSION",
    "AUTH_WINDOW_SECONDS",
    "SALT_BYTES",
    "SignedRequest",
    "auth_header",
    "auth_message",
    "check_auth_header",
    "commitment_of",
    "describe_item",
    "hash_api_key",
    "item_id",
    "label_of",
    "new_api_key",
]

SALT_BYTES = 16
ITEM_ID_HEX = 32

AUTH_HEADER = "X-Commonweal-Auth"
AUTH_WINDOW_SECONDS = 300

API_KEY_PREFIX = "cw_"


# -- items ------------------------------------------------------------------------------


def commitment_of(salt: bytes, item: Any) -> str:
    """SHA-256 of the salt and the item's canonical JSON, as hex: what the log holds."""
    return hashlib.sha256(salt + canonical(item)).hexdigest()


def item_id(commitment: str) -> str:
    """An item's id: the first 128 bits of its commitment (unique, and pasteable)."""
    return commitment[:ITEM_ID_HEX]


def label_of(task_kind: str | None, item: dict[str, Any]) -> Any:
    """The label a member signs for an item: a tabular classification's target, or the
    item's ``label`` field (None for regression)."""
    if task_kind == "tabular-classification":
        return item.get("target")
    return item.get("label")


def describe_item(
    item: dict[str, Any],
    *,
    task_kind: str | None,
    license: str,
    consent: Sequence[str],
    salt: bytes | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a member signs about one item, and the content part sent beside the event:
    ``({"id", "commitment", "license", "consent", "bytes"[, "label"]}, {"id", "salt", "item"})``."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    commitment = commitment_of(salt, item)
    meta: dict[str, Any] = {
        "id": item_id(commitment),
        "commitment": commitment,
        "license": license,
        "consent": list(consent),
        "bytes": len(canonical(item)),
    }
    if task_kind == "tabular-classification" or "label" in item:
        meta["label"] = label_of(task_kind, item)
    part = {"id": meta["id"], "salt": base64.b64encode(salt).decode(), "item": item}
    return meta, part


# -- request signatures -----------------------------------------------------------------
#
# A signature covers everything that makes a request do what it does: the method, the
# target (path and query, as sent), the SHA-256 of the exact body bytes, the time in
# milliseconds and a random nonce. The body hash stops a captured header from carrying
# another body (a webhook URL, a model's inputs); the nonce makes every request's
# signature its own, so the hub can refuse one it has seen (``SignedRequest.digest``)
# while a page's parallel requests, signed in the same millisecond, never collide.

AUTH_VERSION = "v2"
AUTH_NONCE_BYTES = 16
# Stamp (13 digits until the year 2286) and nonce bounds: anything else is malformed.
_NONCE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_AUTH_FORM = f"{AUTH_VERSION}.KEYID.UNIXMILLISECONDS.NONCE.BASE64SIGNATURE"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request signature that verified: who signed it, and what the hub remembers to
    refuse it a second time (``digest``, until the unix time ``expires``)."""

    key_id: str
    digest: bytes
    expires: int


def auth_message(method: str, target: str, body: bytes, millis: int, nonce: str) -> bytes:
    """The bytes a request signature covers: one field a line, behind a label that no
    event (canonical JSON, which starts with ``{``) can begin with."""
    return "\n".join(
        (
            f"commonweal-request {AUTH_VERSION}",
            method.upper(),
            target,
            str(millis),
            nonce,
            hashlib.sha256(body).hexdigest(),
        )
    ).encode()


def auth_header(
    key: SigningKey,
    method: str,
    target: str,
    *,
    body: bytes = b"",
    now: float | None = None,
    nonce: str | None = None,
) -> str:
    """``X-Commonweal-Auth`` for one request to ``target`` (path and query, as sent)
    carrying exactly ``body`` (empty for none): ``v2.<key id>.<unix ms>.<nonce>.<base64
    Ed25519 signature over auth_message(...)>``. Sign each request, each retry included:
    the hub accepts a signature once."""
    millis = round((time.time() if now is None else now) * 1000)
    if nonce is None:
        nonce = base64.urlsafe_b64encode(os.urandom(AUTH_NONCE_BYTES)).decode().rstrip("=")
    sig = base64.b64encode(key.sign(auth_message(method, target, body, millis, nonce))).decode()
    return f"{AUTH_VERSION}.{key.key_id}.{millis}.{nonce}.{sig}"


def check_auth_header(
    value: str | None, method: str, target: str, body: bytes, *, now: float
) -> SignedRequest:
    """The verified signature of this request (``method target`` with exactly ``body``),
    or Unauthorized: missing, malformed, in the older form that did not cover the body,
    outside the five-minute window, or a signature that does not verify. Whether it was
    used before is the hub's to check (``SignedRequest.digest``)."""
    if not value:
        raise Unauthorized(
            f"this needs a member's signature: send the {AUTH_HEADER} header "
            "(the SDK and CLI do, given --key)"
        )
    parts = value.split(".")
    if parts[0] != AUTH_VERSION:
        if len(parts) == 3 and is_key_id(parts[0]):
            # KEYID.UNIXTIME.SIGNATURE signed neither the body nor a nonce: refused.
            raise Unauthorized(
                "this client signs requests in an older form; update it "
                f"({AUTH_HEADER} is now {_AUTH_FORM}, covering the body)"
            )
        raise Unauthorized(f"{AUTH_HEADER} must be {_AUTH_FORM}")
    try:
        _, key_id, stamp, nonce, sig_b64 = parts
        if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 13:
            raise ValueError(stamp)
        if not 16 <= len(nonce) <= 64 or not set(nonce) <= _NONCE_CHARS:
            raise ValueError(nonce)
        sig = base64.b64decode(sig_b64, validate=True)
    except (ValueError, binascii.Error):
        raise Unauthorized(f"{AUTH_HEADER} must be {_AUTH_FORM}") from None
    millis = int(stamp)
    if abs(now * 1000 - millis) > AUTH_WINDOW_SECONDS * 1000:
        raise Unauthorized(
            "the request's signature is more than five minutes old or early; "
            "check this machine's clock"
        )
    message = auth_message(method, target, body, millis, nonce)
    if not is_key_id(key_id) or not verify_signature(key_id, message, sig):
        raise Unauthorized(
            "the request's signature does not verify for that key (it must cover this "
            "method, path and query, and body)"
        )
    # What makes the request this one is the message its key signed, not the signature's
    # bytes (which another valid encoding could change), so that is what is remembered.
    digest = hashlib.sha256(key_id.encode() + b"\n" + message).digest()
    return SignedRequest(key_id, digest, millis // 1000 + AUTH_WINDOW_SECONDS + 1)


# -- API keys ---------------------------------------------------------------------------


def new_api_key() -> tuple[str, str]:
    """A fresh API key secret and its SHA-256 (what the log holds)."""
    secret = API_KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return secret, hash_api_key(secret)


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
