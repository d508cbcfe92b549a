"""The web app's areas, one router each, in menu order (see ``render.NAV``)."""

from __future__ import annotations

from fastapi import APIRouter

from commonweal.web import contribute, docs, home, join, ledger, member, model, review

__all__ = ["ROUTERS"]

ROUTERS: list[APIRouter] = [
    home.router,
    member.router,
    join.router,
    contribute.router,
    review.router,
    ledger.router,
    model.router,
    model.fragments,
    docs.router,
]
