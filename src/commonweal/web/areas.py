"""The web app's areas, one router each, in menu order (see ``render.NAV``)."""

from __future__ import annotations

from fastapi import APIRouter

from commonweal.web import (
    contribute,
    decide,
    docs,
    home,
    join,
    ledger,
    me,
    member,
    members,
    model,
    review,
)

__all__ = ["ROUTERS"]

ROUTERS: list[APIRouter] = [
    home.router,
    member.router,
    join.router,
    contribute.router,
    review.router,
    me.router,
    members.router,
    model.router,
    model.fragments,
    decide.router,
    decide.fragments,
    ledger.router,
    docs.router,
]
