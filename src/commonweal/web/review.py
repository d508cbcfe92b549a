"""The review page: one item at a time, the label choices as buttons with number keys, and
the queue's progress in sight (Label Studio's flow).

The page is a shell; the item comes as a member-only fragment, ``/w/review/next``, fetched
with a signed request (its content is for members who may review it) and rendered here,
escaped. ``static/js/review.js`` signs the ``review.submit`` events the CLI signs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from commonweal.api.contributions import skipped
from commonweal.api.deps import CurrentMember, HubDep
from commonweal.web.render import charter_doc, page, templates

__all__ = ["label_keys", "router"]

router = APIRouter(include_in_schema=False)

# Why an item is back in review, in the words a reviewer needs (as ``commonweal review``).
WHY = {
    "suspected-label-error": "a quality scan suspects its label is wrong",
    "negative-value": "a valuation found that it makes the model worse",
    "near-duplicate": "it nearly copies an item the community already had",
    "duplicate": "it copies an item the community already had",
    "personal-data": "it holds personal data",
    "personal-data-redacted": "it held personal data, now redacted",
}


def label_keys(labels: list[str]) -> list[tuple[str, str]]:
    """``(key, label)`` for the label buttons: the label itself when every label is one
    digit (a digits community types 7 for "7"), else its number from 1 (keys 1-9 only)."""
    if labels and all(len(x) == 1 and x.isdigit() for x in labels):
        return [(x, x) for x in labels]
    return [(str(n) if n <= 9 else "", x) for n, x in enumerate(labels, 1)]


@router.get("/review", response_class=HTMLResponse)
def review(request: Request, hub: HubDep) -> HTMLResponse:
    task = charter_doc(hub).get("task") or {}
    labels = list(task.get("labels") or [])
    return page(
        request,
        hub,
        "review.html",
        title="Review",
        task=task,
        keys=label_keys(labels),
    )


@router.get("/w/review/next", response_class=HTMLResponse)
def next_item(request: Request, hub: HubDep, member: CurrentMember, skip: str = "") -> HTMLResponse:
    """The next item for me (none of the ``skip`` ids), its report and the queue's size."""
    passed = skipped(skip)
    st = hub.state
    item = hub.data.next_review(member, skip=passed)
    waiting = reviewed = 0
    for c in st.contributions.values():
        if member in c.reviewers:
            reviewed += 1
        elif c.status == "in_review" and c.member != member:
            waiting += 1
    ctx: dict[str, Any] = {
        "item": item,
        "waiting": waiting,
        "left": waiting
        - sum(
            1
            for i in passed
            if i in st.contributions
            and st.contributions[i].status == "in_review"
            and member not in st.contributions[i].reviewers
        ),
        "skipped": len(passed),
        "reviewed": reviewed,
        "why": WHY,
    }
    if item is not None:
        flags = [f for f in str(item.get("flags") or "").split(",") if f]
        ctx["flags"] = flags
        ctx["rereview"] = "re-review" in flags
        other = item.get("resembles")
        near = (item.get("report") or {}).get("near_duplicates") or []
        if not other and near:
            other = near[0]["id"]
        if other and other in st.contributions:
            o = st.contributions[other]
            ctx["resembles"] = {
                "id": other,
                "status": o.status,
                "label": o.decided_label or o.label,
                "mine": o.member == member,
            }
        elif other:
            ctx["resembles"] = {"id": other, "status": "unknown", "label": None, "mine": False}
    html = templates.get_template("review_item.html").render(**ctx)
    return HTMLResponse(html)
