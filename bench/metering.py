"""Benchmark what a metered call costs now that its quota is enforced in the database.

Each predicted call is charged by one conditional upsert in its own transaction
(``usage.charge`` through ``Meter.charge``) and is authorized against a state no older
than the call (``Hub.refresh(max_age=0)``: one read of the log head). Anchor: the
in-memory meter the hub used before (a lock and a dict per call, flushed once a second),
re-created here exactly as it charged, measured in the same run.

Prints one JSON document: per backend, microseconds per call for the anchor, the charge,
the head read, and their ratio::

    .venv/bin/python bench/metering.py
    .venv/bin/python bench/metering.py --database postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from commonweal.community.charter import Charter
from commonweal.hub import Hub


class InMemoryMeter:
    """The anchor: the meter before part 9, per call (its flush ran once a second)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], int] = {}
        self._today: dict[tuple[str, str], int] = {}

    def charge(self, key_hash: str, day: str, calls: int, quota: int) -> None:
        slot = (key_hash, day)
        with self._lock:
            used = self._today.get(slot, 0)
            if used + calls > quota:
                raise RuntimeError("quota")
            self._today[slot] = used + calls
            self._pending[slot] = self._pending.get(slot, 0) + calls


def per_call_us(fn: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def measure(database: str | None, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        hub, _ = Hub.init(
            Path(tmp) / "hub",
            charter=Charter(name="Bench"),
            founder_name="Ada",
            database=database,
        )
        try:
            anchor = InMemoryMeter()
            day = hub.clock()[:10]
            quota = 10 * n
            anchor_us = per_call_us(lambda: anchor.charge("k" * 64, day, 1, quota), n)
            charge_us = per_call_us(lambda: hub.models.meter.charge("k" * 64, 1, quota), n)
            head_us = per_call_us(lambda: hub.refresh(max_age=0.0), n)
        finally:
            hub.close()
    return {
        "backend": "postgresql" if database else "sqlite",
        "calls": n,
        "anchor_in_memory_us": round(anchor_us, 2),
        "db_charge_us": round(charge_us, 1),
        "head_read_us": round(head_us, 1),
        "added_per_call_us": round(charge_us + head_us - anchor_us, 1),
        "ratio_to_anchor": round((charge_us + head_us) / anchor_us, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", help="a PostgreSQL URL (SQLite always runs)")
    ap.add_argument("-n", type=int, default=2000, help="calls per measurement")
    args = ap.parse_args()
    rows = [measure(None, args.n)]
    if args.database:
        rows.append(measure(args.database, args.n))
    for r in rows:
        print(
            f"{r['backend']}: {r['db_charge_us']} µs charge + {r['head_read_us']} µs head read "
            f"vs {r['anchor_in_memory_us']} µs in memory",
            file=sys.stderr,
        )
    print(json.dumps({"metering": rows}, indent=2))


if __name__ == "__main__":
    main()
