"""Log entries in a few plain words: the home page's activity list and the ledger explorer.

Each summary is built from the event's kind and body and the member names the replayed
state knows; it is text (the pages escape it), never HTML.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commonweal.hub import Hub

__all__ = ["actor_name", "describe"]


def actor_name(hub: Hub, key: str) -> str:
    """Who signed: a member's name, "the hub" for the hub's own key, else the key's start."""
    st = hub.state
    if key in st.members:
        return st.members[key].name
    if key == st.hub_key:
        return "the hub"
    return f"key {key[:16]}…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _count(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    return len(value) if isinstance(value, list | dict) else 0


def describe(hub: Hub, kind: str, actor: str, body: dict[str, Any]) -> str:
    """One log entry in a few words."""
    who = actor_name(hub, actor)

    def name(key: Any) -> str:
        return actor_name(hub, key) if isinstance(key, str) else "nobody"

    def n(field: str, word: str) -> str:
        return _plural(_count(body, field), word)

    words: dict[str, Callable[[], str]] = {
        "community.found": lambda: f"{who} founded the community",
        "member.join": lambda: f"{body.get('name', who)} joined",
        "member.approve": lambda: f"{who} approved {name(body.get('member'))} as a member",
        "member.leave": lambda: f"{who} left",
        "member.address": lambda: f"{who} set a payout address",
        "invite.create": lambda: f"{who} created an invite",
        "contribution.submit": lambda: f"{who} contributed {n('items', 'item')}",
        "contribution.withdraw": lambda: f"{who} withdrew {n('items', 'item')}",
        "contribution.screen": lambda: f"the hub screened {n('results', 'item')}",
        "contribution.flag": lambda: (
            f"the hub flagged {n('items', 'item')}: {body.get('flag', '')}"
        ),
        "review.submit": lambda: f"{who} reviewed an item: {body.get('verdict', '')}",
        "review.decide": lambda: f"review consensus decided {n('decisions', 'item')}",
        "model.version": lambda: f"the hub trained model version {body.get('version', '')}",
        "valuation.record": lambda: "the hub valued every item's contribution",
        "rewards.epoch": lambda: (
            f"reward epoch {body.get('epoch', '')} minted {body.get('shares', '')} shares"
        ),
        "rewards.claims": lambda: "the hub recorded reward claims",
        "shares.transfer": lambda: (
            f"{who} transferred {body.get('shares', '')} shares to {name(body.get('to'))}"
        ),
        "payout.record": lambda: (
            f"the treasury paid out {body.get('amount', '')} credits to the owners"
        ),
        "apikey.create": lambda: f"{who} issued an API key to {body.get('consumer', '')}",
        "apikey.revoke": lambda: f"{who} revoked an API key",
        "revenue.record": lambda: (
            f"{body.get('credits', '')} credits of revenue from the model's use"
        ),
        "proposal.create": lambda: f"{who} proposed: {body.get('title', '')}",
        "proposal.cancel": lambda: f"{who} cancelled proposal {body.get('proposal', '')}",
        "proposal.execute": lambda: f"proposal {body.get('proposal', '')} was carried out",
        "vote.cast": lambda: f"{who} voted on proposal {body.get('proposal', '')}",
        "vote.commit": lambda: f"{who} sealed a vote on proposal {body.get('proposal', '')}",
        "vote.reveal": lambda: f"{who} revealed their vote on proposal {body.get('proposal', '')}",
        "delegate.set": lambda: (
            f"{who} delegated their vote to {name(body['to'])}"
            if body.get("to")
            else f"{who} took back their vote delegation"
        ),
    }
    say = words.get(kind)
    return say() if say is not None else f"{kind} by {who}"
