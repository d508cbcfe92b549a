"""Routes for governance: proposals with their phase and tally, and delegations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from commonweal.api.deps import HubDep
from commonweal.api.spec import errors

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.get("/proposals", tags=["governance"], responses=errors())
def list_proposals(hub: HubDep) -> dict[str, Any]:
    """Every proposal: its actions, phase (pending, active, revealing, timelock,
    executable, executed, cancelled, expired), time left, tally and whether it passes.
    A secret ballot's tally stays hidden until voting ends."""
    return {"proposals": hub.governance.proposals()}


@router.get("/proposals/{number}", tags=["governance"], responses=errors(400, 404))
def get_proposal(number: int, hub: HubDep) -> dict[str, Any]:
    """One proposal, as in the list."""
    return hub.governance.proposal(number)


@router.get("/delegations", tags=["governance"], responses=errors())
def list_delegations(hub: HubDep) -> dict[str, Any]:
    """Who delegates their vote to whom, now (each proposal fixes them when it is made)."""
    return {"delegations": dict(sorted(hub.state.delegates.items()))}
