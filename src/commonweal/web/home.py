"""The community's home page: who we are, our rules, our model, who owns it, what happened."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from commonweal.api.deps import HubDep
from commonweal.cards.charter_words import charter_sections
from commonweal.hub import Hub
from commonweal.web.render import charter_doc, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

RECENT = 15


def describe(hub: Hub, kind: str, actor: str, body: dict[str, Any]) -> str:
    """One log entry in a few words, for the activity list."""
    st = hub.state
    who = st.members[actor].name if actor in st.members else "the hub"
    n = len(body.get("items", []) or [])
    words = {
        "community.found": f"{who} founded the community",
        "member.join": f"{body.get('name', who)} joined",
        "member.leave": f"{who} left",
        "contribution.submit": f"{who} contributed {n} item{'s' if n != 1 else ''}",
        "contribution.withdraw": f"{who} withdrew {n} item{'s' if n != 1 else ''}",
        "review.submit": f"{who} reviewed an item",
        "review.decide": "review consensus decided items",
        "contribution.screen": "the hub screened a batch",
        "contribution.flag": f"the hub flagged {n} item(s): {body.get('flag', '')}",
        "invite.create": f"{who} created an invite",
        "model.version": f"the hub trained model version {body.get('version', '')}",
        "valuation.record": "the hub valued every item's contribution",
        "apikey.create": f"{who} issued an API key",
        "revenue.record": "revenue from the model's use reached the treasury",
        "proposal.execute": f"proposal {body.get('proposal', '')} was carried out",
        "proposal.create": f"{who} proposed: {body.get('title', '')}",
        "vote.cast": f"{who} voted",
        "delegate.set": f"{who} delegated their vote",
        "rewards.epoch": "a reward epoch minted shares",
        "payout.record": "the treasury paid out to the owners",
    }
    return words.get(kind, f"{kind} by {who}")


@router.get("/", response_class=HTMLResponse)
def home(request: Request, hub: HubDep) -> HTMLResponse:
    st = hub.state
    size = hub.log.size()
    recent = [
        {
            "index": leaf.index,
            "time": leaf.log_time,
            "kind": leaf.kind,
            "text": describe(hub, leaf.kind, leaf.actor, leaf.body),
        }
        for leaf in reversed(hub.log.entries(max(0, size - RECENT), size))
    ]
    members = sorted(st.members.values(), key=lambda m: m.name.casefold())
    versions = hub.models.versions()
    return page(
        request,
        hub,
        "home.html",
        title="Home",
        charter=charter_sections(charter_doc(hub)),
        members=members,
        checkpoint=hub.log.checkpoint(),
        size=size,
        treasury=st.treasury.to_json(),
        recent=recent,
        versions=versions,
        cap=hub.ownership.cap_table(),
    )
