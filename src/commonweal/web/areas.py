"""The web app's areas, one router each, in menu order (see ``render.NAV``)."""

from __future__ import annotations

from fastapi import APIRouter

from commonweal.web import docs, home, member, model

__all__ = ["ROUTERS"]

ROUTERS: list[APIRouter] = [
    home.router,
    member.router,
    model.router,
    model.fragments,
    docs.router,
]
