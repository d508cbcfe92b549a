"""The ledger explorer: every log entry, decoded, page by page; one entry with its event,
signature and leaf hash, and a button that verifies its inclusion in the browser.

Pages read only the entries they show: the unfiltered list is a range of indexes, and a
filtered one (by member, by kind) walks the ``(actor, idx)``/``(kind, idx)`` indexes from a
cursor (``before``/``after`` an index), so a page costs the same at 100 or 100,000 entries.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from commonweal.api.deps import HubDep
from commonweal.errors import InvalidInput, NotFound
from commonweal.hub import Hub
from commonweal.ledger.event import Leaf
from commonweal.ledger.merkle import leaf_hash
from commonweal.web.describe import actor_name, describe
from commonweal.web.render import page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
# A filtered list says "over 10,000" rather than count a common kind to the end.
COUNT_CAP = 10_000


def _int(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise InvalidInput(f"{what} must be a whole number, got {value!r}")
    return int(value)


def _row(hub: Hub, leaf: Leaf) -> dict[str, Any]:
    return {
        "index": leaf.index,
        "time": leaf.log_time,
        "kind": leaf.kind,
        "actor": leaf.actor,
        "who": actor_name(hub, leaf.actor),
        "text": describe(hub, leaf.kind, leaf.actor, leaf.body),
    }


def _link(**params: Any) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return "/ledger" + ("?" + urlencode(kept) if kept else "")


def _page_numbers(current: int, last: int) -> list[int | None]:
    """1, the pages around ``current``, and ``last``; ``None`` marks a gap."""
    wanted = sorted({1, last, *range(max(1, current - 2), min(last, current + 2) + 1)})
    out: list[int | None] = []
    for n in wanted:
        if out and n - (out[-1] or 0) > 1:
            out.append(None)
        out.append(n)
    return out


@router.get("/ledger", response_class=HTMLResponse)
def ledger(
    request: Request,
    hub: HubDep,
    member: str = "",
    kind: str = "",
    before: str | None = None,
    after: str | None = None,
) -> HTMLResponse:
    # "page" is read by hand: as a parameter it would shadow render.page.
    page_no = _int(request.query_params.get("page"), "page") or 1
    cursor_before, cursor_after = _int(before, "before"), _int(after, "after")
    kinds = hub.log.kinds()
    if kind and kind not in kinds:
        raise InvalidInput(f"there is no kind of entry {kind!r}; choose one of the list")
    size = hub.log.size()
    ctx: dict[str, Any] = {"member": member, "kind": kind, "kinds": kinds, "size": size}
    filtered = bool(member.strip() or kind)
    if not filtered:
        last = max(1, -(-size // PER_PAGE))
        if not 1 <= page_no <= last:
            raise NotFound(f"page {page_no} is not between 1 and {last}")
        end = size - (page_no - 1) * PER_PAGE
        leaves = hub.log.entries(max(0, end - PER_PAGE), end)[::-1]
        ctx.update(
            rows=[_row(hub, lf) for lf in leaves],
            page_no=page_no,
            last=last,
            pages=_page_numbers(page_no, last),
            newer=_link(page=page_no - 1) if page_no > 1 else None,
            older=_link(page=page_no + 1) if page_no < last else None,
        )
        return page(request, hub, "ledger.html", title="Ledger", **ctx)

    actors = hub.log.actors(member) if member.strip() else []
    names = sorted({actor_name(hub, a) for a in actors})
    ctx.update(matched=names, filtered=True, rows=[], newer=None, older=None, total=0)
    if member.strip() and not actors:
        ctx["nobody"] = True
        return page(request, hub, "ledger.html", title="Ledger", **ctx)
    kinds_wanted = [kind] if kind else []

    def find(**cursor: int | None) -> list[Leaf]:
        return hub.log.find(kinds=kinds_wanted, actors=actors, **cursor)  # type: ignore[arg-type]

    if cursor_after is not None:
        leaves = find(after=cursor_after, limit=PER_PAGE + 1)
        has_newer = len(leaves) > PER_PAGE
        leaves = leaves[1:] if has_newer else leaves
        has_older = bool(leaves) and bool(find(before=leaves[-1].index, limit=1))
    else:
        leaves = find(before=cursor_before, limit=PER_PAGE + 1)
        has_older = len(leaves) > PER_PAGE
        leaves = leaves[:PER_PAGE]
        has_newer = (
            cursor_before is not None
            and bool(leaves)
            and bool(find(after=leaves[0].index, limit=1))
        )
    total = hub.log.count(kinds=kinds_wanted, actors=actors, cap=COUNT_CAP + 1)
    keep = {"member": member, "kind": kind}
    ctx.update(
        rows=[_row(hub, lf) for lf in leaves],
        total=total,
        capped=total > COUNT_CAP,
        newer=_link(**keep, after=leaves[0].index) if has_newer else None,
        older=_link(**keep, before=leaves[-1].index) if has_older else None,
        newest=_link(**keep) if has_newer else None,
    )
    return page(request, hub, "ledger.html", title="Ledger", **ctx)


@router.get("/ledger/{index}", response_class=HTMLResponse)
def entry(request: Request, hub: HubDep, index: str) -> HTMLResponse:
    n = _int(index, "an entry's index")
    assert n is not None
    leaf = hub.log.entry(n)
    size = hub.log.size()
    data = {
        "index": leaf.index,
        "event": leaf.event,
        "sig": base64.b64encode(leaf.sig).decode(),
    }
    return page(
        request,
        hub,
        "ledger_entry.html",
        title=f"Entry {leaf.index}",
        row=_row(hub, leaf),
        event_json=json.dumps(leaf.event, indent=2, ensure_ascii=False, sort_keys=True),
        sig=data["sig"],
        leaf_hash=leaf_hash(leaf.data).hex(),
        leaf_b64=base64.b64encode(leaf.data).decode(),
        leaf_bytes=len(leaf.data),
        verifier=str(hub.verifier),  # ``origin`` comes with every page (render.page)
        size=size,
        data=data,
        previous=leaf.index - 1 if leaf.index > 0 else None,
        following=leaf.index + 1 if leaf.index + 1 < size else None,
    )
