"""Serving the community's model to consumers: API keys, predictions, metering, revenue.

A call carries an API key (``Authorization: Bearer cw_…``); the hub hashes it and looks
the hash up in the replayed state, so a key revoked in the log stops working at once.
Every input predicted is one metered call, counted in the ``usage`` table before it is
served by one conditional statement that also enforces the key's daily quota (so the
quota holds across server processes and restarts, and a served call is never lost);
``close_revenue`` moves the unbilled counts into one signed ``revenue.record`` event in the
same transaction that zeroes them, so a call is billed exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from commonweal.community.views import resolve_version
from commonweal.errors import InvalidInput, QuotaExceeded, RateLimited, TooLarge, Unauthorized
from commonweal.hub.features import featurize
from commonweal.hub.limits import minute_of, seconds_to_next_day, seconds_to_next_minute
from commonweal.hub.models import TRY_INPUTS, TRY_PER_DAY, TRY_PER_MINUTE
from commonweal.hub.training import load_model
from commonweal.hub.workers import Worker
from commonweal.items import check_input
from commonweal.ml.sisa import ShardedModel
from commonweal.store import counters, usage
from commonweal.store.database import write_connection
from commonweal.wire import hash_api_key

if TYPE_CHECKING:
    from commonweal.community.state import State
    from commonweal.hub.core import Computing, Hub

__all__ = [
    "MAX_INPUTS",
    "Biller",
    "Meter",
    "ModelCache",
    "TryLimits",
    "close_revenue",
    "predict",
    "try_predict",
]

MAX_INPUTS = 1000


class ModelCache:
    """Loaded model versions, most recently used kept (a version's shards load once)."""

    def __init__(self, hub: Hub, size: int = 4) -> None:
        self.hub, self.size = hub, size
        self._cache: OrderedDict[int, ShardedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: int) -> ShardedModel:
        with self._lock:
            model = self._cache.get(version)
            if model is not None:
                self._cache.move_to_end(version)
                return model
        model, _ = load_model(self.hub, version)
        with self._lock:
            self._cache[version] = model
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return model


class Meter:
    """Calls per API key and UTC day, counted in the database as each call is served.

    One conditional upsert per call adds the call to the day's count (and to what is
    unbilled) only while the count stays within the key's quota, so the quota holds
    exactly across every server process of the hub and across restarts: nothing is held
    in memory that a crash could lose or another process could not see."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def charge(self, key_hash: str, calls: int, quota: int) -> None:
        """Count ``calls`` against a key, or QuotaExceeded if today's quota would pass."""
        now = self.hub.clock()
        day = now[:10]
        with write_connection(self.hub.counting) as conn:
            taken = usage.charge(conn, key_hash, day, calls, quota)
            used = usage.stored_calls(conn, key_hash, day) if taken is None else taken
        if taken is None:
            raise QuotaExceeded(
                f"this API key has used {used} of its {quota} calls for {day} (UTC); "
                "it resets at midnight UTC, or ask the community for a larger quota",
                retry_after=seconds_to_next_day(now),
            )


class TryLimits:
    """Inputs each member tried for free this minute and today (UTC windows of the hub's
    clock), counted in the database like API calls, so the limits hold across server
    processes; both windows are taken in one transaction, or neither."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def take(self, member: str, inputs: int) -> None:
        """Count ``inputs`` for ``member``, or QuotaExceeded if a limit would pass."""
        now = self.hub.clock()
        with write_connection(self.hub.counting) as conn:
            if (
                counters.take(conn, "try-minute", member, minute_of(now), inputs, TRY_PER_MINUTE)
                is None
            ):
                raise RateLimited(
                    f"you may try {TRY_PER_MINUTE} inputs a minute and have tried them (or "
                    "this call's would pass it): wait a moment",
                    retry_after=seconds_to_next_minute(now),
                )
            if counters.take(conn, "try-day", member, now[:10], inputs, TRY_PER_DAY) is None:
                # Raising rolls the minute's count back with this transaction.
                raise QuotaExceeded(
                    f"members may try {TRY_PER_DAY} inputs a day for free, and this call's "
                    "would pass it (UTC): for more, issue an API key (its calls are billed)",
                    retry_after=seconds_to_next_day(now),
                )


def try_predict(hub: Hub, member: str, version: str | int, inputs: Any) -> dict[str, Any]:
    """Predict for an active member: unbilled, at most ``TRY_INPUTS`` inputs a call and
    ``TRY_PER_MINUTE`` / ``TRY_PER_DAY`` inputs per member."""
    if isinstance(inputs, list) and len(inputs) > TRY_INPUTS:
        raise TooLarge(f"try at most {TRY_INPUTS} inputs at a time; got {len(inputs)}")
    if isinstance(inputs, list) and inputs:
        hub.models.tries.take(member, len(inputs))
    out = predict(hub, version, inputs, api_key=None, metered=False)
    return {**out, "billed": False}


def predict(
    hub: Hub, version: str | int, inputs: Any, *, api_key: str | None, metered: bool = True
) -> dict[str, Any]:
    """Predict ``inputs`` with a model version, charging the API key one call per input.

    ``metered=False`` is the hub operator's own use from the hub directory (no key)."""
    # Authorization reads a state no older than the call: a key revoked through another
    # server a moment ago is refused here too (one indexed read of the log head).
    hub.refresh(max_age=0.0 if metered else 1.0)
    state = hub.state
    key = None
    if metered:
        if not api_key:
            raise Unauthorized("predictions need an API key: Authorization: Bearer cw_…")
        key = state.apikeys.get(hash_api_key(api_key))
        if key is None:
            raise Unauthorized("that API key is not one this community issued")
        if key.status != "active":
            raise Unauthorized("that API key was revoked; ask the community for a new one")
    v = resolve_version(state, version)
    assert state.charter is not None and state.charter.task is not None
    task = state.charter.task
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput('send {"inputs": [...]}: a non-empty list of inputs')
    if len(inputs) > MAX_INPUTS:
        raise TooLarge(f"at most {MAX_INPUTS} inputs per call; got {len(inputs)}")
    for n, item in enumerate(inputs):
        check_input(task, item, f"inputs[{n}]")
    model = hub.models.cache.get(v)
    if key is not None:
        hub.models.meter.charge(key.key_hash, len(inputs), key.quota_per_day)
    X = featurize(task, inputs)
    if model.labels is None:
        values = model.predict(X)
        preds: list[dict[str, Any]] = [{"value": float(x)} for x in values]
    else:
        proba = model.predict_proba(X)
        labels = model.labels
        preds = []
        # Best first; ties keep the charter's label order (as argmax does).
        ranked = np.argsort(-proba, axis=1, kind="stable")[:, :5]
        for row, top in zip(proba, ranked, strict=True):
            best = int(top[0])
            preds.append(
                {
                    "label": labels[best],
                    "score": round(float(row[best]), 6),
                    "top": [{"label": labels[j], "score": round(float(row[j]), 6)} for j in top],
                }
            )
    out: dict[str, Any] = {"version": v, "predictions": preds}
    if key is not None:
        out["calls"] = len(inputs)
        out["credits"] = len(inputs) * state.charter.serving.price_per_call
    return out


class _NothingToBill(Exception):
    pass


def close_revenue(hub: Hub) -> dict[str, Any] | None:
    """Bill every unbilled call in one signed ``revenue.record``; None if there were none."""
    end = hub.clock()

    def record(ctx: Computing) -> dict[str, Any]:
        st = ctx.state
        assert st.charter is not None
        per_key = usage.take_unbilled(ctx.conn)
        if not per_key:
            raise _NothingToBill
        price = st.charter.serving.price_per_call
        entries: list[dict[str, Any]] = [
            {"key_hash": kh, "calls": n, "credits": n * price} for kh, n in sorted(per_key.items())
        ]
        start = st.revenue_until or _first_key_time(hub, st)
        return {
            # Another process may have billed a later period since ``end`` was read.
            "start": start,
            "end": max(end, start),
            "price_per_call": price,
            "usage": entries,
            "credits": sum(n * price for n in per_key.values()),
        }

    try:
        done = hub.record("revenue.record", record)
    except _NothingToBill:
        return None
    return {**done.body, "entry": done.entry, "balance": hub.state.treasury.balance}


def _first_key_time(hub: Hub, st: State) -> str:
    first = min(k.created_index for k in st.apikeys.values())
    return hub.log.entries(first, first + 1)[0].log_time


class Biller(Worker):
    """The server's background work: log revenue every ``serving.revenue_period_seconds``
    (and once more on shutdown), and forget rate-limit windows long past."""

    name = "commonweal-biller"

    def __init__(self, hub: Hub, *, check_every: float = 1.0) -> None:
        super().__init__(hub, interval=check_every)
        self._last = time.monotonic()

    def tick(self) -> None:
        charter = self.hub.state.charter
        period = charter.serving.revenue_period_seconds if charter else 3600
        if time.monotonic() - self._last >= period:
            self._last = time.monotonic()
            close_revenue(self.hub)
            self.hub.limits.prune()

    def finish(self) -> None:
        close_revenue(self.hub)
