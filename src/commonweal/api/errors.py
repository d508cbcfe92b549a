"""Every error leaves the API in one JSON shape, ``{"error": {"code", "message",
"detail"}}`` (``CommonwealError.to_dict``): the hub's own errors with their status,
request-validation errors as 400, unknown routes and methods, and anything unexpected as
a 500 that names the failure."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from commonweal.errors import CommonwealError, HubError, InvalidInput, NotFound

__all__ = ["install"]


def _respond(exc: CommonwealError, status: int | None = None) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=status or exc.status)


async def _commonweal_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CommonwealError)
    return _respond(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errs = exc.errors()
    first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    detail: Any = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in errs]
    return _respond(InvalidInput(f"{where}: {first['msg']}", detail=detail))


class _MethodNotAllowed(CommonwealError):
    code = "method_not_allowed"
    status = 405


class _HttpError(CommonwealError):
    code = "http_error"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return _respond(NotFound(f"no such endpoint: {request.method} {request.url.path}"))
    if exc.status_code == 405:
        return _respond(_MethodNotAllowed(str(exc.detail)))
    return _respond(_HttpError(str(exc.detail)), exc.status_code)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    return _respond(HubError(f"the hub failed: {type(exc).__name__}: {exc}"))


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""
    app.add_exception_handler(CommonwealError, _commonweal_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
