"""The kill -9 loop: members append signed events over HTTP to a real ``commonweal serve``
while it is killed with SIGKILL at random moments; after each restart every event the hub
acknowledged must be in the log where it said, and ``commonweal ledger verify`` must pass.

Runs on SQLite (a hub directory in a temporary directory) and on PostgreSQL (a fresh,
uniquely named database per run on the server ``--postgres`` names, dropped afterwards).
The issue's figure is 100 trials on each with 0 acknowledged events lost and verify
passing after each. There is no anchor to time against: the figure is a count, and the
time is reported only to size a run.

    .venv/bin/python bench/crash.py                  # 100 trials per database
    .venv/bin/python bench/crash.py --quick          # 5 per database
    .venv/bin/python bench/crash.py --only sqlite --trials 20

Progress goes to stderr, one JSON document to stdout. Exits 1 if anything was lost, a
verify failed or a writer met an error before its server was killed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.kit.attacks

from tests.kit.attacks import attack_hub, crash_trials, fresh_postgres_database

DEFAULT_POSTGRES = os.environ.get(
    "COMMONWEAL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(kind: str, url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    hub_dir = workdir / kind / "hub"
    hub_dir.parent.mkdir(parents=True)
    attack_hub(hub_dir, url)
    t0 = time.monotonic()
    acked = lost = failures = limited = 0
    errors: list[str] = []
    size = 0
    for r in crash_trials(
        hub_dir,
        args.trials,
        writers=args.writers,
        run_for=(args.min_seconds, args.max_seconds),
        seed=args.seed,
    ):
        acked, lost, size = acked + r.acked, lost + r.lost, r.size
        failures += not r.verified
        limited += r.limited
        errors += r.errors
        log(
            f"  {kind} trial {r.trial + 1}/{args.trials}: {r.acked} acknowledged, "
            f"{r.lost} lost, verify {'ok' if r.verified else 'FAILED ' + r.verify_message}, "
            f"log {r.size} entries, {r.seconds:.1f}s"
            + (f", {len(r.errors)} errors: {r.errors[0]}" if r.errors else "")
        )
    seconds = time.monotonic() - t0
    log(
        f"{kind}: {args.trials} trials, {acked} events acknowledged, {lost} lost, "
        f"{failures} verify failures, {len(errors)} errors, {seconds:.0f}s"
    )
    return {
        "trials": args.trials,
        "events_acknowledged": acked,
        "lost": lost,
        "verify_failures": failures,
        "errors": len(errors),
        "first_errors": errors[:5],
        "rate_limited": limited,
        "log_size": size,
        "seconds": round(seconds, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="5 trials per database")
    p.add_argument("--trials", type=int, default=None, help="trials per database (100)")
    p.add_argument("--only", choices=["sqlite", "postgresql"], action="append")
    p.add_argument("--writers", type=int, default=4, help="member threads per trial")
    p.add_argument(
        "--min-seconds",
        type=float,
        default=0.5,
        help="earliest kill, seconds after the first acknowledgement",
    )
    p.add_argument("--max-seconds", type=float, default=3.0, help="latest kill")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL server URL")
    args = p.parse_args()
    args.trials = args.trials or (5 if args.quick else 100)
    kinds = args.only or ["sqlite", "postgresql"]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cw-crash-") as tmp:
        for kind in kinds:
            log(
                f"{kind}: {args.trials} trials, {args.writers} writers, kill after "
                f"{args.min_seconds}-{args.max_seconds}s"
            )
            if kind == "sqlite":
                results[kind] = run(kind, f"sqlite:///{tmp}/sqlite/hub/hub.db", Path(tmp), args)
            else:
                with fresh_postgres_database(args.postgres, "cw_crash") as url:
                    results[kind] = run(kind, url, Path(tmp), args)
    print(json.dumps(results, indent=2))
    bad = any(r["lost"] or r["verify_failures"] or r["errors"] for r in results.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
