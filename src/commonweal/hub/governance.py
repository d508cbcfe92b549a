"""``hub.governance``: proposals with their tallies now, and executing passed ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from commonweal.community import views
from commonweal.community.governance import check_actions
from commonweal.community.schedule import due_jobs
from commonweal.errors import NotFound
from commonweal.hub.proposals import Executor, execute
from commonweal.hub.schedule import Scheduler

if TYPE_CHECKING:
    from commonweal.hub.core import Hub

__all__ = ["GovernanceArea"]


class GovernanceArea:
    """Proposals, votes and execution (``hub.governance``)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def proposals(self) -> list[dict[str, Any]]:
        """Every proposal with its phase, tally and time left, as of the hub's clock."""
        return views.list_proposals(self._hub.state, self._hub.clock())

    def proposal(self, number: int) -> dict[str, Any]:
        """One proposal as people read it (NotFound if there is none)."""
        state = self._hub.state
        p = state.proposals.get(number)
        if p is None:
            raise NotFound(f"there is no proposal {number}")
        return views.describe_proposal(state, p, self._hub.clock())

    def page(self, offset: int = 0, limit: int = 20) -> tuple[list[dict[str, Any]], int]:
        """A page of proposals, open ones first, and how many there are in all."""
        return views.proposals_page(self._hub.state, self._hub.clock(), offset, limit)

    def power(self, number: int) -> list[dict[str, Any]]:
        """Every member's voting power on proposal ``number``, and why (NotFound if there
        is no such proposal)."""
        return views.explain_power(self._hub.state, number)

    def check_actions(self, actions: Any) -> list[str]:
        """Check a proposal's actions as ``proposal.create`` would now, without writing
        anything; their types, or the rules' error (InvalidInput and kin)."""
        return check_actions(self._hub.state, actions)

    def executable(self) -> list[int]:
        """Open proposals that passed and whose timelock has run out."""
        return views.executable_proposals(self._hub.state, self._hub.clock())

    def executor(self, interval: float = 5.0) -> Executor:
        """The serving hub's thread (not started) that executes passed proposals once
        their timelock has run out."""
        return Executor(self._hub, interval)

    def scheduler(self, interval: float = 10.0) -> Scheduler:
        """The serving hub's thread (not started) that runs the jobs the charter schedules
        or a vote ordered: train, value, close an epoch, pay out, scan for label errors."""
        return Scheduler(self._hub, interval)

    def due(self) -> list[str]:
        """The hub's jobs due now (what the scheduler would run)."""
        return due_jobs(self._hub.state, Scheduler(self._hub).clocks())

    def execute(self, number: int) -> dict[str, Any]:
        """Execute a passed proposal, signed by the hub (the rules recount its tally)."""
        return execute(self._hub, number)
