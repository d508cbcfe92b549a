"""Routes for federated members: where the hub's SuperLink is, and whose nodes take part."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from commonweal.api.deps import HubDep
from commonweal.api.spec import errors

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["federated"])


@router.get("/federated", responses=errors())
def get_federated(hub: HubDep) -> dict[str, Any]:
    """The charter's ``[federated]`` section and every enrolled node; while the hub serves
    a federation (``serve --federated``), ``superlink`` is where members' nodes connect and
    ``ca_pem`` the certificate authority that signed the SuperLink's TLS certificate
    (``ca_sha256`` is its hash, to compare with what the hub's operator publishes)."""
    return hub.federation.info()
