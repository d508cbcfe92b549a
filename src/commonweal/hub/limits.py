"""``hub.limits``: how fast a served hub lets one member append and one address ask.

A hub run by ``commonweal serve`` (``create_app(..., limited=True)``) refuses, with 429 and
``Retry-After``, what passes the charter's ``limits.events_per_member_per_minute`` and
``limits.requests_per_ip_per_minute``. Windows are fixed UTC minutes of the hub's clock.
A batch with more of one member's events than a whole minute takes is refused with 413 at
once: no wait would let it in.

- **Events per member** are counted in the database (``store.counters``), inside the
  append's own transaction: the conditional upsert that takes them commits with the
  events or rolls back with them, so the limit holds across every server process of the
  hub and costs no extra commit. Refused batches (a rule said no) count nothing.
- **Requests per address** are counted in each process's memory. Counting every request
  in the database would add a write — on SQLite, a serialized fsync — to every read the
  hub serves, to guard against a flood the per-member limit already stops where it
  matters (the log). With N server processes an address may make up to N times the
  limit, which still stops a flood; the per-member limit is the one that is exact.

The hub's operator (an embedded hub: the CLI on a hub directory, tests) is not limited.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from commonweal.community.governance import at
from commonweal.errors import RateLimited, TooLarge
from commonweal.store import counters
from commonweal.store.database import write_connection

if TYPE_CHECKING:
    from commonweal.community.state import State
    from commonweal.hub.core import Hub

__all__ = ["LimitsArea", "minute_of", "seconds_to_next_day", "seconds_to_next_minute"]

EVENTS = "events"
# Windows older than this are pruned (the try limits keep a day's window).
KEEP_SECONDS = 2 * 86400


def minute_of(log_time: str) -> str:
    """The fixed window a log time (``2030-01-01T12:34:56.789Z``) falls in: its minute."""
    return log_time[:16]


def seconds_to_next_minute(log_time: str) -> int:
    """Seconds until the minute of ``log_time`` ends (at least 1)."""
    return max(1, 60 - int(log_time[17:19]))


def seconds_to_next_day(log_time: str) -> int:
    """Seconds until the UTC day of ``log_time`` ends (at least 1)."""
    h, m, s = int(log_time[11:13]), int(log_time[14:16]), int(log_time[17:19])
    return max(1, 86400 - (h * 3600 + m * 60 + s))


class LimitsArea:
    """The served hub's rate limits (``hub.limits``); ``enforced`` is off until
    ``create_app(..., limited=True)`` turns it on."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.enforced = False
        self._lock = threading.Lock()
        self._ip_minute = ""
        self._ip_counts: Counter[str] = Counter()

    def take_events(
        self, conn: Connection, state: State, actors: Iterable[str], log_time: str
    ) -> None:
        """Count a batch's member-signed events (their ``actors``) in the append's
        transaction ``conn``; RateLimited (the caller rolls back) if a member would pass
        ``limits.events_per_member_per_minute``."""
        if not self.enforced or state.charter is None:
            return
        limit = state.charter.limits.events_per_member_per_minute
        period = minute_of(log_time)
        for actor, n in sorted(Counter(a for a in actors if a != state.hub_key).items()):
            if n > limit:
                # No minute will ever take it: waiting for the next one would only make
                # the member wait twice for the same refusal.
                raise TooLarge(
                    f"this batch has {n} events from {actor[:12]}…, and a member may add "
                    f"at most {limit} a minute: send them in batches of {limit} or fewer"
                )
            if counters.take(conn, EVENTS, actor, period, n, limit) is None:
                raise RateLimited(
                    f"too many events from {actor[:12]}…: a member may add {limit} a minute "
                    f"(this batch has {n}); wait and send it again",
                    retry_after=seconds_to_next_minute(log_time),
                )

    def take_request(self, ip: str) -> None:
        """Count one request from ``ip`` in this process; RateLimited past
        ``limits.requests_per_ip_per_minute``."""
        charter = self._hub.state.charter
        if not self.enforced or charter is None:
            return
        limit = charter.limits.requests_per_ip_per_minute
        now = self._hub.clock()
        minute = minute_of(now)
        with self._lock:
            if minute != self._ip_minute:
                # A new window: last minute's counts are no longer needed.
                self._ip_minute, self._ip_counts = minute, Counter()
            if self._ip_counts[ip] >= limit:
                raise RateLimited(
                    f"too many requests from {ip}: at most {limit} a minute; wait and retry",
                    retry_after=seconds_to_next_minute(now),
                )
            self._ip_counts[ip] += 1

    def prune(self) -> int:
        """Forget counter windows that started over two days ago (the server's biller
        calls this); how many went. Window keys are log-time prefixes, so one comparison
        with a log time serves minutes and days alike."""
        before = at(self._hub.clock(), -KEEP_SECONDS)
        with write_connection(self._hub.counting) as conn:
            return counters.prune(conn, before)
