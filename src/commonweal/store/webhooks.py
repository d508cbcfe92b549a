"""Members' webhooks: the URL a member asked the hub to push "something waits for you" to,
and what the hub last told them.

The URL is private to the member and the hub, so it lives here and never in the log.
Each push is claimed before it is sent (compare-and-set on ``notified``), so two servers
sharing one PostgreSQL database never push the same change twice; a failed push is put
back (compare-and-set again) with a later ``retry_at``, and the next round tries again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update

from commonweal.store.database import is_sqlite
from commonweal.store.schema import webhooks

__all__ = [
    "Webhook",
    "claim",
    "clear_webhook",
    "due_webhooks",
    "get_webhook",
    "put_back",
    "sent",
    "set_webhook",
]


@dataclass(frozen=True, slots=True)
class Webhook:
    member: str
    url: str
    notified: str  # JSON: what waited when the member was last told ("" = never told)
    failures: int
    retry_at: float
    last_error: str


def _row(r: Any) -> Webhook:
    return Webhook(str(r[0]), str(r[1]), str(r[2]), int(r[3]), float(r[4]), str(r[5]))


_COLUMNS = (
    webhooks.c.member,
    webhooks.c.url,
    webhooks.c.notified,
    webhooks.c.failures,
    webhooks.c.retry_at,
    webhooks.c.last_error,
)


def set_webhook(conn: Connection, member: str, url: str) -> None:
    """Set (or replace) ``member``'s webhook; what waits now is pushed to it once."""
    if is_sqlite(conn.engine):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    fresh = {"url": url, "notified": "", "failures": 0, "retry_at": 0.0, "last_error": ""}
    stmt = insert(webhooks).values(member=member, **fresh)
    conn.execute(stmt.on_conflict_do_update(index_elements=[webhooks.c.member], set_=fresh))


def clear_webhook(conn: Connection, member: str) -> bool:
    """Forget ``member``'s webhook; whether there was one."""
    return conn.execute(delete(webhooks).where(webhooks.c.member == member)).rowcount > 0


def get_webhook(conn: Connection, member: str) -> Webhook | None:
    row = conn.execute(select(*_COLUMNS).where(webhooks.c.member == member)).first()
    return _row(row) if row is not None else None


def due_webhooks(conn: Connection, now: float) -> list[Webhook]:
    """Every webhook not waiting out a retry delay at unix time ``now``."""
    rows = conn.execute(
        select(*_COLUMNS).where(webhooks.c.retry_at <= now).order_by(webhooks.c.member)
    ).all()
    return [_row(r) for r in rows]


def claim(conn: Connection, hook: Webhook, notified: str) -> bool:
    """Mark ``notified`` as told, if nobody changed the row since ``hook`` was read; the
    caller that wins sends the push."""
    res = conn.execute(
        update(webhooks)
        .where(
            and_(
                webhooks.c.member == hook.member,
                webhooks.c.url == hook.url,
                webhooks.c.notified == hook.notified,
            )
        )
        .values(notified=notified)
    )
    return res.rowcount == 1


def sent(conn: Connection, hook: Webhook, notified: str) -> None:
    """The push of ``notified`` (claimed from ``hook``) arrived: no retry pending."""
    conn.execute(
        update(webhooks)
        .where(and_(webhooks.c.member == hook.member, webhooks.c.notified == notified))
        .values(failures=0, retry_at=0.0, last_error="")
    )


def put_back(
    conn: Connection, hook: Webhook, notified: str, *, retry_at: float, error: str
) -> None:
    """The push of ``notified`` failed: un-claim it (unless the member changed the hook
    meanwhile), count the failure and wait until ``retry_at``."""
    conn.execute(
        update(webhooks)
        .where(
            and_(
                webhooks.c.member == hook.member,
                webhooks.c.url == hook.url,
                webhooks.c.notified == notified,
            )
        )
        .values(
            notified=hook.notified,
            failures=hook.failures + 1,
            retry_at=retry_at,
            last_error=error[:500],
        )
    )
