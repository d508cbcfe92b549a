"""Routes for the community as a whole: its founding facts, charter and members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from commonweal.api.deps import HubDep
from commonweal.api.spec import errors
from commonweal.ledger.canonical import parse

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["community"])


@router.get("/members", responses=errors())
def get_members(hub: HubDep, key: str | None = None) -> dict[str, Any]:
    """Every member, as the log's replay has them; with ``key``, only the member holding
    that key (none if no member does: what a browser holding a key asks on each page)."""
    if key is not None:
        m = hub.state.members.get(key)
        return {"members": [m.to_json()] if m is not None else []}
    return {"members": hub.members()}


@router.get("/members/pending", responses=errors())
def get_pending_members(hub: HubDep) -> dict[str, Any]:
    """Newcomers waiting for approval (``membership.approvals_required``, or the
    ``approval`` join policy): who approved each so far and how many approvals it takes.
    A member approves one by posting a signed ``member.approve`` event to ``/events``
    (``commonweal member approve``)."""
    return {"pending": hub.pending_members()}


@router.get("/community", responses=errors())
def get_community(hub: HubDep) -> dict[str, Any]:
    """The community's name, origin, hub key, founder and charter."""
    row = hub.community()
    return {**row, "charter": parse(row["charter"])}
