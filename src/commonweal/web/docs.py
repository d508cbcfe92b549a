"""The API docs at ``/docs``, with Swagger UI served from the package (FastAPI's default
page loads it from a CDN, which leaves it blank on a hub without internet)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from commonweal.web.render import templates

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    return HTMLResponse(templates.get_template("docs.html").render(request=request))
