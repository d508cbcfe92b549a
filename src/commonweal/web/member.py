"""Fragments only a member may see, fetched by the page with a signed request
(``X-Commonweal-Auth``, made in the browser) and rendered here, escaped, as HTML."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from commonweal.api.deps import CurrentMember, HubDep
from commonweal.web.render import templates

__all__ = ["router"]

router = APIRouter(prefix="/w", include_in_schema=False)


@router.get("/waiting", response_class=HTMLResponse)
def waiting(request: Request, hub: HubDep, member: CurrentMember) -> HTMLResponse:
    """What waits for me: shown on every page."""
    w = hub.waiting_for(member)
    html = templates.get_template("waiting.html").render(w=w)
    return HTMLResponse(html)
