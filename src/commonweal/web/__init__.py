"""The members' web app: the hub in a browser, served by ``commonweal serve`` at ``/``.

Pages are rendered on the server (Jinja2, autoescaped) from the same ``Hub`` the API uses;
small ES modules in ``static/js`` do what needs the member's key: every write is an event
signed in the browser (WebCrypto Ed25519 over the same RFC 8785 bytes the CLI signs), and
content only a member may see comes as HTML fragments fetched with a signed request. The
member's key lives in the browser's IndexedDB, never on the hub. Every asset ships inside
the package (``static/vendor`` holds the third-party files, see ``VENDOR.json``).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from commonweal.web import areas
from commonweal.web.render import STATIC, error_page
from commonweal.web.security import SecurityHeaders

__all__ = ["mount"]


def mount(app: FastAPI) -> None:
    """Serve the web app, its assets and the self-hosted API docs from ``app``."""
    app.add_middleware(SecurityHeaders)
    app.state.html_errors = error_page
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in areas.ROUTERS:
        app.include_router(router)
