"""The community's home page: who we are, our rules, our model, who owns it, what happened."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from commonweal.api.deps import HubDep
from commonweal.cards.charter_words import AGGREGATION, charter_sections
from commonweal.community.views import federation
from commonweal.hub import Hub
from commonweal.web.describe import describe
from commonweal.web.render import charter_doc, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

RECENT = 15


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
        federation=_federation(hub),
    )


def _federation(hub: Hub) -> dict[str, Any] | None:
    """The charter's federation in a line (None when it does not enable one): how many
    members' nodes are enrolled, and how updates are combined."""
    info = federation(hub.state)
    if not info["enabled"]:
        return None
    cfg = info["charter"]
    return {
        "enrolled": sum(1 for n in info["nodes"] if n["status"] == "enrolled"),
        "rounds": cfg["rounds"],
        "aggregation": AGGREGATION.get(cfg["aggregation"], cfg["aggregation"]),
        "dp": cfg["dp"],
    }
