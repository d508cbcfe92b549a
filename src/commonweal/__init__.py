"""Commonweal: a self-hostable hub for community-owned AI.

A community's members contribute, review and govern; every fact is an event in a signed,
append-only RFC 9162 Merkle log that anyone can verify and replay.

The names below load on first use, so that ``import commonweal.ledger`` (a verifier) or
``import commonweal.client`` (a member who signs and submits) never loads the hub, its
database layer or the ML stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from commonweal.errors import CommonwealError
    from commonweal.hub import Hub
    from commonweal.ledger.keys import SigningKey

__version__ = "0.1.0"

__all__ = ["CommonwealError", "Hub", "SigningKey", "__version__"]

_LAZY = {
    "CommonwealError": "commonweal.errors",
    "Hub": "commonweal.hub",
    "SigningKey": "commonweal.ledger.keys",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'commonweal' has no attribute {name!r}")
