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


@router.get("/federated/nodes/{member}", responses=errors())
def get_node(hub: HubDep, member: str) -> dict[str, Any]:
    """A member's node as the log has it: the node key, item and per-label counts, the
    Merkle root over their salted item commitments, license, consent, status (enrolled,
    withdrawn, or out because the member left) and accepted rounds. ``node`` is null when
    the member never enrolled one."""
    return {"node": hub.federation.node(member)}
