"""The HTTP API: a FastAPI app over one :class:`~commonweal.hub.Hub`.

Routes call the hub and nothing else. Every error, from the rules, from request validation
or from an unknown route, leaves as one JSON shape:
``{"error": {"code": "...", "message": "...", "detail": ...}}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from commonweal import __version__
from commonweal.errors import CommonwealError, InvalidInput, TooLarge
from commonweal.hub import Hub
from commonweal.ledger.canonical import parse

__all__ = ["MAX_BODY_BYTES", "create_app", "read_json"]

MAX_BODY_BYTES = 8 * 1024 * 1024
API = "/api/v1"


def _hub(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


HubDep = Annotated[Hub, Depends(_hub)]


def _error(status: int, code: str, message: str, detail: Any = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "detail": detail}}, status_code=status
    )


async def read_json(request: Request) -> Any:
    """Read a JSON body strictly and within the size limit (before parsing it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLarge(f"request body is {declared} bytes; the limit is {MAX_BODY_BYTES}")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise TooLarge(f"request body is over the {MAX_BODY_BYTES}-byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise InvalidInput("request body is empty; send a signed event as JSON")
    return parse(body)


def create_app(hub: Hub, *, billing: bool = False) -> FastAPI:
    """The app over ``hub``. With ``billing`` (what ``commonweal serve`` uses), background
    threads flush metered calls every second and log revenue every period, and execute
    passed proposals once their timelock has run out."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        from commonweal.proposals import Executor
        from commonweal.serving import Biller

        workers: list[Any] = [Biller(hub), Executor(hub)] if billing else []
        for w in workers:
            w.start()
        try:
            yield
        finally:
            for w in workers:
                await run_in_threadpool(w.stop)

    app = FastAPI(
        lifespan=lifespan,
        title="Commonweal hub",
        version=__version__,
        description=(
            "A community-owned AI hub. Every write is a member-signed event appended to an "
            "RFC 9162 Merkle log; checkpoints are C2SP signed notes."
        ),
    )
    app.state.hub = hub

    @app.exception_handler(CommonwealError)
    async def _commonweal_error(_: Request, exc: CommonwealError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return _error(
            400,
            InvalidInput.code,
            f"{where}: {first['msg']}",
            [{"loc": list(e["loc"]), "msg": e["msg"]} for e in errs],
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        msg = str(exc.detail)
        if exc.status_code == 404:
            msg = f"no such endpoint: {request.method} {request.url.path}"
        return _error(exc.status_code, code, msg)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, "hub_error", f"the hub failed: {type(exc).__name__}: {exc}")

    @app.post(f"{API}/events", status_code=201, tags=["ledger"])
    async def post_events(request: Request, hub: HubDep) -> dict[str, Any]:
        """Append one signed event (``{"event", "sig"}``) or a batch (``{"events": [...]}``).

        A batch is all-or-nothing. The answer holds each entry's index and leaf hash, and
        the new signed checkpoint.
        """
        doc = await read_json(request)
        done = await run_in_threadpool(hub.submit, doc)
        return {"size": done.size, "entries": done.entries, "checkpoint": done.checkpoint}

    @app.get(f"{API}/ledger/checkpoint", response_class=PlainTextResponse, tags=["ledger"])
    def get_checkpoint(hub: HubDep) -> str:
        """The latest signed checkpoint, as a C2SP signed note (text/plain)."""
        return hub.checkpoint()

    @app.get(f"{API}/ledger/key", response_class=PlainTextResponse, tags=["ledger"])
    def get_verifier_key(hub: HubDep) -> str:
        """The hub's verifier key in signed-note verifier-key format."""
        return str(hub.verifier) + "\n"

    @app.get(f"{API}/ledger/entries", tags=["ledger"])
    def get_entries(
        hub: HubDep,
        start: Annotated[int, Query(ge=0)] = 0,
        end: Annotated[int | None, Query(ge=0)] = None,
    ) -> dict[str, Any]:
        """Entries ``[start, end)``, at most 1000 at a time: leaf bytes (base64) and event."""
        leaves = hub.entries(start, end)
        return {"size": hub.size(), "entries": [leaf.to_json() for leaf in leaves]}

    @app.get(f"{API}/ledger/proof/inclusion", tags=["ledger"])
    def get_inclusion(
        hub: HubDep,
        index: Annotated[int, Query(ge=0)],
        size: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` (default: now)."""
        return hub.inclusion(index, size)

    @app.get(f"{API}/ledger/proof/consistency", tags=["ledger"])
    def get_consistency(
        hub: HubDep,
        old: Annotated[int, Query(ge=0)],
        new: Annotated[int | None, Query(ge=0)] = None,
    ) -> dict[str, Any]:
        """RFC 9162 consistency proof that the tree of size ``new`` extends size ``old``."""
        return hub.consistency(old, new)

    @app.get(f"{API}/members", tags=["community"])
    def get_members(hub: HubDep) -> dict[str, Any]:
        """Every member, as the log's replay has them."""
        return {"members": hub.members()}

    @app.get(f"{API}/community", tags=["community"])
    def get_community(hub: HubDep) -> dict[str, Any]:
        """The community's name, origin, hub key, founder and charter."""
        row = hub.community()
        return {**row, "charter": parse(row["charter"])}

    @app.get(f"{API}/projections", tags=["ledger"])
    def get_projections(hub: HubDep) -> dict[str, Any]:
        """Every projection table, so a remote verifier can compare them with its replay."""
        return hub.projections()

    from commonweal.api.contributions import router as contributions_router

    app.include_router(contributions_router)

    from commonweal.api.models import router as models_router

    app.include_router(models_router)

    from commonweal.api.ownership import router as ownership_router

    app.include_router(ownership_router)

    from commonweal.api.governance import router as governance_router

    app.include_router(governance_router)

    @app.get("/healthz", include_in_schema=False)
    def healthz(hub: HubDep) -> dict[str, Any]:
        return {"ok": True, "size": hub.size()}

    return app
