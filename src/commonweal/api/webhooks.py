"""A member's own webhook: set, read or clear it with a request the member signs
(``X-Commonweal-Auth``). The URL is private to the member and the hub, so these are not
events (the log is public) and only the member themself may read or change theirs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from commonweal.api.deps import CurrentMember, HubDep, read_json
from commonweal.api.spec import BODY, SIGNED, Webhook, body, errors
from commonweal.errors import Forbidden, InvalidInput

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["community"])


def _only_self(member: str, key: str) -> None:
    if member != key:
        raise Forbidden("a member's webhook is theirs alone: sign the request with that key")


@router.get("/members/{key}/webhook", responses=errors(SIGNED))
def get_webhook(key: str, hub: HubDep, member: CurrentMember) -> dict[str, Any]:
    """The member's webhook (``url`` is null when none is set) and its last failure."""
    _only_self(member, key)
    return hub.webhooks.get(member)


@router.put("/members/{key}/webhook", responses=errors(BODY, SIGNED), openapi_extra=body(Webhook))
async def put_webhook(
    key: str, request: Request, hub: HubDep, member: CurrentMember
) -> dict[str, Any]:
    """Set the member's webhook: ``{"url": "https://..."}``. The hub POSTs a small JSON
    document to it when something new waits for the member (reviews, votes, reveals,
    payouts)."""
    _only_self(member, key)
    doc = await read_json(request)
    if not isinstance(doc, dict) or set(doc) != {"url"}:
        raise InvalidInput('send {"url": "https://..."} and nothing else')
    return hub.webhooks.set(member, doc["url"])


@router.delete("/members/{key}/webhook", responses=errors(SIGNED))
def delete_webhook(key: str, hub: HubDep, member: CurrentMember) -> dict[str, Any]:
    """Clear the member's webhook: nothing is pushed any more."""
    _only_self(member, key)
    return hub.webhooks.clear(member)
