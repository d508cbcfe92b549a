"""What the hub owes the community now: the jobs its charter schedules, or a vote ordered.

The charter's ``schedule`` section names when the hub trains, values, closes a reward
epoch, pays out and scans for label errors on its own; a passed proposal with a
``hub.run`` action orders a job at once. This module only answers "what is due", from the
state and the times the caller read from the log, so the serving hub's scheduler and a
test give the same answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from commonweal.community.state import State

__all__ = ["JOBS", "Clocks", "due_jobs", "new_since_last_version"]

JOBS = ("train", "value", "close-epoch", "payout", "quality-scan", "train-federated")


class Clocks(NamedTuple):
    """Log times the schedule depends on ("" when it never happened)."""

    now: str
    last_model: str = ""
    last_payout: str = ""
    last_scan: str = ""
    scan_ordered_done: int = -1  # the latest ordered scan the caller already ran


def _seconds(a: str, b: str) -> float:
    def t(s: str) -> datetime:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))

    return (t(b) - t(a)).total_seconds()


def _elapsed(since: str, now: str, every: int) -> bool:
    return every > 0 and (not since or _seconds(since, now) >= every)


def new_since_last_version(state: State) -> int:
    """Items accepted or withdrawn (or removed) since the newest version was trained."""
    latest = state.latest_model
    since = latest.entry if latest is not None else -1
    return sum(
        1
        for c in state.contributions.values()
        if c.updated_index > since and c.status in ("accepted", "withdrawn", "removed")
    )


def _ordered(state: State, job: str, after: int) -> bool:
    return state.orders.get(job, -1) > after


def due_jobs(state: State, clocks: Clocks) -> list[str]:
    """The jobs due now, in the order they should run."""
    charter = state.charter
    if charter is None or charter.task is None:
        return []
    cfg = charter.schedule
    latest = state.latest_model
    model_entry = latest.entry if latest is not None else -1
    changed = new_since_last_version(state)
    due = []
    if _ordered(state, "train", model_entry) or (
        changed
        and (
            (cfg.train_after_items and changed >= cfg.train_after_items)
            or _elapsed(clocks.last_model, clocks.now, cfg.train_every_seconds)
        )
    ):
        due.append("train")
    # Federated training runs only when a vote orders it (``hub.run``): it needs members'
    # nodes online, which no clock can promise.
    federated = max((state.models[v].entry for v in state.fl_versions), default=-1)
    if _ordered(state, "train-federated", federated):
        due.append("train-federated")
    valued = {v.model for v in state.valuations.values()}
    last_valuation = max((v.entry for v in state.valuations.values()), default=-1)
    if latest is not None and (
        (cfg.value_new_versions and latest.version not in valued)
        or _ordered(state, "value", last_valuation)
    ):
        due.append("value")
    last_epoch = max((e.entry for e in state.epochs.values()), default=-1)
    if len(state.valuations) > state.rewarded_valuation and (
        cfg.close_epoch_after_valuation or _ordered(state, "close-epoch", last_epoch)
    ):
        due.append("close-epoch")
    last_payout = max((p.entry for p in state.payouts.values()), default=-1)
    if state.treasury.balance > 0 and (
        _elapsed(clocks.last_payout, clocks.now, cfg.payout_every_seconds)
        or _ordered(state, "payout", last_payout)
    ):
        due.append("payout")
    if _elapsed(clocks.last_scan, clocks.now, cfg.scan_every_seconds) or _ordered(
        state, "quality-scan", clocks.scan_ordered_done
    ):
        due.append("quality-scan")
    return due
