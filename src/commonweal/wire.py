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
from typing import Any

from commonweal.errors import Unauthorized
from commonweal.ledger.canonical import canonical
from commonweal.ledger.keys import SigningKey, is_key_id, verify_signature

__all__ = [
    "AUTH_HEADER",
    "AUTH_WINDOW_SECONDS",
    "SALT_BYTES",
    "auth_header",
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


def _auth_message(method: str, target: str, stamp: str) -> bytes:
    return f"{method.upper()} {target} {stamp}".encode()


def auth_header(key: SigningKey, method: str, target: str, *, now: float | None = None) -> str:
    """``X-Commonweal-Auth`` for a request to ``target`` (path and query, as sent):
    ``<key id>.<unix time>.<base64 Ed25519 signature over "METHOD target time">``."""
    stamp = str(int(now if now is not None else time.time()))
    sig = base64.b64encode(key.sign(_auth_message(method, target, stamp))).decode()
    return f"{key.key_id}.{stamp}.{sig}"


def check_auth_header(value: str | None, method: str, target: str, *, now: float) -> str:
    """The key id that signed this request, or Unauthorized (missing, malformed, outside
    the five-minute window, or a signature that does not verify)."""
    if not value:
        raise Unauthorized(
            f"this needs a member's signature: send the {AUTH_HEADER} header "
            "(the SDK and CLI do, given --key)"
        )
    try:
        key_id, stamp, sig_b64 = value.split(".", 2)
        sig = base64.b64decode(sig_b64, validate=True)
        when = int(stamp)
    except (ValueError, binascii.Error):
        raise Unauthorized(f"{AUTH_HEADER} must be KEYID.UNIXTIME.BASE64SIGNATURE") from None
    if abs(now - when) > AUTH_WINDOW_SECONDS:
        raise Unauthorized(
            "the request's signature is more than five minutes old or early; "
            "check this machine's clock"
        )
    if not is_key_id(key_id) or not verify_signature(
        key_id, _auth_message(method, target, stamp), sig
    ):
        raise Unauthorized("the request's signature does not verify for that key")
    return key_id


# -- API keys ---------------------------------------------------------------------------


def new_api_key() -> tuple[str, str]:
    """A fresh API key secret and its SHA-256 (what the log holds)."""
    secret = API_KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return secret, hash_api_key(secret)


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
