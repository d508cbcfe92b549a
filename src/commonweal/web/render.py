"""Rendering pages: the Jinja2 environment (autoescaped), the context every page shares,
and the filters that show ids and times to people."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from commonweal import __version__
from commonweal.hub import Hub

__all__ = ["NAV", "STATIC", "charter_doc", "error_page", "page", "short", "templates", "when"]

HERE = Path(__file__).parent
STATIC = HERE / "static"

# The menu, in the order a member meets it: (path, label).
NAV = [
    ("/", "Home"),
    ("/contribute", "Contribute"),
    ("/review", "Review"),
    ("/me", "My page"),
    ("/model", "Model"),
    ("/decide", "Decide"),
    ("/ledger", "Ledger"),
]

# Ids shown in tables are cut to this many characters; the full id is always one click or
# one copy away (a title attribute and the link), and 16 hex digits are unique in any
# community this side of billions of members.
SHORT = 16


def short(value: Any, n: int = SHORT) -> str:
    text = str(value)
    return text if len(text) <= n else text[:n] + "…"


def idcut(value: Any) -> Markup:
    """An id shown cut to 16 characters by the style sheet, not by the text: the whole id
    is in the page, so selecting and copying it gives the id a command or route takes."""
    return Markup('<span class="idcut" title="{t}">{t}</span>').format(t=str(value))


def when(value: Any) -> str:
    """An RFC 3339 time as people read it: ``2026-12-05 07:24 UTC``."""
    text = str(value)
    return f"{text[:10]} {text[11:16]} UTC" if len(text) >= 16 and text[10] == "T" else text


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["short"] = short
templates.filters["idcut"] = idcut
templates.filters["when"] = when


def community_name(hub: Hub) -> str:
    st = hub.state
    return st.charter.name if st.charter is not None else "Commonweal"


def page(
    request: Request, hub: Hub, template: str, *, title: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    """Render ``template`` inside the shared layout."""
    html = templates.get_template(template).render(
        request=request,
        path=request.url.path,
        nav=NAV,
        title=title,
        community=community_name(hub),
        # Events signed in the browser name this hub's log (sign.js reads the meta tag),
        # so they cannot be replayed to another community.
        origin=hub.origin,
        version=__version__,
        **ctx,
    )
    return HTMLResponse(html, status_code=status)


def charter_doc(hub: Hub) -> dict[str, Any]:
    """The charter as its JSON document (every setting, defaults filled in)."""
    st = hub.state
    return st.charter.to_json() if st.charter is not None else {}


def error_page(request: Request, exc: Exception, status: int) -> HTMLResponse:
    """An error as a page, in the app's layout, saying what went wrong in the hub's words."""
    hub: Hub = request.app.state.hub
    title = {404: "Not found", 403: "Not allowed", 401: "Sign in needed"}.get(
        status, "Something went wrong"
    )
    return page(request, hub, "error.html", title=title, status=status, message=str(exc))
