"""``hub.signatures``: each member-signed request is accepted once.

A request signature (``wire.auth_header``) is good for five minutes either side of its
time, so without memory a captured header could be sent again within that window. The
hub remembers the digest of every signature it accepted until its window has passed
(``store.replay``), in the database, so a second server process of the same hub refuses
the copy too. Clients sign each request (and each retry) afresh with a random nonce, so
this never refuses a legitimate request.

Rows are written through ``hub.counting``: commits that do not wait for the disk, as for
the rate counters. A crash of the machine (not of the server process) may forget the
last fraction of a second of signatures; those could then be replayed for what remains
of their five minutes — the price of not adding an fsync to every signed read.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from commonweal.errors import Unauthorized
from commonweal.store import replay
from commonweal.store.database import write_connection

if TYPE_CHECKING:
    from commonweal.hub.core import Hub
    from commonweal.wire import SignedRequest

__all__ = ["SignaturesArea"]

# How often (seconds) one process deletes expired rows, in the transaction of a use.
PRUNE_EVERY = 60.0
# Rows are kept this much past their expiry: a server whose clock runs ahead of another's
# must not forget a signature the other (whose clock is behind) would still accept.
CLOCK_MARGIN = 60


class SignaturesArea:
    """The hub's memory of used request signatures (``hub.signatures``)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._lock = threading.Lock()
        self._pruned_at = 0.0

    def use(self, signed: SignedRequest, *, now: float | None = None) -> None:
        """Accept ``signed`` once; Unauthorized if this hub (any of its processes)
        accepted it before."""
        now = time.time() if now is None else now
        with self._lock:
            due = now - self._pruned_at >= PRUNE_EVERY
            if due:
                self._pruned_at = now
        with write_connection(self._hub.counting) as conn:
            if due:
                replay.prune(conn, int(now) - CLOCK_MARGIN)
            fresh = replay.remember(conn, signed.digest, signed.expires)
        if not fresh:
            raise Unauthorized(
                "this request's signature was already used: a signed request is accepted "
                "once (sign each request afresh; the SDK, CLI and web app do)"
            )
