"""Tamper table: every kind of tampering ``ledger verify`` must catch, and whether it did.

Builds the test community (``tests/kit/tamper.py``) once per database, applies each kind
to a fresh copy of it (or to a fresh export of it), runs ``commonweal ledger verify`` the
way a user does, and counts a kind as detected only when verification refused AND its
message names what was altered. Then it measures what the new checks cost:

- ``verify``: ``verify_hub`` on a log of ``--n`` entries with the stored tree compared
  (every node recomputed from the leaves) against the same run without that comparison
  (the anchor), as a ratio;
- ``append``: the hub's check of a frontier read back from the database (fold it, compare
  with its signed checkpoint) against recomputing the root from every leaf, the other way
  to not trust stored nodes.

The table goes to stderr; one JSON document to stdout.

    .venv/bin/python bench/tamper.py
    COMMONWEAL_TEST_DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/tamper.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.kit

from tests.kit.databases import PG_URL, copied_hub, database
from tests.kit.tamper import (
    DATABASE_KINDS,
    EXPORT_KINDS,
    build_community,
    detected,
    export_log,
    hub_tampering,
    read_lines,
    verify_command,
    write_lines,
)

from commonweal.community.charter import Charter
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import Frontier, tree_root
from commonweal.store.projection import compare
from commonweal.verify import verify_log


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _row(where: str, name: str, new: bool, words: list[str], message: str) -> dict[str, Any]:
    return {
        "where": where,
        "kind": name,
        "new": new,
        "refused": bool(message),
        "detected": detected(message, words),
        "message": message,
    }


def _fresh_verifier(directory: Path) -> None:
    """A verifier that has seen nothing yet (the copies share one origin and key, so one
    that remembered another copy's checkpoint would see a rewrite): what the tests get
    from a config directory per test."""
    os.environ["COMMONWEAL_CONFIG_DIR"] = str(directory)


def tamper_table(db_kind: str, tmp: Path) -> list[dict[str, Any]]:
    """Every kind on ``db_kind``: the database kinds, then the export kinds."""
    rows: list[dict[str, Any]] = []
    with database(db_kind, tmp) as url:
        built = build_community(tmp / "hub", url)
        for n, kind in enumerate(DATABASE_KINDS):
            _fresh_verifier(tmp / f"config{n}")
            with copied_hub(built, tmp / f"copy{n}") as copy:
                if kind.seen_first:
                    verify_command("--hub", str(copy))
                with hub_tampering(copy) as t:
                    words = kind.tamper(t)
                message = verify_command("--hub", str(copy))[1]
            rows.append(_row(f"database {kind.where}", kind.name, kind.new, words, message))
        for n, x in enumerate(EXPORT_KINDS):
            _fresh_verifier(tmp / f"xconfig{n}")
            (tmp / f"export{n}").mkdir()
            out = export_log(built, tmp / f"export{n}" / "log.jsonl")
            if x.seen_first:
                verify_command("--file", str(out))
            lines = read_lines(out)
            words = x.tamper(lines, out, built)
            write_lines(out, lines)
            message = verify_command("--file", str(out))[1]
            rows.append(_row(f"export {x.where}", x.name, x.new, words, message))
    return rows


def _print_table(db_kind: str, rows: list[dict[str, Any]]) -> None:
    width = max(len(r["kind"]) for r in rows)
    _say(f"\n{db_kind}: {'where':<22} {'kind':<{width}}  detected")
    for r in rows:
        mark = "yes" if r["detected"] else ("refused, unnamed" if r["refused"] else "NO")
        new = " (new)" if r["new"] else ""
        _say(f"  {r['where']:<22} {r['kind']:<{width}}  {mark}{new}")
    n = sum(r["detected"] for r in rows)
    _say(f"{db_kind}: {n} of {len(rows)} kinds detected")


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cost(n: int, tmp: Path, repeat: int) -> dict[str, Any]:
    """What comparing the stored tree adds to ``verify``, and what the append path's
    frontier check costs against recomputing the root from the leaves."""
    hub, _ = Hub.init(tmp / "big", charter=Charter(name="Cost"), founder_name="Ada")
    try:
        events = [
            sign_event(SigningKey.generate(), "member.join", {"name": f"m{i}"}, hub=hub.origin)
            for i in range(n - 1)
        ]
        for b in range(0, len(events), 1000):
            hub.append(events[b : b + 1000])
        with hub.read() as conn:
            note = hub.store.latest_checkpoint(conn)

            def run(with_tree: bool) -> None:
                verify_log(
                    hub.store.iter_leaf_bytes(conn, 0, n),
                    checkpoint_note=note,
                    verifier=hub.verifier,
                    projections=lambda state: compare(conn, state),
                    workers=1,
                    stored_nodes=(lambda a, b: hub.store.nodes_completed_by(conn, a, b))
                    if with_tree
                    else None,
                )

            anchor = _best(lambda: run(False), repeat)
            ours = _best(lambda: run(True), repeat)

            def check_frontier() -> None:
                keys = Frontier.keys_for(n)
                got = hub.store.get_nodes(conn, keys)
                hub._check_frontier(conn, Frontier(n, [got[k] for k in keys]))

            frontier = _best(check_frontier, repeat * 5)
            from_leaves = _best(lambda: tree_root(hub.store.leaf_bytes(conn, 0, n)), repeat)
    finally:
        hub.close()
    return {
        "entries": n,
        "verify_without_tree_s": round(anchor, 3),
        "verify_with_tree_s": round(ours, 3),
        "verify_ratio": round(ours / anchor, 3),
        "frontier_check_ms": round(frontier * 1000, 3),
        "root_from_leaves_ms": round(from_leaves * 1000, 1),
        "frontier_check_vs_leaves": round(frontier / from_leaves, 5),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20_000, help="Entries for the cost section.")
    p.add_argument("--repeat", type=int, default=3, help="Best of N for each timing.")
    p.add_argument("--no-cost", action="store_true", help="Only the tamper table.")
    args = p.parse_args(argv)
    os.environ.pop("COMMONWEAL_DATABASE_URL", None)  # each hub names its own database
    kinds = ["sqlite", *(["postgresql"] if PG_URL else [])]
    result: dict[str, Any] = {"tables": {}}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cw-tamper-")))
        for db_kind in kinds:
            _say(f"tampering on {db_kind}…")
            rows = tamper_table(db_kind, tmp / db_kind)
            _print_table(db_kind, rows)
            result["tables"][db_kind] = {
                "detected": sum(r["detected"] for r in rows),
                "kinds": len(rows),
                "rows": rows,
            }
        if not args.no_cost:
            _say(f"\nmeasuring the checks' cost on {args.n} entries…")
            result["cost"] = cost(args.n, tmp / "cost", args.repeat)
            _say(json.dumps(result["cost"], indent=2))
    print(json.dumps(result, indent=2))
    ok = all(t["detected"] == t["kinds"] for t in result["tables"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
