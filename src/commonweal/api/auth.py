"""Who is asking: members prove it by signing each request with their own key.

Reads that reveal content (an item to review, a member's own export) need to know the
member. The SDK sends ``X-Commonweal-Auth: <key id>.<unix time>.<base64 signature>``, the
signature being Ed25519 over ``"<METHOD> <path?query> <unix time>"``. The hub accepts it
within five minutes of its own clock and if the key is an active member. No passwords, no
sessions: the key a member already holds for signing events is the credential.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated

from fastapi import Depends, Request

from commonweal.errors import Forbidden, Unauthorized
from commonweal.hub import Hub
from commonweal.ledger.keys import SigningKey, is_key_id, verify_signature

__all__ = ["HEADER", "CurrentMember", "auth_header", "current_member"]

HEADER = "X-Commonweal-Auth"
WINDOW_SECONDS = 300


def _message(method: str, target: str, stamp: str) -> bytes:
    return f"{method.upper()} {target} {stamp}".encode()


def auth_header(key: SigningKey, method: str, target: str, *, now: float | None = None) -> str:
    """The header value for a request to ``target`` (path and query, as sent)."""
    stamp = str(int(now if now is not None else time.time()))
    sig = base64.b64encode(key.sign(_message(method, target, stamp))).decode()
    return f"{key.key_id}.{stamp}.{sig}"


def current_member(request: Request) -> str:
    value = request.headers.get(HEADER)
    if not value:
        raise Unauthorized(
            f"this needs a member's signature: send the {HEADER} header "
            "(the SDK and CLI do, given --key)"
        )
    try:
        key_id, stamp, sig_b64 = value.split(".", 2)
        sig = base64.b64decode(sig_b64, validate=True)
        when = int(stamp)
    except (ValueError, binascii.Error):
        raise Unauthorized(f"{HEADER} must be KEYID.UNIXTIME.BASE64SIGNATURE") from None
    if abs(time.time() - when) > WINDOW_SECONDS:
        raise Unauthorized(
            "the request's signature is more than five minutes old or early; "
            "check this machine's clock"
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not is_key_id(key_id) or not verify_signature(
        key_id, _message(request.method, target, stamp), sig
    ):
        raise Unauthorized("the request's signature does not verify for that key")
    hub: Hub = request.app.state.hub
    if not hub.state.is_active(key_id):
        raise Forbidden("only active members may read this")
    return key_id


CurrentMember = Annotated[str, Depends(current_member)]
