"""The replay cache: request signatures the hub has already accepted, until they expire.

``remember`` is one statement — an insert that does nothing on a conflicting digest and
returns the row it inserted — so of two server processes handed the same signed request
at once, exactly one gets the row back: PostgreSQL makes the second wait on the first's
uncommitted key and then skip it; SQLite runs writers one at a time. No exception, so a
replay costs the same one statement as a first use.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete

from commonweal.store.database import is_sqlite
from commonweal.store.schema import seen_requests

__all__ = ["prune", "remember"]


def remember(conn: Connection, digest: bytes, expires: int) -> bool:
    """Record the signed request ``digest`` until the unix time ``expires``; False (and
    nothing changed) if it is already recorded: a replay."""
    if is_sqlite(conn.engine):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    stmt = (
        insert(seen_requests)
        .values(digest=digest, expires=expires)
        .on_conflict_do_nothing(index_elements=[seen_requests.c.digest])
        .returning(seen_requests.c.digest)
    )
    return conn.execute(stmt).first() is not None


def prune(conn: Connection, now: int) -> int:
    """Forget every request whose signature expired before the unix time ``now`` (the
    window check refuses those anyway); how many rows went."""
    res = conn.execute(delete(seen_requests).where(seen_requests.c.expires < now))
    return int(res.rowcount or 0)
