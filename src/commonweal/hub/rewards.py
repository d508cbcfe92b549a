"""Reward epochs, payouts and on-chain claims: the hub's side.

The splits themselves are the rules' (``community.ownership``): the hub builds each body
with the same pure functions the rules check it with, under the append lock, so what it
logs is exactly what every replay recomputes. An error (no new valuation, an empty
treasury, no address to pay) is raised before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from commonweal.community.claims import distributor
from commonweal.community.ownership import claim_balances, epoch_body, payout_body
from commonweal.community.state import State
from commonweal.community.views import member_name

if TYPE_CHECKING:
    from commonweal.hub.core import Hub

__all__ = ["close_epoch", "export_claims", "pay_out"]


def _logged(hub: Hub, kind: str, build: Callable[[State], dict[str, Any]]) -> dict[str, Any]:
    """Append one hub event whose body ``build(state)`` makes under the append lock."""
    hub.refresh()
    done = hub.record(kind, lambda ctx: build(ctx.state))
    return {**done.body, "entry": done.entry, "size": done.size}


def close_epoch(hub: Hub) -> dict[str, Any]:
    """Close the next reward epoch on the newest valuation; return what was minted."""
    res = _logged(hub, "rewards.epoch", epoch_body)
    state = hub.state
    for pool in res["pools"].values():
        pool["awards"] = [
            {"member": m, "name": member_name(state, m), "shares": s} for m, s in pool["awards"]
        ]
    return res


def pay_out(hub: Hub, amount: int | None = None) -> dict[str, Any]:
    """Pay ``amount`` treasury credits (default: all of it) to shareholders pro rata."""
    res = _logged(hub, "payout.record", lambda st: payout_body(st, amount))
    state = hub.state
    res["parts"] = [
        {"member": m, "name": member_name(state, m), "shares": s, "credits": c}
        for m, s, c in res["parts"]
    ]
    res["balance"] = state.treasury.balance
    return res


def export_claims(hub: Hub, epoch: int) -> dict[str, Any]:
    """Epoch ``epoch``'s shares as Uniswap MerkleDistributor claims, for members with an
    EVM address. The root is logged (once: exporting again unchanged logs nothing)."""
    hub.refresh()
    doc = distributor(claim_balances(hub.state, epoch))
    if hub.state.epochs[epoch].claims_root == doc["merkleRoot"]:
        return {"document": doc, "entry": None, "epoch": epoch}  # already logged

    def build(st: State) -> dict[str, Any]:
        # Under the lock: an address registered meanwhile changes the claims.
        doc.update(distributor(claim_balances(st, epoch)))
        return {
            "epoch": epoch,
            "format": "merkle-distributor",
            "root": doc["merkleRoot"],
            "token_total": doc["tokenTotal"],
            "claims": len(doc["claims"]),
        }

    res = _logged(hub, "rewards.claims", build)
    return {"document": doc, "entry": res["entry"], "epoch": epoch}
