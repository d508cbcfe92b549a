"""``hub.federation``: what nodes and members need to know about the hub's federation.

The SuperLink itself is supervised by ``commonweal.federated.service`` (``serve
--federated``), which writes where it listens to ``federated/superlink.json``; this area
only reads that file and the CA certificate beside it, so the API can tell a member's node
where to connect and which certificate to trust without importing Flower.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from commonweal.community.views import federation, member_node
from commonweal.errors import Conflict

if TYPE_CHECKING:
    from commonweal.hub.core import Hub

__all__ = ["FederationArea"]


class FederationArea:
    """The federation's public facts (``hub.federation``)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        # Set by ``serve --federated`` (the SuperLink lives in that process): how a
        # passed ``hub.run`` proposal's ``train-federated`` job trains.
        self.trainer: Callable[[], dict[str, Any]] | None = None

    def train(self) -> dict[str, Any]:
        """Train a federated version with the served federation (the scheduler's job)."""
        if self.trainer is None:
            raise Conflict(
                "this hub runs no federation: serve it with `commonweal serve --federated`, "
                "or run `commonweal train --federated`"
            )
        return self.trainer()

    def info(self) -> dict[str, Any]:
        """The charter's ``[federated]`` section, the nodes, and — while ``serve
        --federated`` runs — the SuperLink's address and the CA that signed its
        certificate (the nodes check the hub against it; its SHA-256 is shown so a
        member can compare it with what the hub's operator tells them)."""
        import hashlib

        out = federation(self._hub.state)
        out["superlink"] = None
        out["superlink_instance"] = None
        out["ca_pem"] = None
        out["ca_sha256"] = None
        d = self._hub.directory
        if d is None:
            return out
        served = d / "federated" / "superlink.json"
        ca = d / "federated" / "ca.pem"
        if served.exists() and ca.exists():
            try:
                info = json.loads(served.read_text())
                pem = ca.read_text()
                registry = json.loads((d / "federated" / "nodes.json").read_text())
            except (OSError, ValueError):
                return out
            # Registered with the SuperLink now (it follows the log within seconds): a
            # node that connects before its key is registered is refused.
            for n in out["nodes"]:
                n["registered"] = n["member"] in registry
            out["superlink"] = info.get("public") or info.get("address")
            out["superlink_instance"] = info.get("instance")
            out["ca_pem"] = pem
            out["ca_sha256"] = hashlib.sha256(pem.encode()).hexdigest()
        return out

    def node(self, member: str) -> dict[str, Any] | None:
        """A member's node as the log has it (None if they never enrolled)."""
        return member_node(self._hub.state, member)
