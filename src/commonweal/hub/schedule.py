"""The serving hub's scheduler: it runs the jobs the charter schedules, or a vote ordered
(``community.schedule`` says which are due), so the community runs without anyone at the
hub's shell. A job that fails (too little data to train, nothing new to reward) is not
tried again until the log changes, and the reason is logged for the operator."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from commonweal.community.schedule import Clocks, due_jobs
from commonweal.errors import CommonwealError
from commonweal.hub.workers import Worker

if TYPE_CHECKING:
    from commonweal.hub.core import Hub

__all__ = ["Scheduler"]


@dataclass
class _ScanMemory:
    """When this hub last scanned for label errors, and the latest ordered scan it ran.
    A scan that finds nothing leaves no entry in the log, so the hub remembers it: one
    memory per open hub, shared by its scheduler and ``hub.governance.due()`` (a restarted
    hub scans once more, which flags nothing twice)."""

    last_scan: str = ""
    ordered_done: int = -1


_SCANS: weakref.WeakKeyDictionary[Any, _ScanMemory] = weakref.WeakKeyDictionary()


class Scheduler(Worker):
    """Every ``interval`` seconds, run what is due (see the module)."""

    name = "commonweal-scheduler"

    def __init__(self, hub: Hub, interval: float = 10.0) -> None:
        super().__init__(hub, interval=interval)
        self._failed: dict[str, int] = {}  # job -> log size when it last failed
        self._scans = _SCANS.setdefault(hub, _ScanMemory())
        self.jobs: dict[str, Callable[[], Any]] = {
            "train": lambda: hub.models.train(incremental=True),
            "value": hub.ownership.value,
            "close-epoch": hub.ownership.close_epoch,
            "payout": hub.ownership.pay_out,
            "quality-scan": self._scan,
            "train-federated": hub.federation.train,
        }

    def _scan(self) -> Any:
        self._scans.ordered_done = self.hub.state.orders.get("quality-scan", -1)
        self._scans.last_scan = self.hub.clock()
        return self.hub.data.scan_labels()

    def clocks(self) -> Clocks:
        """The log times the schedule depends on."""
        state = self.hub.state
        latest = state.latest_model
        payouts = state.payouts
        last_payout = max((p.entry for p in payouts.values()), default=None)
        return Clocks(
            now=self.hub.clock(),
            last_model=latest.log_time if latest is not None else "",
            last_payout=self._time_of(last_payout),
            last_scan=self._scans.last_scan,
            scan_ordered_done=self._scans.ordered_done,
        )

    def _time_of(self, entry: int | None) -> str:
        if entry is None:
            return ""
        return self.hub.log.entries(entry, entry + 1)[0].log_time

    def tick(self) -> list[str]:
        """Run every job due now, in order; return the ones that ran."""
        ran = []
        self.hub.refresh()
        for job in due_jobs(self.hub.state, self.clocks()):
            if self._failed.get(job) == self.hub.state.size:
                continue  # nothing changed since it failed: it would fail again
            try:
                self.jobs[job]()
                ran.append(job)
            except CommonwealError as exc:
                self._failed[job] = self.hub.state.size
                self._log.warning("scheduled %s not run: %s", job, exc.message)
        return ran
