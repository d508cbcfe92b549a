"""Proposals and votes, the hub's side: listing them with their tallies, executing passed
ones (anyone may ask; the server does it on its own), and what a secret ballot keeps.

The decisions themselves are the rules' (``community.governance``): this module only reads
the state and appends ``proposal.execute`` events whose tally the rules recount.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from commonweal.community.governance import current_tally, phase, seconds_between
from commonweal.community.state import Proposal, State
from commonweal.errors import CommonwealError, NotFound
from commonweal.ledger.event import SignedEvent, now

if TYPE_CHECKING:
    from commonweal.hub import Hub

__all__ = ["Executor", "describe", "executable", "execute", "list_proposals"]

log = logging.getLogger("commonweal.proposals")


def _seconds_until(t: str, when: str) -> int:
    return max(0, int(seconds_between(when, t)))


def describe(state: State, p: Proposal, when: str | None = None) -> dict[str, Any]:
    """A proposal as people read it: its phase now, time left, and the tally — hidden while
    a secret ballot is open (only the number of commitments shows)."""
    when = when or now()
    ph = phase(p, when)
    out: dict[str, Any] = {
        **p.to_json(),
        "actions": json.loads(p.actions),
        "options": json.loads(p.options),
        "quorum_counts": json.loads(p.quorum_counts),
        "tally": json.loads(p.tally) if p.tally else None,
        "phase": ph,
        "proposer_name": state.members[p.proposer].name if p.proposer in state.members else "",
    }
    if ph == "pending":
        out["seconds_left"] = _seconds_until(p.starts, when)
    elif ph == "active":
        out["seconds_left"] = _seconds_until(p.ends, when)
    elif ph == "revealing":
        out["seconds_left"] = _seconds_until(p.reveal_ends, when)
    elif ph == "timelock":
        out["seconds_left"] = _seconds_until(p.executable_after, when)
    elif ph == "executable":
        out["seconds_left"] = _seconds_until(p.expires, when)
    if p.status == "open":
        if p.secret and ph in ("pending", "active"):
            out["tally"] = None
            out["commitments"] = len(state.commits[p.proposal])
        else:
            out["tally"] = current_tally(state, p.proposal)
    t = out["tally"]
    if t is not None and p.choice == "basic":
        counted = sum(t["counts"][c] for c in out["quorum_counts"])
        out["quorum_reached"] = counted * 100 >= p.quorum_pct * p.total_power
    return out


def list_proposals(state: State, when: str | None = None) -> list[dict[str, Any]]:
    when = when or now()
    return [describe(state, p, when) for _, p in sorted(state.proposals.items())]


def executable(state: State, when: str | None = None) -> list[int]:
    """Open proposals whose timelock has run out, not lapsed, that passed."""
    when = when or now()
    out = []
    for number, p in sorted(state.proposals.items()):
        due = p.status == "open" and phase(p, when) == "executable"
        if due and current_tally(state, number)["passed"]:
            out.append(number)
    return out


def execute(hub: Hub, number: int) -> dict[str, Any]:
    """Execute a passed proposal, signed by the hub, with the tally the rules will recount."""
    hub.refresh()
    if number not in hub.state.proposals:
        raise NotFound(f"there is no proposal {number}; see `commonweal proposals`")
    logged: dict[str, Any] = {}

    def after(conn: Connection, st: State, index: int) -> list[SignedEvent]:
        body = {"proposal": number, "tally": current_tally(st, number)}
        logged.update(body)
        return [hub.sign("proposal.execute", body)]

    done = hub.append([], after=after)
    return {
        **describe(hub.state, hub.state.proposals[number]),
        "entry": done.entries[-1]["index"],
    }


class Executor:
    """A server thread that executes passed proposals once their timelock runs out, so no
    one has to remember to: every ``interval`` seconds it looks for executable ones."""

    def __init__(self, hub: Hub, interval: float = 5.0) -> None:
        self.hub = hub
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commonweal-executor", daemon=True)
        self._failed: dict[int, int] = {}  # proposal -> log size when it last failed

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def tick(self) -> list[int]:
        """Execute what is due now; return the proposals executed."""
        self.hub.refresh()
        done = []
        for number in executable(self.hub.state):
            if self._failed.get(number) == self.hub.state.size:
                continue  # nothing changed since it failed: it would fail again
            try:
                execute(self.hub, number)
                done.append(number)
            except CommonwealError as exc:
                # A member executed it first (then it is no longer listed), or its actions
                # no longer apply (a payment the treasury cannot cover): either way it would
                # fail the same way until the log changes.
                self._failed[number] = self.hub.state.size
                log.warning("proposal %s not executed: %s", number, exc.message)
        return done

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # keep serving; the next tick tries again
                log.exception("executing passed proposals failed")
