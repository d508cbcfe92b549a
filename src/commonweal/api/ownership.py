"""Routes for what contributions were worth and who owns the community: valuations and
their per-item values, the cap table, reward epochs, payouts and member statements."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from commonweal.api.deps import HubDep
from commonweal.api.spec import errors
from commonweal.errors import NotFound

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.get("/valuations", tags=["ownership"], responses=errors())
def list_valuations(hub: HubDep) -> dict[str, Any]:
    """Every logged valuation: version, method, parameters, roots and members' totals."""
    return {"valuations": [v.to_json() for _, v in sorted(hub.state.valuations.items())]}


@router.get("/valuations/{number}", tags=["ownership"], responses=errors(400, 404))
def get_valuation(number: int, hub: HubDep) -> dict[str, Any]:
    """One valuation and its ``valuation.record`` event."""
    record = hub.state.valuations.get(number)
    if record is None:
        raise NotFound(f"there is no valuation {number}")
    return {**record.to_json(), "event": hub.log.entries(record.entry, record.entry + 1)[0].body}


@router.get("/valuations/{number}/values", tags=["ownership"], responses=errors(400, 404, 422))
def get_values(number: int, hub: HubDep) -> dict[str, Any]:
    """Every item's value in a valuation, sorted by item and checked against the logged
    Merkle root (leaves are the canonical JSON of ``{item, member, value}``)."""
    rows = hub.ownership.stored_values(number)
    return {
        "valuation": number,
        "values_root": hub.state.valuations[number].values_root,
        "values": [{"item": i, "member": m, "value": v} for i, m, v in rows],
    }


@router.get("/shares", tags=["ownership"], responses=errors())
def get_shares(hub: HubDep) -> dict[str, Any]:
    """The cap table: shares held, percent, and shares earned from data, review, compute."""
    return hub.ownership.cap_table()


@router.get("/epochs", tags=["ownership"], responses=errors())
def list_epochs(hub: HubDep) -> dict[str, Any]:
    """Every closed reward epoch and what each pool minted."""
    return {"epochs": [e.to_json() for _, e in sorted(hub.state.epochs.items())]}


@router.get("/payouts", tags=["ownership"], responses=errors())
def list_payouts(hub: HubDep) -> dict[str, Any]:
    """Every payout of treasury credits to shareholders."""
    return {"payouts": [p.to_json() for _, p in sorted(hub.state.payouts.items())]}


@router.get("/members/{key}/statement", tags=["ownership"], responses=errors(404))
def get_statement(key: str, hub: HubDep) -> dict[str, Any]:
    """A member's account: shares held and earned, each epoch's awards, each payout. All
    of it is public in the log already, so no signature is needed to read it."""
    return hub.ownership.statement(key)
