"""Routes for the log itself: append signed events, checkpoints, entries and proofs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from commonweal.api.deps import HubDep, read_json
from commonweal.api.spec import BODY, SIGNED, EventBatch, SignedEvent, body, errors

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["ledger"])


@router.post(
    "/events",
    status_code=201,
    responses=errors(BODY, SIGNED, 404, 409),
    openapi_extra=body(SignedEvent, EventBatch),
)
async def post_events(request: Request, hub: HubDep) -> dict[str, Any]:
    """Append one signed event (``{"event", "sig"}``) or a batch (``{"events": [...]}``).

    A batch is all-or-nothing. The answer holds each entry's index and leaf hash, and
    the new signed checkpoint.
    """
    doc = await read_json(request)
    done = await run_in_threadpool(hub.submit, doc)
    return {"size": done.size, "entries": done.entries, "checkpoint": done.checkpoint}


@router.get("/ledger/checkpoint", response_class=PlainTextResponse, responses=errors())
def get_checkpoint(hub: HubDep) -> str:
    """The latest signed checkpoint, as a C2SP signed note (text/plain)."""
    return hub.log.checkpoint()


@router.get("/ledger/key", response_class=PlainTextResponse, responses=errors())
def get_verifier_key(hub: HubDep) -> str:
    """The hub's verifier key in signed-note verifier-key format."""
    return str(hub.verifier) + "\n"


@router.get("/ledger/entries", responses=errors(400, 404))
def get_entries(
    hub: HubDep,
    start: Annotated[int, Query(ge=0)] = 0,
    end: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """Entries ``[start, end)``, at most 1000 at a time: leaf bytes (base64) and event.
    A ``start`` past the log's size is 404, as a proof of an entry past it is."""
    leaves = hub.log.entries(start, end)
    return {"size": hub.log.size(), "entries": [leaf.to_json() for leaf in leaves]}


@router.get("/ledger/proof/inclusion", responses=errors(400, 404))
def get_inclusion(
    hub: HubDep,
    index: Annotated[int, Query(ge=0)],
    size: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` (default: now)."""
    return hub.log.inclusion(index, size)


@router.get("/ledger/proof/consistency", responses=errors(400, 404))
def get_consistency(
    hub: HubDep,
    old: Annotated[int, Query(ge=0)],
    new: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """RFC 9162 consistency proof that the tree of size ``new`` extends size ``old``."""
    return hub.log.consistency(old, new)


@router.get("/projections", responses=errors())
def get_projections(hub: HubDep) -> dict[str, Any]:
    """Every projection table, so a remote verifier can compare them with its replay."""
    return hub.projections()
