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

import base64
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, and_, select, update

from commonweal.errors import (
    InvalidInput,
    NotFound,
    QuotaExceeded,
    TooLarge,
    Unauthorized,
)
from commonweal.features import check_input, featurize
from commonweal.ledger.event import SignedEvent, now
from commonweal.ml.sisa import ShardedModel
from commonweal.store.database import is_sqlite
from commonweal.store.schema import usage

if TYPE_CHECKING:
    from commonweal.community.state import State
    from commonweal.hub import Hub

__all__ = ["MAX_INPUTS", "Meter", "Models", "close_revenue", "hash_key", "new_api_key", "predict"]

MAX_INPUTS = 1000
KEY_PREFIX = "cw_"


def new_api_key() -> tuple[str, str]:
    """A fresh secret and its SHA-256 (what the log holds)."""
    secret = KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return secret, hash_key(secret)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Models:
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
        from commonweal.training import load_model

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
        day = now()[:10]
        slot = (key_hash, day)
        with self._lock:
            used = self._today.get(slot)
            if used is None:
                used = self._stored_calls(key_hash, day)
            if used + calls > quota:
                raise QuotaExceeded(
                    f"this API key has used {used} of its {quota} calls for {day} (UTC); "
                    "it resets at midnight UTC, or ask the community for a larger quota"
                )
            self._today[slot] = used + calls
            self._pending[slot] = self._pending.get(slot, 0) + calls

    def _stored_calls(self, key_hash: str, day: str) -> int:
        with self.hub.read() as conn:
            row = conn.execute(
                select(usage.c.calls).where(and_(usage.c.key_hash == key_hash, usage.c.day == day))
            ).first()
        return int(row[0]) if row else 0

    def flush(self) -> int:
        """Write pending counts to the database; return how many calls were written."""
        with self._lock:
            pending, self._pending = self._pending, {}
            # Days other than today are no longer needed for quotas.
            today = now()[:10]
            self._today = {k: v for k, v in self._today.items() if k[1] == today}
        if not pending:
            return 0
        from commonweal.store.database import write_connection

        try:
            with write_connection(self.hub.engine) as conn:
                for (key_hash, day), calls in sorted(pending.items()):
                    _add_usage(conn, key_hash, day, calls)
        except BaseException:
            with self._lock:  # keep them for the next flush
                for slot, calls in pending.items():
                    self._pending[slot] = self._pending.get(slot, 0) + calls
            raise
        return sum(pending.values())


def _add_usage(conn: Connection, key_hash: str, day: str, calls: int) -> None:
    if is_sqlite(conn.engine):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    stmt = insert(usage).values(key_hash=key_hash, day=day, calls=calls, unbilled=calls)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[usage.c.key_hash, usage.c.day],
            set_={"calls": usage.c.calls + calls, "unbilled": usage.c.unbilled + calls},
        )
    )


def resolve_version(hub: Hub, version: str | int) -> int:
    state = hub.state
    if version == "latest":
        latest = state.latest_model
        if latest is None:
            raise NotFound("this community has no model yet; train one with `commonweal train`")
        return latest.version
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise InvalidInput(f"a model version is a number or 'latest', not {version!r}") from None
    if v not in state.models:
        raise NotFound(
            f"there is no model version {v}; versions are 1-{len(state.models)}"
            if state.models
            else f"there is no model version {v}: this community has no model yet"
        )
    return v


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
        key = state.apikeys.get(hash_key(api_key))
        if key is None:
            raise Unauthorized("that API key is not one this community issued")
        if key.status != "active":
            raise Unauthorized("that API key was revoked; ask the community for a new one")
    v = resolve_version(hub, version)
    assert state.charter is not None and state.charter.task is not None
    task = state.charter.task
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput('send {"inputs": [...]}: a non-empty list of inputs')
    if len(inputs) > MAX_INPUTS:
        raise TooLarge(f"at most {MAX_INPUTS} inputs per call; got {len(inputs)}")
    for n, item in enumerate(inputs):
        check_input(task, item, f"inputs[{n}]")
    model = hub.models_cache.get(v)
    if key is not None:
        hub.meter.charge(key.key_hash, len(inputs), key.quota_per_day)
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
    hub.meter.flush()
    end = now()
    billed: dict[str, Any] = {}

    def record(conn: Connection, st: State, index: int) -> list[SignedEvent]:
        assert st.charter is not None
        # Lock the rows, and subtract exactly what was read: a flush by another process
        # that commits meanwhile (PostgreSQL, READ COMMITTED) is then billed next time
        # instead of zeroed unbilled. Rows are locked in the order flushes write them.
        rows = conn.execute(
            select(usage.c.key_hash, usage.c.day, usage.c.unbilled)
            .where(usage.c.unbilled > 0)
            .order_by(usage.c.key_hash, usage.c.day)
            .with_for_update()
        ).all()
        if not rows:
            raise _NothingToBill
        per_key: dict[str, int] = {}
        for kh, day, n in rows:
            conn.execute(
                update(usage)
                .where(and_(usage.c.key_hash == kh, usage.c.day == day))
                .values(unbilled=usage.c.unbilled - n)
            )
            per_key[kh] = per_key.get(kh, 0) + int(n)
        price = st.charter.serving.price_per_call
        entries: list[dict[str, Any]] = [
            {"key_hash": kh, "calls": n, "credits": n * price} for kh, n in sorted(per_key.items())
        ]
        start = st.revenue_until or _first_key_time(hub, st)
        body: dict[str, Any] = {
            # Another process may have billed a later period since ``end`` was read.
            "start": start,
            "end": max(end, start),
            "price_per_call": price,
            "usage": entries,
            "credits": sum(n * price for n in per_key.values()),
        }
        billed.update(body)
        return [hub.sign("revenue.record", body)]

    try:
        done = hub.append([], after=record)
    except _NothingToBill:
        return None
    return {**billed, "entry": done.entries[-1]["index"], "balance": hub.state.treasury.balance}


def _first_key_time(hub: Hub, st: State) -> str:
    first = min(k.created_index for k in st.apikeys.values())
    return hub.entries(first, first + 1)[0].log_time


class Biller:
    """The server's background work: flush the meter every second, and log revenue every
    ``serving.revenue_period_seconds`` (and once more on shutdown)."""

    def __init__(self, hub: Hub, *, flush_every: float = 1.0) -> None:
        self.hub, self.flush_every = hub, flush_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="commonweal-biller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.flush_every):
            try:
                self.hub.meter.flush()
                charter = self.hub.state.charter
                period = charter.serving.revenue_period_seconds if charter else 3600
                if time.monotonic() - last >= period:
                    last = time.monotonic()
                    close_revenue(self.hub)
            except Exception:  # keep metering; the next round retries
                import logging

                logging.getLogger("commonweal.serving").exception("billing failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            close_revenue(self.hub)
        except Exception:
            import logging

            logging.getLogger("commonweal.serving").exception("final billing failed")
