"""The HTTP API: a FastAPI app over one :class:`~commonweal.hub.Hub`.

Routes call the hub's namespaces and nothing else; one router per area. Every error, from
the rules, from request validation or from an unknown route, leaves as one JSON shape:
``{"error": {"code": "...", "message": "...", "detail": ...}}`` (see ``api.errors``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from commonweal import __version__, web
from commonweal.api import (
    community,
    contributions,
    errors,
    federated,
    governance,
    ledger,
    models,
    ownership,
    spec,
    webhooks,
)
from commonweal.api.deps import MAX_BODY_BYTES, HubDep, read_json
from commonweal.errors import RateLimited
from commonweal.hub import Hub

__all__ = ["MAX_BODY_BYTES", "create_app", "read_json"]

ROUTERS = (
    ledger.router,
    community.router,
    contributions.router,
    models.router,
    ownership.router,
    governance.router,
    webhooks.router,
    federated.router,
)


def create_app(hub: Hub, *, billing: bool = False, limited: bool = False) -> FastAPI:
    """The app over ``hub``. With ``billing`` (what ``commonweal serve`` uses), background
    threads log revenue every period, execute passed proposals once their timelock has run
    out, and push what newly waits for members to their webhooks. With ``limited`` (what
    ``commonweal serve`` uses too), the charter's rate limits apply (``hub.limits``): per
    member on events appended, per client address on requests; the operator's embedded
    hub is not limited."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        workers = (
            [
                hub.models.biller(),
                hub.governance.executor(),
                hub.governance.scheduler(),
                hub.webhooks.notifier(),
            ]
            if billing
            else []
        )
        for w in workers:
            w.start()
        try:
            yield
        finally:
            for w in workers:
                await run_in_threadpool(w.stop)

    app = FastAPI(
        lifespan=lifespan,
        # The docs page is the web app's (``web.docs``): Swagger UI from the package, not a CDN.
        docs_url=None,
        redoc_url=None,
        title="Commonweal hub",
        version=__version__,
        description=(
            "A community-owned AI hub. Every write is a member-signed event appended to an "
            "RFC 9162 Merkle log; checkpoints are C2SP signed notes."
        ),
    )
    app.state.hub = hub
    errors.install(app)
    spec.install(app, hub)
    if limited:
        hub.limits.enforced = True

        @app.middleware("http")
        async def per_address(request: Request, call_next: Any) -> Response:
            # Before routing: a flood is refused before it costs a body read or a query.
            if request.client is not None and request.url.path != "/healthz":
                try:
                    hub.limits.take_request(request.client.host)
                except RateLimited as exc:
                    return JSONResponse(
                        exc.to_dict(), status_code=exc.status, headers=errors.retry_headers(exc)
                    )
            response: Response = await call_next(request)
            return response

    for router in ROUTERS:
        app.include_router(router)
    web.mount(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz(hub: HubDep) -> dict[str, Any]:
        return {"ok": True, "size": hub.log.size()}

    return app
