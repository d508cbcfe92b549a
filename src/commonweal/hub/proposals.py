"""Proposals and votes, the hub's side: listing them with their tallies, executing passed
ones (anyone may ask; the server does it on its own), and what a secret ballot keeps.

The decisions themselves are the rules' (``community.governance``): this module only reads
the state and appends ``proposal.execute`` events whose tally the rules recount.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from commonweal.community.governance import current_tally
from commonweal.community.views import describe_proposal, executable_proposals
from commonweal.errors import CommonwealError, NotFound
from commonweal.hub.workers import Worker

if TYPE_CHECKING:
    from commonweal.hub.core import Hub

__all__ = ["Executor", "execute"]


def execute(hub: Hub, number: int) -> dict[str, Any]:
    """Execute a passed proposal, signed by the hub, with the tally the rules will recount."""
    hub.refresh()
    if number not in hub.state.proposals:
        raise NotFound(f"there is no proposal {number}; see `commonweal proposals`")
    done = hub.record(
        "proposal.execute",
        lambda ctx: {"proposal": number, "tally": current_tally(ctx.state, number)},
    )
    state = hub.state
    return {
        **describe_proposal(state, state.proposals[number], hub.clock()),
        "entry": done.entry,
    }


class Executor(Worker):
    """A server thread that executes passed proposals once their timelock runs out, so no
    one has to remember to: every ``interval`` seconds it looks for executable ones."""

    name = "commonweal-executor"

    def __init__(self, hub: Hub, interval: float = 5.0) -> None:
        super().__init__(hub, interval=interval)
        self._failed: dict[int, int] = {}  # proposal -> log size when it last failed

    def tick(self) -> list[int]:
        """Execute what is due now; return the proposals executed."""
        self.hub.refresh()
        done = []
        for number in executable_proposals(self.hub.state, self.hub.clock()):
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
                self._log.warning("proposal %s not executed: %s", number, exc.message)
        return done
