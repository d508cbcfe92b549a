"""My page: what I gave, what it was worth, what I own and was paid, and the acts that
are mine alone — withdraw items, leave, export everything about me.

The page itself is the same for everyone; what is personal comes as fragments under
``/w/me/`` fetched with the member's signed header (``CurrentMember``), so the hub never
renders one member's page to another. Every act on the page is an event the browser signs
(``static/js/me.js``), the same kind and body the CLI signs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from commonweal.api.deps import CurrentMember, HubDep
from commonweal.community import views
from commonweal.community.federated_math import epsilon_spent
from commonweal.web.render import page, templates

__all__ = ["histogram", "router"]

router = APIRouter(include_in_schema=False)

PAGE = 50  # items per page of "my contributions"
SHOWN = 20  # newest epochs and payouts listed; the statement JSON has them all
BINS = 20


@router.get("/me", response_class=HTMLResponse)
def me(request: Request, hub: HubDep) -> HTMLResponse:
    return page(request, hub, "me.html", title="My page", statuses=views.STATUSES)


def histogram(values: Sequence[float], bins: int = BINS) -> dict[str, Any]:
    """Equal-width bins over ``values`` (labels are each bin's lower edge), so a member's
    10,000 values travel to the browser as ``bins`` counts."""
    if not values:
        return {"edges": [], "counts": []}
    lo, hi = min(values), max(values)
    if hi == lo:
        return {"edges": [lo, hi], "counts": [len(values)]}
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, math.floor((v - lo) / width))] += 1
    return {"edges": [lo + n * width for n in range(bins + 1)], "counts": counts}


def fragment(template: str, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(template).render(**ctx))


@router.get("/w/me/summary", response_class=HTMLResponse)
def summary(hub: HubDep, member: CurrentMember) -> HTMLResponse:
    """My shares, awards and payouts (the statement), and my items' values."""
    st = views.statement(hub.state, member)
    epochs, payouts = st["epochs"], st["payouts"]
    values = hub.ownership.member_values(member)
    valuation = hub.ownership.latest_valuation()
    # A member who trained from home has no items the hub could value one by one: a
    # federated valuation credits their node's rounds instead (summed per member).
    node_value = None
    if valuation is not None and not values:
        credited = hub.state.valuations[valuation].member_totals().get(member)
        node_value = float(credited) if credited is not None else None
    total = sum(h.shares for h in hub.state.holdings.values())
    return fragment(
        "me_summary.html",
        s=st,
        percent=100.0 * st["shares"] / total if total else 0.0,
        epochs=epochs[::-1][:SHOWN],
        epochs_more=max(0, len(epochs) - SHOWN),
        payouts=payouts[::-1][:SHOWN],
        payouts_more=max(0, len(payouts) - SHOWN),
        valuation=valuation,
        values=histogram(values),
        valued=len(values),
        value_total=math.fsum(values),
        negative=sum(1 for v in values if v < 0),
        node_value=node_value,
    )


@router.get("/w/me/items", response_class=HTMLResponse)
def items(
    hub: HubDep,
    member: CurrentMember,
    status: Annotated[str | None, Query(max_length=20)] = None,
    page_number: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    """One page of my contributions with status, flags and value."""
    status = status or None
    found = views.member_items(
        hub.state, member, status=status, offset=(page_number - 1) * PAGE, limit=PAGE
    )
    values = hub.ownership.item_values([i["id"] for i in found["items"]])
    pages = max(1, math.ceil(found["total"] / PAGE))
    return fragment(
        "me_items.html",
        found=found,
        values=values,
        valuation=hub.ownership.latest_valuation(),
        statuses=[s for s in views.STATUSES if found["counts"].get(s)]
        + sorted(s for s in found["counts"] if s not in views.STATUSES),
        status=status,
        page=page_number,
        pages=pages,
        all_count=sum(found["counts"].values()),
        has_node=member in hub.state.nodes,
    )


@router.get("/w/me/node", response_class=HTMLResponse)
def my_node(request: Request, hub: HubDep, member: CurrentMember) -> HTMLResponse:
    """My federated node: its status, items, accepted rounds, privacy loss and enroll
    root, and the command that runs it (or enrolls one). Empty when the charter does not
    enable federation and I never enrolled: the page then shows nothing of it (an empty
    answer, not a 404, which a browser reports as an error in every member's console)."""
    state = hub.state
    assert state.charter is not None
    cfg = state.charter.federated
    node = hub.federation.node(member)
    if node is None and not cfg.enabled:
        return HTMLResponse("")
    dp_rounds = node["dp_rounds"] if node else 0
    return fragment(
        "me_node.html",
        node=node,
        enabled=cfg.enabled,
        hub_url=str(request.base_url).rstrip("/"),
        # The loss the rules recompute for each DP round the node took part in; the same
        # function, so the page shows what the log's round entries say.
        epsilon=epsilon_spent(dp_rounds, cfg.noise_multiplier, cfg.delta) if dp_rounds else "",
        dp=cfg.dp,
        budget=cfg.epsilon_budget,
    )


@router.get("/w/me/leave", response_class=HTMLResponse)
def leave_terms(hub: HubDep, member: CurrentMember) -> HTMLResponse:
    """What leaving would do to me, as ``commonweal leave`` says it before asking."""
    state = hub.state
    terms = views.leaving_terms(state, member)
    founder_stays = state.members[member].role == "founder" and any(
        m.status == "active" and m.key != member for m in state.members.values()
    )
    return fragment("me_leave.html", t=terms, founder_stays=founder_stays)
