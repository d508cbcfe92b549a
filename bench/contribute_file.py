"""Peak memory of reading a large contribution file: streamed (ours) against reading it whole.

``commonweal contribute FILE`` once read the whole file into a list of items before it
checked, signed and sent them in batches (a 1 GB file took 2.2 GB). It now streams the
file twice, a batch at a time: once to check every item as the hub will, once to hash,
sign and send. This bench makes a CSV of text items (~200 MB by default), then measures,
each in a fresh process, the peak resident memory (``getrusage`` maxrss) of:

- ``streamed``: the CLI's own path (``check_items``, then ``iter_items`` in batches of
  100, each described, hashed, signed and encoded as the request body ``contribute``
  sends), the sending itself left out: the hub screens ~100-200 kB of text a second on a
  small machine, so sending 200 MB would time the hub, not the reading;
- ``whole``: the same work with every item first read into one list (the old shape);
- anchors: ``csv.DictReader`` into a list, and ``pandas.read_csv``, of the same file;
- ``floor``: the process with the same modules imported and nothing read;
- ``before`` (with ``--before-src /work/main/src``): the old CLI code itself, its
  ``read_items`` and ``check_items``, then the same batches;
- ``end to end``: ``commonweal contribute`` of a small file (``--e2e-mb``) to a hub
  directory (the CLI and embedded hub in one process), for the whole command's peak.

Output: one JSON document on stdout (MiB and seconds per mode, and the ratios of the
anchors to ``streamed``); progress on stderr.

    .venv/bin/python bench/contribute_file.py                       # ~200 MB, a few minutes
    .venv/bin/python bench/contribute_file.py --mb 20 --e2e-mb 0.5  # quick
    .venv/bin/python bench/contribute_file.py --before-src /work/main/src
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHARTER: dict[str, Any] = {
    "name": "Bench",
    "task": {"kind": "text-classification", "labels": ["river", "market"]},
    "limits": {"max_item_bytes": 8192},
}
ROW_TEXT = 2000  # bytes of text a row: 100k rows for 200 MB, the charter's items a day
BATCH = 100


def make_csv(path: Path, mb: float) -> int:
    rng = random.Random(7)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
        for _ in range(3000)
    ]
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        while fh.tell() < mb * 1e6:
            text = f"row {rows}: " + " ".join(rng.choices(words, k=ROW_TEXT // 6))
            w.writerow([text[:ROW_TEXT], "river" if rows % 2 else "market"])
            rows += 1
    return rows


# -- one mode, in its own process -------------------------------------------------------------


def _send_shape(items: list[dict[str, Any]]) -> int:
    """What ``HubClient.contribute`` builds for a batch: described (salted, hashed) items,
    a signed event, the JSON body; its size (the body is then dropped, not sent)."""
    from commonweal.ledger.event import sign_event
    from commonweal.ledger.keys import SigningKey
    from commonweal.wire import describe_item

    key = _KEY.setdefault("k", SigningKey.generate())
    described, content = [], []
    for item in items:
        meta, part = describe_item(
            item, task_kind="text-classification", license="CC-BY-4.0", consent=["train"]
        )
        described.append(meta)
        content.append(part)
    # Any hub's origin: only the body's size is measured.
    ev = sign_event(
        key, "contribution.submit", {"items": described}, hub="bench.example/commonweal/file"
    )
    return len(json.dumps({**ev.to_wire(), "content": content}))


_KEY: dict[str, Any] = {}


def run_mode(mode: str, file: Path) -> dict[str, Any]:
    # Imported for every mode alike, so that the floor is the same for all.
    from commonweal.cli import data
    from commonweal.community.charter import validate_charter
    from commonweal.items import check_item

    start = time.perf_counter()
    items = 0
    if mode == "streamed":
        data.check_items(CHARTER, file)
        batch: list[dict[str, Any]] = []
        for _, item in data.iter_items(file, CHARTER):
            batch.append(item)
            if len(batch) == BATCH:
                _send_shape(batch)
                items, batch = items + len(batch), []
        if batch:
            _send_shape(batch)
            items += len(batch)
    elif mode == "whole":
        rules = validate_charter(CHARTER)
        every = [item for _, item in data.iter_items(file, CHARTER)]
        for n, item in enumerate(every, 1):
            check_item(rules, item, f"item {n}")
        for i in range(0, len(every), BATCH):
            _send_shape(every[i : i + BATCH])
        items = len(every)
    elif mode == "before":  # the old code, from --before-src on PYTHONPATH
        every = data.read_items(file, CHARTER["task"])
        data.check_items(CHARTER, every, str(file))  # type: ignore[call-arg]
        for i in range(0, len(every), BATCH):
            _send_shape(every[i : i + BATCH])
        items = len(every)
    elif mode == "csv-whole":
        with file.open(newline="", encoding="utf-8") as fh:
            items = len(list(csv.DictReader(fh)))
    elif mode == "pandas":
        import pandas as pd

        items = len(pd.read_csv(file))
    elif mode != "floor":
        raise SystemExit(f"unknown mode {mode}")
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": mode,
        "items": items,
        "peak_mib": round(peak_kib / 1024, 1),
        "s": round(seconds, 2),
    }


def measure(mode: str, file: Path, src: str | None = None) -> dict[str, Any]:
    print(f"  {mode} …", file=sys.stderr)
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    proc = subprocess.run(
        [sys.executable, __file__, "--mode", mode, "--file", str(file)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def end_to_end(work: Path, mb: float) -> dict[str, Any]:
    """``commonweal contribute`` of a small file to a hub directory: the child's peak."""
    print(f"  end to end ({mb} MB through the hub) …", file=sys.stderr)
    work.mkdir(parents=True, exist_ok=True)
    small = work / "small.csv"
    rows = make_csv(small, mb)
    charter = work / "charter.toml"
    charter.write_text(
        'name = "Bench"\n[task]\nkind = "text-classification"\nlabels = ["river", "market"]\n'
        "[limits]\nmax_item_bytes = 8192\n"
    )
    cli = [sys.executable, "-m", "commonweal"]
    init = subprocess.run(
        [*cli, "init", str(work / "hub"), "--charter", str(charter), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(init.stdout)["founder_key_file"]
    code = (
        "import resource, subprocess, sys; t = __import__('time').perf_counter();"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
        " __import__('time').perf_counter() - t)"
    )
    run = [*cli, "contribute", str(small), "--hub", str(work / "hub"), "--key", key, "--json"]
    out = subprocess.run(
        [sys.executable, "-c", code, *run], capture_output=True, text=True, check=True
    )
    kib, seconds = out.stdout.split()
    return {
        "mode": "end to end",
        "items": rows,
        "file_mb": round(small.stat().st_size / 1e6, 1),
        "peak_mib": round(int(kib) / 1024, 1),
        "s": round(float(seconds), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=200, help="size of the CSV (MB)")
    ap.add_argument("--e2e-mb", type=float, default=1, help="end-to-end file size (0: skip)")
    ap.add_argument("--before-src", help="a checkout's src/ holding the old CLI (e.g. main)")
    ap.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.file)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        file = work / "items.csv"
        print(f"writing {args.mb} MB of CSV …", file=sys.stderr)
        rows = make_csv(file, args.mb)
        results = [measure(m, file) for m in ("floor", "streamed", "whole", "csv-whole", "pandas")]
        if args.before_src:
            results.append(measure("before", file, args.before_src))
        if args.e2e_mb:
            results.append(end_to_end(work / "e2e", args.e2e_mb))
    by = {r["mode"]: r for r in results}
    streamed = by["streamed"]["peak_mib"]
    print(
        json.dumps(
            {
                "file_mb": round(args.mb),
                "rows": rows,
                "results": results,
                "ratio_to_streamed": {
                    m: round(r["peak_mib"] / streamed, 2) for m, r in by.items() if m != "streamed"
                },
                "streamed_above_floor_mib": round(streamed - by["floor"]["peak_mib"], 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
