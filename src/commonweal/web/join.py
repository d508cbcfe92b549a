"""Joining and keys: the join page (a key made in the browser, a join event signed with it,
a backup of the key file), signing in with a key file, signing out, inviting someone, and
the member's private webhook form (a fragment any page may include).

The key never leaves the browser: the page only renders forms and what the community's
charter says about joining; ``static/js/join.js`` does the rest through the event API.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from commonweal.api.deps import CurrentMember, HubDep
from commonweal.web.render import page, templates

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

# The rules' limit on a name (``community.rules.MAX_NAME``); the hub refuses a longer one.
MAX_NAME = 64

# What each join policy means for someone at the door, in plain words.
POLICY_WORDS = {
    "open": "Anyone may join: choose a name and your browser makes your key.",
    "invite": "This community joins by invitation: you need the invite a member gave you.",
    "approval": (
        "Anyone may ask to join; a member approves each newcomer. Until then you are "
        "pending and cannot act yet."
    ),
}


@router.get("/join", response_class=HTMLResponse)
def join(
    request: Request,
    hub: HubDep,
    invite: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    charter = hub.state.charter
    policy = charter.join_policy if charter is not None else "open"
    return page(
        request,
        hub,
        "join.html",
        title="Join or sign in",
        policy=policy,
        policy_words=POLICY_WORDS.get(policy, ""),
        invite=invite,
        max_name=MAX_NAME,
    )


@router.get("/w/webhook", response_class=HTMLResponse)
def webhook(hub: HubDep, member: CurrentMember) -> HTMLResponse:
    """The member's own webhook form (include it as ``<div data-fragment="/w/webhook">``)."""
    html = templates.get_template("webhook.html").render(hook=hub.webhooks.get(member))
    return HTMLResponse(html)
