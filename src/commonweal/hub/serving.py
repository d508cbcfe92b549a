"""Serving the community's model to consumers: API keys, predictions, metering, revenue.

A call carries an API key (``Authorization: Bearer cw_…``); the hub hashes it and looks
the hash up in the replayed state, so a key revoked in the log stops working at once.
Every input predicted is one metered call. Counts are kept in memory on the hot path and
flushed to the ``usage`` table about once a second (a crash loses at most that second of
metering, never a logged credit); ``close_revenue`` moves the unbilled counts into one
signed ``revenue.record`` event in the same transaction that zeroes them, so a call is
billed exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from commonweal.community.views import resolve_version
from commonweal.errors import InvalidInput, QuotaExceeded, TooLarge, Unauthorized
from commonweal.hub.features import featurize
from commonweal.hub.models import TRY_INPUTS, TRY_PER_DAY, TRY_PER_MINUTE
from commonweal.hub.training import load_model
from commonweal.hub.workers import Worker
from commonweal.items import check_input
from commonweal.ml.sisa import ShardedModel
from commonweal.store import usage
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
    """Calls per API key: counted in memory, flushed to the ``usage`` table."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], int] = {}
        self._today: dict[tuple[str, str], int] = {}  # calls so far, for the quota

    def charge(self, key_hash: str, calls: int, quota: int) -> None:
        """Count ``calls`` against a key, or QuotaExceeded if today's quota would pass."""
        day = self.hub.clock()[:10]
        slot = (key_hash, day)
        with self._lock:
            used = self._today.get(slot)
            if used is None:
                with self.hub.read() as conn:
                    used = usage.stored_calls(conn, key_hash, day)
            if used + calls > quota:
                raise QuotaExceeded(
                    f"this API key has used {used} of its {quota} calls for {day} (UTC); "
                    "it resets at midnight UTC, or ask the community for a larger quota"
                )
            self._today[slot] = used + calls
            self._pending[slot] = self._pending.get(slot, 0) + calls

    def flush(self) -> int:
        """Write pending counts to the database; return how many calls were written."""
        with self._lock:
            pending, self._pending = self._pending, {}
            # Days other than today are no longer needed for quotas.
            today = self.hub.clock()[:10]
            self._today = {k: v for k, v in self._today.items() if k[1] == today}
        if not pending:
            return 0
        try:
            with write_connection(self.hub.engine) as conn:
                for (key_hash, day), calls in sorted(pending.items()):
                    usage.add_usage(conn, key_hash, day, calls)
        except BaseException:
            with self._lock:  # keep them for the next flush
                for slot, calls in pending.items():
                    self._pending[slot] = self._pending.get(slot, 0) + calls
            raise
        return sum(pending.values())


class TryLimits:
    """Inputs each member predicted for free in the last minute and today (in memory: a
    restart forgets them, which costs nobody anything, as tries are not billed)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._lock = threading.Lock()
        self._minute: dict[str, list[float]] = {}  # member -> monotonic times of inputs
        self._day: dict[tuple[str, str], int] = {}

    def take(self, member: str, inputs: int) -> None:
        """Count ``inputs`` for ``member``, or QuotaExceeded if a limit would pass."""
        now = time.monotonic()
        day = self.hub.clock()[:10]
        with self._lock:
            recent = [t for t in self._minute.get(member, []) if now - t < 60.0]
            if len(recent) + inputs > TRY_PER_MINUTE:
                raise QuotaExceeded(
                    f"you tried {len(recent)} inputs in the last minute; members may try "
                    f"{TRY_PER_MINUTE} a minute: wait a moment"
                )
            used = self._day.get((member, day), 0)
            if used + inputs > TRY_PER_DAY:
                raise QuotaExceeded(
                    f"you tried {used} inputs today (UTC); members may try {TRY_PER_DAY} a "
                    "day for free: for more, issue an API key (its calls are billed)"
                )
            self._minute[member] = [*recent, *([now] * inputs)]
            self._day = {k: v for k, v in self._day.items() if k[1] == day}
            self._day[(member, day)] = used + inputs


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
    hub.refresh(max_age=1.0)
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
        check_input(task, item, f"inputs[{n}]", max_bytes=state.charter.limits.max_item_bytes)
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
    hub.models.meter.flush()
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
    """The server's background work: flush the meter every second, and log revenue every
    ``serving.revenue_period_seconds`` (and once more on shutdown)."""

    name = "commonweal-biller"

    def __init__(self, hub: Hub, *, flush_every: float = 1.0) -> None:
        super().__init__(hub, interval=flush_every)
        self._last = time.monotonic()

    def tick(self) -> None:
        self.hub.models.meter.flush()
        charter = self.hub.state.charter
        period = charter.serving.revenue_period_seconds if charter else 3600
        if time.monotonic() - self._last >= period:
            self._last = time.monotonic()
            close_revenue(self.hub)

    def finish(self) -> None:
        close_revenue(self.hub)
