"""``hub.webhooks``: a member's optional webhook, and the serving hub's thread that pushes
"something new waits for you" to it (for communities that want pushes to chat or email).

What waits is ``Hub.waiting_for``: items to review, proposals to vote on, secret ballots to
reveal, a new payout. Every ``interval`` seconds the notifier compares that with what it
last told each member and POSTs only what is new (``news``), at most once per change. The
URL is private to the member and the hub (a hub-local table, never the log). Because a
hub fetching member-given URLs is a classic server-side request forgery, a push goes only
to http(s), follows no redirect, waits a few seconds at most and never reads the answer's
body; a failed push is retried with exponential backoff (capped at an hour), and the
thread never holds up a request.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from commonweal import __version__
from commonweal.errors import Forbidden, InvalidInput
from commonweal.hub.workers import Worker
from commonweal.store import webhooks as store
from commonweal.store.database import read_connection, write_connection

if TYPE_CHECKING:
    from commonweal.hub.core import Hub

__all__ = ["MAX_URL", "Notifier", "WebhooksArea", "check_url", "news", "snapshot"]

MAX_URL = 2000
TIMEOUT = 5.0
MAX_BACKOFF = 3600.0


def check_url(url: Any) -> str:
    """The webhook URL, or InvalidInput saying what is wrong with it."""
    if not isinstance(url, str) or not url:
        raise InvalidInput('send {"url": "https://..."}: the webhook URL is missing')
    if len(url) > MAX_URL:
        raise InvalidInput(f"the webhook URL is {len(url)} characters; the limit is {MAX_URL}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidInput("the webhook URL holds spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"the webhook URL must start with https:// (or http://); got {url!r}")
    if not parts.hostname:
        raise InvalidInput(f"the webhook URL {url!r} names no host")
    if parts.username or parts.password:
        raise InvalidInput("the webhook URL must not hold a user name or password")
    return url


def snapshot(waiting: dict[str, Any]) -> dict[str, Any]:
    """What of ``Hub.waiting_for``'s answer identifies a change: counts and numbers."""
    payout = waiting.get("payout")
    return {
        "reviews": int(waiting.get("reviews", 0)),
        "vote": sorted(p["proposal"] for p in waiting.get("vote", [])),
        "reveal": sorted(p["proposal"] for p in waiting.get("reveal", [])),
        "payout": payout["payout"] if payout else None,
    }


def news(told: dict[str, Any], waiting: dict[str, Any]) -> dict[str, Any]:
    """What waits now that the member was not told of (empty when nothing is new): more
    items to review than last time, proposals and reveals not told before, a new payout."""
    new: dict[str, Any] = {}
    if waiting.get("reviews", 0) > told.get("reviews", 0):
        new["reviews"] = waiting["reviews"]
    for part in ("vote", "reveal"):
        fresh = [p for p in waiting.get(part, []) if p["proposal"] not in told.get(part, [])]
        if fresh:
            new[part] = fresh
    payout = waiting.get("payout")
    if payout and payout["payout"] != told.get("payout"):
        new["payout"] = payout
    return new


def _words(new: dict[str, Any]) -> str:
    """The news in one line, for chats that show a message's ``text``."""
    said = []
    if "reviews" in new:
        n = new["reviews"]
        said.append(f"{n} item{'s' if n != 1 else ''} wait{'' if n != 1 else 's'} for your review")
    said += [f"vote on proposal {p['proposal']}: {p['title']}" for p in new.get("vote", [])]
    said += [
        f"reveal your ballot on proposal {p['proposal']} before {p['reveal_ends']}"
        for p in new.get("reveal", [])
    ]
    if "payout" in new:
        said.append(f"payout {new['payout']['payout']} paid you {new['payout']['credits']} credits")
    return "; ".join(said)


class WebhooksArea:
    """Members' webhooks (``hub.webhooks``)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def _member(self, member: str) -> None:
        if not self._hub.state.is_active(member):
            raise Forbidden("only an active member may have a webhook")

    def set(self, member: str, url: Any) -> dict[str, Any]:
        """Set ``member``'s webhook to ``url`` (checked); what waits now is pushed once."""
        self._member(member)
        url = check_url(url)
        with write_connection(self._hub.engine) as conn:
            store.set_webhook(conn, member, url)
        return self.get(member)

    def clear(self, member: str) -> dict[str, Any]:
        """Forget ``member``'s webhook (nothing is pushed any more)."""
        with write_connection(self._hub.engine) as conn:
            store.clear_webhook(conn, member)
        return self.get(member)

    def get(self, member: str) -> dict[str, Any]:
        """``member``'s webhook as only they may see it: URL, failures, last error."""
        with read_connection(self._hub.engine) as conn:
            hook = store.get_webhook(conn, member)
        if hook is None:
            return {"member": member, "url": None}
        return {
            "member": member,
            "url": hook.url,
            "failures": hook.failures,
            "last_error": hook.last_error or None,
        }

    def notifier(self, interval: float = 5.0) -> Notifier:
        """The serving hub's thread (not started) that pushes what is new to webhooks."""
        return Notifier(self._hub, interval)


class Notifier(Worker):
    """Every ``interval`` seconds, push what newly waits for each member with a webhook."""

    name = "commonweal-notifier"

    def __init__(self, hub: Hub, interval: float = 5.0) -> None:
        super().__init__(hub, interval=interval)
        self._http = httpx.Client(
            timeout=TIMEOUT,
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment between the hub and the URL
            headers={"User-Agent": f"Commonweal/{__version__} webhook"},
        )

    def tick(self) -> int:
        """One round; the number of pushes that arrived."""
        hub = self.hub
        hub.refresh(max_age=1.0)
        state = hub.state
        with read_connection(hub.engine) as conn:
            hooks = store.due_webhooks(conn, time.time())
        arrived = 0
        for hook in hooks:
            if not state.is_active(hook.member):
                continue
            waiting = hub.waiting_for(hook.member)
            told = json.loads(hook.notified) if hook.notified else {}
            now_told = json.dumps(snapshot(waiting), sort_keys=True)
            if now_told == hook.notified:
                continue
            new = news(told, waiting)
            with write_connection(hub.engine) as conn:
                if not store.claim(conn, hook, now_told):
                    continue  # the member changed it, or another server took this push
            if not new:
                continue  # less waits than before: remember it, tell nobody
            arrived += self._push(hook, now_told, new, waiting)
        return arrived

    def _push(self, hook: store.Webhook, told: str, new: dict[str, Any], w: Any) -> int:
        state = self.hub.state
        doc = {
            "community": state.charter.name if state.charter else None,
            "origin": self.hub.origin,
            "member": hook.member,
            "text": _words(new),
            "new": new,
            "waiting": w,
        }
        error = ""
        try:
            with self._http.stream("POST", hook.url, json=doc) as resp:
                if not 200 <= resp.status_code < 300:
                    error = f"the webhook answered {resp.status_code} (redirects are not followed)"
        except httpx.HTTPError as exc:
            error = f"the webhook could not be reached: {type(exc).__name__}: {exc}"
        with write_connection(self.hub.engine) as conn:
            if not error:
                store.sent(conn, hook, told)
                return 1
            delay = min(self.interval * 2 ** (hook.failures + 1), MAX_BACKOFF)
            store.put_back(conn, hook, told, retry_at=time.time() + delay, error=error)
        self._log.warning("webhook of %s…: %s", hook.member[:16], error)
        return 0

    def finish(self) -> None:
        self._http.close()
