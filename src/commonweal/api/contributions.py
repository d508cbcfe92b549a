"""Routes for contributed data and peer review: each calls the hub and nothing else."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from commonweal.api.deps import CurrentMember, HubDep, read_json
from commonweal.api.spec import (
    BODY,
    SIGNED,
    ContributionBatch,
    ReviewBatch,
    SignedReview,
    body,
    errors,
)
from commonweal.errors import Forbidden, InvalidInput, NotFound

__all__ = ["MAX_SKIP", "router", "skipped"]

router = APIRouter(prefix="/api/v1")

# Item ids a reviewer may pass over in one request (32 hex digits and a comma each).
MAX_SKIP = 200


def skipped(skip: str) -> set[str]:
    """The item ids in a ``skip`` query parameter (comma-separated)."""
    ids = {s for s in skip.split(",") if s}
    if len(ids) > MAX_SKIP:
        raise InvalidInput(f"skip names {len(ids)} items; at most {MAX_SKIP}")
    return ids


@router.post(
    "/contributions",
    status_code=201,
    tags=["contributions"],
    responses=errors(BODY, SIGNED, 404, 409),
    openapi_extra=body(ContributionBatch),
)
async def post_contributions(request: Request, hub: HubDep) -> dict[str, Any]:
    """A signed ``contribution.submit`` batch with its content. The receipt says, item by
    item, whether it went into review or was refused, and why."""
    doc = await read_json(request)
    return await run_in_threadpool(hub.data.contribute, doc)


@router.get("/contributions", tags=["contributions"], responses=errors(400))
def list_contributions(
    hub: HubDep,
    member: str | None = None,
    status: str | None = None,
    flag: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> dict[str, Any]:
    """Items' metadata (never content), filtered by member, status and flag (for example
    ``negative-value``: the items a valuation found harmful). ``resembles`` names the
    earlier item a copy resembles (its original), or is null."""
    rows = hub.data.contributions(member=member, status=status, flag=flag, limit=limit)
    return {"contributions": rows}


@router.get("/contributions/{item_id}", tags=["contributions"], responses=errors(404))
def get_contribution(item_id: str, hub: HubDep) -> dict[str, Any]:
    """An item's metadata (with ``resembles``: the earlier item it copies, if any) and its
    quality report (findings by kind and position only)."""
    row = hub.data.contribution(item_id)
    try:
        report = hub.data.quality_report(item_id)
    except NotFound:
        report = None
    return {**row, "report": report}


@router.get(
    "/contributions/{item_id}/content", tags=["contributions"], responses=errors(SIGNED, 404)
)
def get_content(item_id: str, hub: HubDep, member: CurrentMember) -> dict[str, Any]:
    """The item itself, for its contributor or for a member who may review it."""
    row = hub.data.contribution(item_id)
    if row["member"] != member and row["status"] != "in_review":
        raise Forbidden("only its contributor may read an item that is not in review")
    return {"id": item_id, "item": hub.data.item_content(item_id)}


@router.get("/reviews/next", tags=["reviews"], responses=errors(400, SIGNED, 404))
def next_review(
    hub: HubDep,
    member: CurrentMember,
    skip: str = "",
) -> dict[str, Any]:
    """An item waiting for your review (never your own, never one you reviewed, none of
    the comma-separated item ids in ``skip``: the ones you passed over for now), and
    ``left``: how many items wait for you, this one included, the skipped ones not."""
    passed = skipped(skip)
    item = hub.data.next_review(member, skip=passed)
    if item is None:
        if passed:
            raise NotFound("nothing but the items you skipped is waiting for your review")
        raise NotFound("nothing is waiting for your review right now")
    return item


@router.post(
    "/reviews",
    status_code=201,
    tags=["reviews"],
    responses=errors(BODY, SIGNED, 404, 409),
    openapi_extra=body(SignedReview, ReviewBatch),
)
async def post_reviews(request: Request, hub: HubDep) -> dict[str, Any]:
    """Signed ``review.submit`` events (one, or a batch). Items that reach their required
    number of reviews are decided in the same commit."""
    doc = await read_json(request)
    events = doc.get("events", [doc]) if isinstance(doc, dict) else None
    if not isinstance(events, list) or any(
        not isinstance(e, dict)
        or not isinstance(e.get("event"), dict)
        or e["event"].get("kind") != "review.submit"
        for e in events
    ):
        raise InvalidInput("send signed review.submit events")
    done = await run_in_threadpool(hub.submit, doc)
    return {"size": done.size, "entries": done.entries, "checkpoint": done.checkpoint}


@router.get("/reviews/reliability", tags=["reviews"], responses=errors())
def reviewer_reliability(hub: HubDep) -> dict[str, Any]:
    """Each reviewer's estimated reliability, from the consensus model over all reviews."""
    rel = hub.data.reviewer_reliability()
    names = {m["key"]: m["name"] for m in hub.members()}
    return {
        "reviewers": [
            {"key": k, "name": names.get(k, ""), "reliability_pct": round(v * 100, 1)}
            for k, v in sorted(rel.items(), key=lambda kv: -kv[1])
        ]
    }


@router.get("/members/{key}/export", tags=["contributions"], responses=errors(SIGNED))
def export_member(key: str, hub: HubDep, member: CurrentMember) -> dict[str, Any]:
    """Everything you contributed, content included, and every log entry about you."""
    if key != member:
        raise Forbidden("members export only their own data")
    return hub.data.member_export(member)
