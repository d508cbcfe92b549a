"""A hub directory served in-process: the real FastAPI app behind an httpx transport, no
socket. The SDK uses it when ``--hub`` is a directory, so the CLI and tests go through
exactly the routes a remote member would."""

from __future__ import annotations

import os

import anyio
import httpx

from commonweal.api import create_app
from commonweal.hub import Hub

__all__ = ["EmbeddedTransport", "open_embedded"]


class EmbeddedTransport(httpx.BaseTransport):
    """Serve a synchronous httpx client from an ASGI app in this process, no socket.

    Each request runs the app under ``httpx.ASGITransport`` in a short-lived event loop;
    that costs well under a millisecond, which the CLI never notices, and keeps one code
    path (HTTP, the real routes and error handler) for embedded and remote hubs alike.
    """

    def __init__(self, app: object) -> None:
        self._asgi = httpx.ASGITransport(app=app)  # type: ignore[arg-type]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def run() -> httpx.Response:
            resp = await self._asgi.handle_async_request(request)
            content = await resp.aread()
            return httpx.Response(resp.status_code, headers=resp.headers, content=content)

        return anyio.run(run)


def open_embedded(directory: str | os.PathLike[str]) -> tuple[Hub, EmbeddedTransport]:
    """Open the hub in ``directory`` and a transport that serves its API in-process."""
    hub = Hub.open(directory)
    return hub, EmbeddedTransport(create_app(hub))
