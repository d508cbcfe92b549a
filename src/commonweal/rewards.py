"""Reward epochs, the cap table, payouts, statements and on-chain claims: the hub's side.

The splits themselves are the rules' (``community.ownership``): the hub builds each body
with the same pure functions the rules check it with, under the append lock, so what it
logs is exactly what every replay recomputes. An error (no new valuation, an empty
treasury, no address to pay) is raised before anything is written.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from commonweal.community.ownership import POOLS, claim_balances, epoch_body, payout_body
from commonweal.community.state import State
from commonweal.errors import NotFound
from commonweal.ledger.event import SignedEvent

if TYPE_CHECKING:
    from commonweal.hub import Hub

__all__ = ["cap_table", "close_epoch", "export_claims", "pay_out", "statement"]


def _logged(hub: Hub, kind: str, build: Any) -> dict[str, Any]:
    """Append one hub event whose body ``build(state)`` makes under the lock."""
    logged: dict[str, Any] = {}

    def after(conn: Connection, st: State, index: int) -> list[SignedEvent]:
        body = build(st)
        logged.update(body)
        return [hub.sign(kind, body)]

    hub.refresh()
    done = hub.append([], after=after)
    return {**logged, "entry": done.entries[-1]["index"], "size": done.size}


def _name(state: State, key: str) -> str:
    m = state.members.get(key)
    return m.name if m is not None else ""


def close_epoch(hub: Hub) -> dict[str, Any]:
    """Close the next reward epoch on the newest valuation; return what was minted."""
    res = _logged(hub, "rewards.epoch", epoch_body)
    state = hub.state
    for pool in res["pools"].values():
        pool["awards"] = [
            {"member": m, "name": _name(state, m), "shares": s} for m, s in pool["awards"]
        ]
    return res


def pay_out(hub: Hub, amount: int | None = None) -> dict[str, Any]:
    """Pay ``amount`` treasury credits (default: all of it) to shareholders pro rata."""
    res = _logged(hub, "payout.record", lambda st: payout_body(st, amount))
    state = hub.state
    res["parts"] = [
        {"member": m, "name": _name(state, m), "shares": s, "credits": c}
        for m, s, c in res["parts"]
    ]
    res["balance"] = state.treasury.balance
    return res


def cap_table(state: State) -> dict[str, Any]:
    """Who owns the community: shares held, percent, and how they were earned."""
    total = sum(h.shares for h in state.holdings.values())
    rows: list[dict[str, Any]] = [
        {
            "member": h.member,
            "name": _name(state, h.member),
            "shares": h.shares,
            "percent": round(100.0 * h.shares / total, 4) if total else 0.0,
            "data": h.data,
            "review": h.review,
            "compute": h.compute,
            "credits": h.credits,
            "address": h.address,
        }
        for h in state.holdings.values()
        if h.shares or h.data or h.review or h.compute or h.credits
    ]
    rows.sort(key=lambda r: (-r["shares"], r["name"], r["member"]))
    assert state.charter is not None
    return {
        "total_shares": total,
        "epochs": len(state.epochs),
        "transferable": state.charter.rewards.transferable,
        "treasury": state.treasury.to_json(),
        "holders": rows,
    }


def statement(state: State, member: str) -> dict[str, Any]:
    """One member's account: holdings, each epoch's awards and each payout to them."""
    m = state.members.get(member)
    if m is None:
        raise NotFound(f"{member[:16]}… is not a member of this community")
    h = state.holdings.get(member)
    epochs = []
    for e in sorted(state.epochs.values()):
        awards = json.loads(e.awards)
        got = {p: sum(s for k, s in awards[p] if k == member) for p in POOLS}
        if any(got.values()):
            epochs.append({"epoch": e.epoch, "entry": e.entry, **got, "shares": sum(got.values())})
    payouts = []
    for p in sorted(state.payouts.values()):
        for k, shares, credits in json.loads(p.parts):
            if k == member:
                payouts.append(
                    {
                        "payout": p.payout,
                        "entry": p.entry,
                        "shares": shares,
                        "of_shares": p.shares_total,
                        "credits": credits,
                        "of_amount": p.amount,
                    }
                )
    return {
        "member": member,
        "name": m.name,
        "shares": h.shares if h else 0,
        "earned": {p: getattr(h, p) if h else 0 for p in POOLS},
        "credits": h.credits if h else 0,
        "address": h.address if h else "",
        "epochs": epochs,
        "payouts": payouts,
    }


def export_claims(hub: Hub, epoch: int) -> dict[str, Any]:
    """Epoch ``epoch``'s shares as Uniswap MerkleDistributor claims, for members with an
    EVM address. The root is logged (once: exporting again unchanged logs nothing)."""
    from commonweal.community.claims import distributor

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
