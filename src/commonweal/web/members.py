"""A member's public page, ``/members/{who}``: who they are and what the log says they
did — joined when, status, delegation, shares, items by status, reviews and the
reliability the consensus model gives them. ``who`` is a key id, a unique prefix of one
(at least 8 characters) or a name, resolved as the CLI resolves them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from commonweal.api.deps import HubDep
from commonweal.community import views
from commonweal.web.render import page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/members/{who}", response_class=HTMLResponse)
def member_page(who: str, request: Request, hub: HubDep) -> HTMLResponse:
    state = hub.state
    key = views.find_member(state, who[:200])
    profile = views.member_profile(state, key, hub.data.member_tallies())
    joined = hub.log.entries(profile["joined_index"], profile["joined_index"] + 1)[0]
    as_of, reliability = hub.data.reliability_as_of(stale_ok=True)
    return page(
        request,
        hub,
        "member.html",
        title=profile["name"],
        p=profile,
        joined=joined.log_time,
        reliability=reliability.get(key),
        reliability_as_of=as_of,
        statuses=views.STATUSES,
    )
