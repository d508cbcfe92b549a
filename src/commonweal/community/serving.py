"""The rules for using the community's model: API keys for consumers, and revenue.

Consumers call the model with an API key. The log holds only the SHA-256 of each key's
secret, who issued it and its daily quota. Calls are metered by the hub and billed in
periodic ``revenue.record`` events — one per period, not one per call — at the charter's
price per call; the treasury's balance is the sum of what those events credited (less
payouts, from part 4).

Event kinds:

- ``apikey.create`` — an active member (or only the founder, as the charter says) issues a
  key to a named consumer.
- ``apikey.revoke`` — its issuer or the founder revokes it; calls with it fail from then on.
- ``revenue.record`` — by the hub: calls per key since the last record, and the credits
  they earned the treasury (calls × price, integers).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from commonweal.community.kinds import Changes, Touched, fields, need_active, need_hub
from commonweal.community.state import ApiKey, State
from commonweal.errors import Conflict, Forbidden, InvalidInput, NotFound
from commonweal.ledger.event import Leaf

__all__ = ["KINDS"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


def _create(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"key_hash": str, "consumer": str}, {"quota_per_day": int})
    need_active(state, leaf.actor, kind)
    assert state.charter is not None
    serving = state.charter.serving
    if serving.apikeys == "founder" and leaf.actor != state.founder:
        raise Forbidden(f"{kind}: the charter lets only the founder issue API keys")
    if not _HEX64.fullmatch(body["key_hash"]):
        raise InvalidInput(f"{kind}: key_hash must be the hex SHA-256 of the key's secret")
    if body["key_hash"] in state.apikeys:
        raise Conflict(f"{kind}: that key is already registered")
    consumer = body["consumer"]
    if not 1 <= len(consumer) <= 100 or not consumer.isprintable():
        raise InvalidInput(f"{kind}: consumer must be 1-100 printable characters")
    quota = body.get("quota_per_day", serving.quota_per_key_per_day)
    if not 1 <= quota <= serving.quota_per_key_per_day:
        raise InvalidInput(
            f"{kind}: quota_per_day must be 1-{serving.quota_per_key_per_day} (the charter's "
            f"limit); got {quota}"
        )
    key = ApiKey(body["key_hash"], consumer, leaf.actor, quota, "active", leaf.index, leaf.index)
    return {"apikeys": state.apikeys.set(key.key_hash, key)}


def _revoke(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"key_hash": str})
    need_active(state, leaf.actor, kind)
    key = state.apikeys.get(body["key_hash"])
    if key is None:
        raise NotFound(f"{kind}: no API key has that hash")
    assert state.charter is not None
    founder = state.founder if state.charter.serving.founder_revokes_keys else None
    if leaf.actor not in (key.issued_by, founder):
        raise Forbidden(
            f"{kind}: only the key's issuer may revoke it"
            + (" (or the founder)" if founder else "; the members can revoke it by a vote")
        )
    if key.status == "revoked":
        raise Conflict(f"{kind}: the key is already revoked")
    revoked = key._replace(status="revoked", updated_index=leaf.index)
    return {"apikeys": state.apikeys.set(key.key_hash, revoked)}


def _is_time(t: str) -> bool:
    """An RFC 3339 UTC time that names a real instant (no 31 February)."""
    if not _TIME.fullmatch(t):
        return False
    try:
        datetime.fromisoformat(t)
    except ValueError:
        return False
    return True


def _instant(t: str) -> str:
    """An RFC 3339 UTC time with its fraction padded to microseconds: comparable as text."""
    whole, _, frac = t[:-1].partition(".")
    return f"{whole}.{frac:0<6}Z"


def _record(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(
        leaf,
        {"start": str, "end": str, "price_per_call": int, "usage": list, "credits": int},
    )
    need_hub(state, leaf)
    assert state.charter is not None
    price = state.charter.serving.price_per_call
    if body["price_per_call"] != price:
        raise InvalidInput(f"{kind}: the charter's price per call is {price}")
    start, end = body["start"], body["end"]
    if not (_is_time(start) and _is_time(end)) or not (
        _instant(start) <= _instant(end) <= _instant(leaf.log_time)
    ):
        raise InvalidInput(f"{kind}: the period must be UTC times, start <= end <= log time")
    if state.revenue_until and _instant(start) < _instant(state.revenue_until):
        raise Conflict(
            f"{kind}: the period overlaps the last one, which ended {state.revenue_until}"
        )
    usage = body["usage"]
    if not usage:
        raise InvalidInput(f"{kind}: a record bills at least one key")
    calls = credits = 0
    last = ""
    for n, u in enumerate(usage):
        where = f"{kind}: usage[{n}]"
        if not isinstance(u, dict) or set(u) != {"key_hash", "calls", "credits"}:
            raise InvalidInput(f"{where} must be {{key_hash, calls, credits}}")
        kh = u["key_hash"]
        if not isinstance(kh, str) or kh not in state.apikeys:
            raise InvalidInput(f"{where}: no API key has hash {kh!r}")
        if kh <= last:
            raise InvalidInput(f"{where}: keys must be sorted and distinct")
        last = kh
        if type(u["calls"]) is not int or u["calls"] < 1:
            raise InvalidInput(f"{where}: calls must be a positive integer")
        if u["credits"] != u["calls"] * price:
            raise InvalidInput(f"{where}: credits must be calls × {price}")
        calls += u["calls"]
        credits += u["credits"]
    if body["credits"] != credits:
        raise InvalidInput(f"{kind}: credits must be the sum over keys, {credits}")
    t = state.treasury
    treasury = t._replace(
        balance=t.balance + credits,
        revenue=t.revenue + credits,
        calls=t.calls + calls,
        updated_index=leaf.index,
    )
    return {"treasury": treasury, "revenue_until": end}


def _key(leaf: Leaf) -> tuple[str, ...]:
    return (leaf.body["key_hash"],)


KINDS: dict[str, tuple[Any, Any]] = {
    "apikey.create": (_create, lambda lf: Touched(apikeys=_key(lf))),
    "apikey.revoke": (_revoke, lambda lf: Touched(apikeys=_key(lf))),
    "revenue.record": (_record, lambda lf: Touched(treasury=True)),
}
