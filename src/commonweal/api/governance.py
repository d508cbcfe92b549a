"""Routes for governance: proposals with their phase and tally, and delegations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from commonweal.errors import NotFound
from commonweal.hub import Hub

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


def _hub(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


HubDep = Annotated[Hub, Depends(_hub)]


@router.get("/proposals", tags=["governance"])
def list_proposals(hub: HubDep) -> dict[str, Any]:
    """Every proposal: its actions, phase (pending, active, revealing, timelock,
    executable, executed, cancelled, expired), time left, tally and whether it passes.
    A secret ballot's tally stays hidden until voting ends."""
    hub.refresh(max_age=1.0)
    from commonweal.proposals import list_proposals as listing

    return {"proposals": listing(hub.state)}


@router.get("/proposals/{number}", tags=["governance"])
def get_proposal(number: int, hub: HubDep) -> dict[str, Any]:
    """One proposal, as in the list."""
    hub.refresh(max_age=1.0)
    from commonweal.proposals import describe

    p = hub.state.proposals.get(number)
    if p is None:
        raise NotFound(f"there is no proposal {number}")
    return describe(hub.state, p)


@router.get("/delegations", tags=["governance"])
def list_delegations(hub: HubDep) -> dict[str, Any]:
    """Who delegates their vote to whom, now (each proposal fixes them when it is made)."""
    hub.refresh(max_age=1.0)
    return {"delegations": dict(sorted(hub.state.delegates.items()))}
