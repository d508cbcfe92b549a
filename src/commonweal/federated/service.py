"""The hub's side of a federation: its SuperLink, and the enrolled nodes registered there.

Registration follows the log. A member's ``federated.enroll`` puts their node key on the
SuperLink (Flower's SuperNode authentication: only registered keys may connect); their
``federated.withdraw``, leaving or removal unregisters it, and Flower disconnects the node
within seconds. The SuperLink keeps its state in memory, so each start registers the
enrolled nodes afresh; ``nodes.json`` maps the node ids it handed out to members, for a
``train --federated`` run from another process while ``serve --federated`` runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commonweal.community.federated import node_status
from commonweal.errors import Conflict, HubError
from commonweal.federated.superlink import SuperLink
from commonweal.ledger.files import write_private

if TYPE_CHECKING:
    from commonweal.federated.training import Progress
    from commonweal.hub.core import Hub

__all__ = ["Federation", "served_link"]

_log = logging.getLogger(__name__)
SERVED_FILE = "superlink.json"
REGISTRY_FILE = "nodes.json"
STRAGGLERS = 15.0


def federated_dir(hub: Hub) -> Path:
    if hub.directory is None:
        raise Conflict("federated training needs the hub's directory (open the hub by its path)")
    return hub.directory / "federated"


def _write_private(path: Path, doc: Any) -> None:
    write_private(path, json.dumps(doc, indent=1, sort_keys=True))


def served_link(hub: Hub) -> tuple[SuperLink, dict[str, Any]] | None:
    """The SuperLink ``serve --federated`` runs for this hub, if one answers."""
    d = federated_dir(hub)
    path = d / SERVED_FILE
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    link = SuperLink(d, host=info["host"], port=int(info["port"]))
    return (link, info) if link.answers() else None


class Federation:
    """A SuperLink this process supervises, kept in step with the log's enrollments."""

    def __init__(
        self,
        hub: Hub,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hosts: list[str] | None = None,
        link: SuperLink | None = None,
    ) -> None:
        self.hub = hub
        self.dir = federated_dir(hub)
        self.link = link or SuperLink(self.dir, host=host, port=port, hosts=hosts)
        self._owned = link is None
        self._hosts = list(hosts or [])
        self._registry: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def attach(cls, hub: Hub) -> Federation | None:
        """The federation a ``serve --federated`` of this hub runs, if any (read-only
        registry: the serving process keeps it)."""
        found = served_link(hub)
        if found is None:
            return None
        fed = cls(hub, link=found[0])
        fed._registry = json.loads((fed.dir / REGISTRY_FILE).read_text())
        return fed

    # -- the process -----------------------------------------------------------------

    def start(self, *, serve: bool = False) -> None:
        """Start the SuperLink and register the enrolled nodes; with ``serve``, announce
        it (``GET /federated`` tells nodes where it is) and keep it in step with the log."""
        self.link.start()
        self._registry = {}
        self.sync()
        if serve:
            # Where members' nodes dial: the first name the certificate was made for, or
            # the address it listens on.
            public = f"{self._hosts[0]}:{self.link.port}" if self._hosts else self.link.address
            _write_private(
                self.dir / SERVED_FILE,
                {
                    "host": self.link.host,
                    "port": self.link.port,
                    "address": self.link.address,
                    "public": public,
                    # Which start of the SuperLink this is: members' nodes reconnect
                    # afresh when it changes (see ``node.run_supernode``).
                    "instance": secrets.token_hex(8),
                },
            )
            self._thread = threading.Thread(target=self._follow, name="federation", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / SERVED_FILE).unlink()
        if self._owned:
            self.link.stop()

    def __enter__(self) -> Federation:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _follow(self) -> None:
        while not self._stop.wait(2.0):
            try:
                self.hub.refresh(max_age=1.0)
                self.sync()
            except Exception as exc:  # keep following: the next pass retries
                _log.warning("federation: could not sync nodes with the log: %s", exc)

    # -- nodes ---------------------------------------------------------------------------

    def sync(self) -> dict[str, str]:
        """Register every enrolled node the SuperLink lacks, unregister every other one;
        Flower node id -> member key of the registered ones."""
        with self._lock:
            state = self.hub.state
            want = {
                m: n.node_key for m, n in state.nodes.items() if node_status(state, m) == "enrolled"
            }
            changed = False
            for member, entry in list(self._registry.items()):
                if want.get(member) != entry["key"]:
                    try:
                        self.link.unregister(int(entry["node"]))
                    except HubError as exc:
                        _log.warning("federation: unregistering a node failed: %s", exc)
                    del self._registry[member]
                    changed = True
            for member, key in want.items():
                if member in self._registry:
                    continue
                node = self.link.register(key, f"m-{member[:16]}")
                self._registry[member] = {"node": str(node), "key": key}
                changed = True
            if changed or not (self.dir / REGISTRY_FILE).exists():
                _write_private(self.dir / REGISTRY_FILE, self._registry)
            return {e["node"]: m for m, e in self._registry.items()}

    def online(self) -> dict[str, str]:
        """Registered nodes that are connected now: node id -> member key."""
        if not self._owned:
            # Attached to a served federation: its process registers nodes as members
            # enroll, and writes them down; read what it has registered by now.
            with contextlib.suppress(OSError, ValueError):
                self._registry = json.loads((self.dir / REGISTRY_FILE).read_text())
        by_node = {e["node"]: m for m, e in self._registry.items()}
        return {
            str(n["node-id"]): by_node[str(n["node-id"])]
            for n in self.link.nodes()
            if str(n.get("status")) == "online" and str(n["node-id"]) in by_node
        }

    def _enrolled(self) -> int:
        """How many members' nodes the log says are enrolled now."""
        self.hub.refresh(max_age=1.0)
        state = self.hub.state
        return sum(1 for m in state.nodes if node_status(state, m) == "enrolled")

    def wait_for_nodes(self, count: int, *, timeout: float = 60.0) -> dict[str, str]:
        """The enrolled nodes online: every registered one, or — once ``count`` are
        online — those that connect within ``STRAGGLERS`` seconds more (a member whose
        machine is off does not hold the others up for long); at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        enough_at: float | None = None
        while True:
            online = self.online()
            now = time.monotonic()
            if len(online) >= count and enough_at is None:
                enough_at = now
            if (
                len(online) >= max(len(self._registry), self._enrolled())
                or now > deadline
                or (enough_at is not None and now - enough_at > STRAGGLERS)
            ):
                return online
            time.sleep(1.0)

    # -- training ------------------------------------------------------------------------

    def train(self, *, progress: Progress | None = None, wait: float = 60.0) -> dict[str, Any]:
        """Train a federated version with the nodes online (waiting up to ``wait`` s for
        the charter's minimum)."""
        from commonweal.federated.training import train

        self.hub.refresh()
        charter = self.hub.state.charter
        need = charter.federated.min_clients if charter is not None else 1
        if self._owned:
            self.sync()
        online = self.wait_for_nodes(need, timeout=wait)
        if len(online) < need:
            raise Conflict(
                f"{len(online)} enrolled node(s) are online and the charter needs {need} "
                "(federated.min_clients): ask members to run `commonweal node run`"
            )
        # Every registered node, not only those online now: Flower sends each round to
        # whoever is connected, and a node that connects mid-run is still its member's.
        registered = {e["node"]: m for m, e in self._registry.items()}
        return train(
            self.hub,
            self.link,
            nodes=registered,
            progress=progress,
            registry=self.dir / REGISTRY_FILE,
        )
