"""Background work a serving hub does on its own: one thread per worker, woken every
``interval`` seconds, that keeps going when a round fails (the next round retries)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from commonweal.hub.core import Hub

__all__ = ["Worker"]


class Worker:
    """A daemon thread calling ``tick`` every ``interval`` seconds until ``stop``; then
    ``finish`` runs once (the last billing, say). Errors are logged, never raised."""

    name = "commonweal-worker"

    def __init__(self, hub: Hub, *, interval: float) -> None:
        self.hub = hub
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = logging.getLogger(f"commonweal.{self.name.removeprefix('commonweal-')}")

    def tick(self) -> object:
        """One round of work."""
        raise NotImplementedError

    def finish(self) -> None:
        """What to do once more when the server stops (nothing by default)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.finish()
        except Exception:
            self._log.exception("%s: the final round failed", self.name)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # keep serving; the next round tries again
                self._log.exception("%s: a round failed", self.name)
