"""Routes for the community as a whole: its founding facts, charter and members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from commonweal.api.deps import HubDep
from commonweal.ledger.canonical import parse

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["community"])


@router.get("/members")
def get_members(hub: HubDep) -> dict[str, Any]:
    """Every member, as the log's replay has them."""
    return {"members": hub.members()}


@router.get("/community")
def get_community(hub: HubDep) -> dict[str, Any]:
    """The community's name, origin, hub key, founder and charter."""
    row = hub.community()
    return {**row, "charter": parse(row["charter"])}
