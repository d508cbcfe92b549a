"""What every route depends on: the hub (caught up with other processes' appends once per
request, as Datasette's base view does), the JSON body read within limits, and the member
who signed the request."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Request, Security

from commonweal.api.spec import member_signature
from commonweal.errors import Forbidden, InvalidInput, TooLarge
from commonweal.hub import Hub
from commonweal.ledger.canonical import parse
from commonweal.wire import AUTH_HEADER, check_auth_header

__all__ = ["MAX_BODY_BYTES", "CurrentMember", "HubDep", "current_member", "read_json"]

MAX_BODY_BYTES = 8 * 1024 * 1024
# A server sees appends by other processes (the CLI training a model, a second server on
# PostgreSQL) within this many seconds; its own appends it sees at once.
FRESH_SECONDS = 1.0


def hub_of(request: Request) -> Hub:
    """The app's hub, caught up with the log (checking the head at most once a second).

    A NUL character in a path or query parameter is refused here, for every route: no
    value the hub holds contains one, and PostgreSQL cannot even compare text with one."""
    params = [*request.path_params.values(), *request.query_params.values()]
    if any("\x00" in str(v) for v in params) or any("\x00" in k for k in request.query_params):
        raise InvalidInput("a path or query parameter holds a NUL character; none may")
    hub: Hub = request.app.state.hub
    hub.refresh(max_age=FRESH_SECONDS)
    return hub


HubDep = Annotated[Hub, Depends(hub_of)]


async def read_json(request: Request) -> Any:
    """Read a JSON body strictly and within the size limit (before parsing it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLarge(f"request body is {declared} bytes; the limit is {MAX_BODY_BYTES}")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise TooLarge(f"request body is over the {MAX_BODY_BYTES}-byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise InvalidInput("request body is empty; send a signed event as JSON")
    return parse(body)


def current_member(
    request: Request,
    hub: HubDep,
    # Declares the security scheme in the OpenAPI document; the header is checked below.
    _signature: Annotated[str | None, Security(member_signature)] = None,
) -> str:
    """The active member who signed this request (``wire.auth_header``), or 401/403.

    Reads that reveal content (an item to review, a member's own export) need to know the
    member. No passwords, no sessions: the key a member already holds for signing events
    is the credential, and a signature is good for five minutes either side of now.
    """
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    key_id = check_auth_header(
        request.headers.get(AUTH_HEADER), request.method, target, now=time.time()
    )
    # Authorization reads a state no older than the request: a member removed, or who
    # left, through another server a moment ago is refused here too. Comparing the cached
    # state's size with the log head is one indexed read; the catch-up only runs if behind.
    hub.refresh(max_age=0.0)
    if not hub.state.is_active(key_id):
        raise Forbidden("only active members may read this")
    return key_id


CurrentMember = Annotated[str, Depends(current_member)]
