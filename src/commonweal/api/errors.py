"""Every error leaves the API in one JSON shape, ``{"error": {"code", "message",
"detail"}}`` (``CommonwealError.to_dict``): the hub's own errors with their status,
request-validation errors as 400, unknown routes, methods a path does not take (405 with
``Allow``, as RFC 9110 asks), and anything unexpected as a 500 that names the failure. A
429 that knows when to retry says so in ``Retry-After``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from commonweal.errors import CommonwealError, HubError, InvalidInput, NotFound, QuotaExceeded

__all__ = ["HtmlErrors", "install", "retry_headers"]


# A browser asking for a page (not the API) gets the error as a page; set by ``web.mount``.
HtmlErrors = Callable[[Request, CommonwealError, int], Response]


def _respond(
    exc: CommonwealError,
    status: int | None = None,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    code = status or exc.status
    headers = dict(headers or {})
    if isinstance(exc, QuotaExceeded) and exc.retry_after is not None:
        headers.update(retry_headers(exc))
    if request is not None and _wants_page(request):
        html: HtmlErrors | None = getattr(request.app.state, "html_errors", None)
        if html is not None:
            page = html(request, exc, code)
            page.headers.update(headers)
            return page
    return JSONResponse(exc.to_dict(), status_code=code, headers=headers or None)


def retry_headers(exc: CommonwealError) -> dict[str, str]:
    """``Retry-After`` for a 429 that knows when its limit resets (RFC 9110, seconds)."""
    if isinstance(exc, QuotaExceeded) and exc.retry_after is not None:
        return {"Retry-After": str(max(1, int(exc.retry_after)))}
    return {}


def _wants_page(request: Request) -> bool:
    path = request.url.path
    return (
        not path.startswith(("/api/", "/w/", "/openapi"))
        and request.method in ("GET", "HEAD")
        and "text/html" in request.headers.get("accept", "")
    )


def _allowed_methods(request: Request, exc: StarletteHTTPException) -> str:
    """Every method the API document gives this path (a path's GET, PUT and DELETE are
    separate routes, and the router's 405 names only the first one's); for a page, the
    router's own answer."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(
        request.app.state, "allowed_methods", None
    )
    if table is None:
        table = [
            (compile_path(path)[0], {m.upper() for m in item})
            for path, item in request.app.openapi().get("paths", {}).items()
        ]
        request.app.state.allowed_methods = table
    methods = {m for regex, ms in table if regex.match(request.url.path) for m in ms}
    if not methods:
        return (exc.headers or {}).get("Allow", "")
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def _commonweal_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CommonwealError)
    return _respond(exc, request=request)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errs = exc.errors()
    first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    detail: Any = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in errs]
    return _respond(InvalidInput(f"{where}{_given(first)}: {first['msg']}", detail=detail))


def _given(error: Any) -> str:
    """`` 'abc'`` — the value refused, when it is short enough to echo back (a caller
    reading "path.version 'abc': …" sees which of their inputs was wrong)."""
    value = error.get("input")
    if isinstance(value, str | int) and not isinstance(value, bool) and len(str(value)) <= 80:
        return f" {value!r}"
    return ""


class _MethodNotAllowed(CommonwealError):
    code = "method_not_allowed"
    status = 405


class _HttpError(CommonwealError):
    code = "http_error"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        what = "endpoint" if request.url.path.startswith("/api/") else "page"
        return _respond(
            NotFound(f"no such {what}: {request.method} {request.url.path}"), request=request
        )
    if exc.status_code == 405:
        allow = _allowed_methods(request, exc)
        return _respond(
            _MethodNotAllowed(
                f"{request.method} is not a method {request.url.path} takes; it takes {allow}"
            ),
            headers={"Allow": allow},
        )
    return _respond(_HttpError(str(exc.detail)), exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> Response:
    return _respond(HubError(f"the hub failed: {type(exc).__name__}: {exc}"), request=request)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""
    app.add_exception_handler(CommonwealError, _commonweal_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
