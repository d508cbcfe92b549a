"""Benchmark what a member-signed request costs now that each signature is accepted once.

Every request carrying ``X-Commonweal-Auth`` now hashes its body into the signed message
and records the signature's digest in the replay cache (``hub.signatures.use``: one
insert-or-nothing in its own transaction, on the engine whose commits do not wait for
the disk). Anchor: the same signed request through the same app with the replay cache
switched off (``use`` made a no-op in this process), measured in the same run, so the
difference is the cache alone.

Measured per backend, sequentially in one thread: a signed ``GET /api/v1/members/K/export``
through the real app in-process (``EmbeddedTransport``: routing, dependencies, the
signature check, authorization, the answer), the cache's insert on its own, and the
signature check on its own (Ed25519 verify plus SHA-256 of a 1 KiB body). Prints one
JSON document::

    .venv/bin/python bench/signatures.py
    .venv/bin/python bench/signatures.py --database postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from commonweal.api import create_app
from commonweal.community.charter import Charter
from commonweal.embedded import EmbeddedTransport
from commonweal.hub import Hub
from commonweal.wire import AUTH_HEADER, auth_header, check_auth_header

ROUNDS = 5  # alternate anchor and cache this many times; report the medians


def per_call_us(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def measure(database: str | None, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        hub, ada = Hub.init(
            Path(tmp) / "hub", charter=Charter(name="Bench"), founder_name="Ada", database=database
        )
        try:
            http = httpx.Client(transport=EmbeddedTransport(create_app(hub)), base_url="http://b")
            target = f"/api/v1/members/{ada.key_id}/export"

            def request() -> None:
                r = http.get(target, headers={AUTH_HEADER: auth_header(ada, "GET", target)})
                assert r.status_code == 200, r.text

            use = hub.signatures.use

            def off(*_a: Any, **_k: Any) -> None:
                return None

            request()  # warm: first request builds the state and the engines
            anchor, cached = [], []
            for _ in range(ROUNDS):
                hub.signatures.use = off  # type: ignore[method-assign]
                anchor.append(per_call_us(request, n))
                hub.signatures.use = use  # type: ignore[method-assign]
                cached.append(per_call_us(request, n))

            body = b"x" * 1024

            def check() -> Any:
                h = auth_header(ada, "PUT", target, body=body)
                return check_auth_header(h, "PUT", target, body, now=time.time())

            check_us = per_call_us(check, n)
            signed = [check() for _ in range(n)]
            it = iter(signed)
            insert_us = per_call_us(lambda: hub.signatures.use(next(it)), n)
            http.close()
        finally:
            hub.close()
    a, c = statistics.median(anchor), statistics.median(cached)
    return {
        "backend": "postgresql" if database else "sqlite",
        "requests": n * ROUNDS,
        "anchor_signed_get_us": round(a, 1),
        "signed_get_with_replay_cache_us": round(c, 1),
        "added_per_request_us": round(c - a, 1),
        "ratio_to_anchor": round(c / a, 2),
        "replay_insert_alone_us": round(insert_us, 1),
        "sign_and_check_1kib_body_us": round(check_us, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", help="a PostgreSQL URL (SQLite always runs)")
    ap.add_argument("-n", type=int, default=400, help="requests per round")
    args = ap.parse_args()
    rows = [measure(None, args.n)]
    if args.database:
        rows.append(measure(args.database, args.n))
    for r in rows:
        print(
            f"{r['backend']}: signed GET {r['signed_get_with_replay_cache_us']} µs with the "
            f"replay cache vs {r['anchor_signed_get_us']} µs without "
            f"(×{r['ratio_to_anchor']}; insert alone {r['replay_insert_alone_us']} µs)",
            file=sys.stderr,
        )
    print(json.dumps({"signatures": rows}, indent=2))


if __name__ == "__main__":
    main()
