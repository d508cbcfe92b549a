"""A clock the test moves by hand, for the hub's injected ``Hub.clock``: a vote's three
days or a revenue period then take no time at all, and nothing depends on the wall clock."""

from __future__ import annotations

from commonweal.community.governance import at

__all__ = ["Clock"]


class Clock:
    """What ``Hub.clock`` returns: a log time (``2030-01-01T00:00:00.000Z``) the test
    sets or moves on. Install it with ``monkeypatch.setattr(Hub, "clock",
    staticmethod(clock))``, or pass it to ``Hub.open``/``Hub.init`` as ``clock=`` — and
    set ``commonweal.ledger.event.now`` to it too, so members sign their events at the
    same time (the charter bounds how far an event's time may be from the log's)."""

    def __init__(self, t: str) -> None:
        self.t = t

    def __call__(self) -> str:
        return self.t

    def advance(self, seconds: int) -> None:
        self.t = at(self.t, seconds)
