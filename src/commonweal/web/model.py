"""The model's pages: its versions and how good each is, the items behind each version, its
model card, "try it" for members, and API keys for the model's consumers.

Everything here reads the replayed state (metrics, keys) or the hub's kept, checked item
lists of a version (``hub.models.lineage_changes``), never whole tables. Trying the model
goes to ``POST /api/v1/models/{v}/try``, signed by the member; API keys are made in the
browser and only their SHA-256 is signed into an ``apikey.create`` event, as the CLI does.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore

from commonweal.api.deps import CurrentMember, HubDep
from commonweal.cards import render_model_card
from commonweal.community.views import member_api_keys, member_name, model_report
from commonweal.hub import Hub
from commonweal.web.render import page, templates

__all__ = ["card_html", "fragments", "router"]

router = APIRouter(include_in_schema=False)
fragments = APIRouter(prefix="/w", include_in_schema=False)

# Versions per page of the versions table, newest first.
PAGE = 20
# Removed items listed by id on a version's page (the count is always whole).
REMOVED_SHOWN = 50

# CommonMark with GFM tables; raw HTML is not passed through but shown as text, and
# markdown-it refuses javascript:/data: links. The card escapes member-written text itself
# (cards.model_card), so this is a second wall, not the only one.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def _headings_under_the_page_title(state: StateCore) -> None:
    # The page has its own <h1>: the card's "# Title" becomes an <h2>, and so on down.
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + 1)}"


_MARKDOWN.core.ruler.push("headings_under_the_page_title", _headings_under_the_page_title)


# Cards rendered lately, by their Markdown's SHA-256: rendering a card with a thousand
# contributors' rows takes markdown-it tens of milliseconds, and a card only changes when
# the log grows.
_RENDERED: OrderedDict[str, tuple[str, str]] = OrderedDict()
_RENDERED_KEPT = 16
_RENDERED_LOCK = threading.Lock()


def card_html(markdown: str) -> tuple[str, str]:
    """A model card as (YAML front matter, HTML body): the front matter is shown as text,
    the body rendered as Markdown without raw HTML."""
    digest = hashlib.sha256(markdown.encode()).hexdigest()
    with _RENDERED_LOCK:
        done = _RENDERED.get(digest)
        if done is not None:
            _RENDERED.move_to_end(digest)
            return done
    front, body = "", markdown
    if markdown.startswith("---\n"):
        end = markdown.find("\n---\n", 4)
        if end != -1:
            front, body = markdown[4:end], markdown[end + 5 :]
    done = (front, _MARKDOWN.render(body))
    with _RENDERED_LOCK:
        _RENDERED[digest] = done
        while len(_RENDERED) > _RENDERED_KEPT:
            _RENDERED.popitem(last=False)
    return done


def _task(hub: Hub) -> dict[str, Any]:
    st = hub.state
    assert st.charter is not None
    return st.charter.task.model_dump(mode="json") if st.charter.task is not None else {}


def _versions_page(hub: Hub, number: int) -> tuple[list[dict[str, Any]], int, int]:
    """One page of versions, newest first, each with its report; the page shown, and how
    many pages there are."""
    st = hub.state
    all_versions = sorted(st.models, reverse=True)
    pages = max(1, -(-len(all_versions) // PAGE))
    number = min(max(1, number), pages)
    shown = all_versions[(number - 1) * PAGE : number * PAGE]
    rows = [{**st.models[v].to_json(), "report": model_report(st, v)} for v in shown]
    return rows, number, pages


def _page_number(raw: str) -> int:
    return int(raw) if raw.isdigit() and 0 < len(raw) < 7 else 1


@router.get("/model", response_class=HTMLResponse)
def model_home(
    request: Request, hub: HubDep, at: Annotated[str, Query(alias="page")] = "1"
) -> HTMLResponse:
    """The versions, newest first, with their metrics and a chart over versions; try it."""
    st = hub.state
    assert st.charter is not None
    rows, number, pages = _versions_page(hub, _page_number(at))
    latest = st.latest_model
    # The chart: each version's metrics (a few numbers each; a community trains hundreds of
    # versions at most).
    series = [{"version": v, "metrics": model_report(st, v)["metrics"]} for v in sorted(st.models)]
    return page(
        request,
        hub,
        "model.html",
        title="Model",
        latest=model_report(st, latest.version) if latest else None,
        rows=rows,
        page_number=number,
        pages=pages,
        series=series,
        task=_task(hub),
        serving=st.charter.serving.model_dump(mode="json"),
        try_inputs=hub.models.try_limits["inputs"],
        try_per_minute=hub.models.try_limits["per_minute"],
        try_per_day=hub.models.try_limits["per_day"],
    )


@router.get("/model/card", response_class=HTMLResponse)
def latest_card(request: Request, hub: HubDep) -> HTMLResponse:
    """The latest version's model card."""
    return _card(request, hub, "latest")


@router.get("/model/keys", response_class=HTMLResponse)
def api_keys(request: Request, hub: HubDep) -> HTMLResponse:
    """API keys for the model's consumers: who may issue them, at what price; mine."""
    st = hub.state
    assert st.charter is not None
    return page(
        request,
        hub,
        "model_keys.html",
        title="API keys",
        serving=st.charter.serving.model_dump(mode="json"),
        founder=member_name(st, st.founder) if st.founder else "",
        has_model=st.latest_model is not None,
    )


@router.get("/model/{version}", response_class=HTMLResponse)
def model_version(request: Request, hub: HubDep, version: str) -> HTMLResponse:
    """One version: its metrics, and the items behind it per member, what changed."""
    st = hub.state
    v = hub.models.resolve(version)
    changes = hub.models.lineage_changes(v)
    removed = changes["removed"]
    return page(
        request,
        hub,
        "model_version.html",
        title=f"Model version {v}",
        row=st.models[v].to_json(),
        report=model_report(st, v),
        changes={**changes, "removed": removed[:REMOVED_SHOWN]},
        removed_count=len(removed),
        names={r["member"]: member_name(st, r["member"]) for r in removed[:REMOVED_SHOWN]},
        last=max(st.models),
        fed=hub.models.federated(v),
    )


@router.get("/model/{version}/card", response_class=HTMLResponse)
def version_card(request: Request, hub: HubDep, version: str) -> HTMLResponse:
    """A version's model card."""
    return _card(request, hub, version)


def _card(request: Request, hub: HubDep, version: str) -> HTMLResponse:
    v = hub.models.resolve(version)
    front, body = card_html(render_model_card(hub.models.card_info(v)))
    return page(
        request,
        hub,
        "model_card.html",
        title=f"Model card, version {v}",
        v=v,
        front=front,
        body=body,
        last=max(hub.state.models),
    )


@fragments.get("/model/keys", response_class=HTMLResponse)
def my_api_keys(request: Request, hub: HubDep, member: CurrentMember) -> HTMLResponse:
    """My API keys, the form to issue one (or why I may not), and revoke buttons."""
    st = hub.state
    assert st.charter is not None
    serving = st.charter.serving
    html = templates.get_template("model_keys_mine.html").render(
        keys=member_api_keys(st, member),
        may_issue=serving.apikeys == "member" or member == st.founder,
        founder=member_name(st, st.founder) if st.founder else "",
        quota=serving.quota_per_key_per_day,
        founder_revokes=member == st.founder and serving.founder_revokes_keys,
    )
    return HTMLResponse(html)
