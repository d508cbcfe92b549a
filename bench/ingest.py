"""Ingest figures for contributions, printed as one JSON document (progress on stderr).

1. ``http``: text items of ~200 bytes sent to a real ``commonweal serve`` over HTTP in
   signed batches of 100, with every check on (shape, commitment, exact and near
   duplicates, personal data, encryption, review-queue projections, the log append).
   Anchor: a bare SQLite insert of the same rows, batches of 100, one commit per batch
   (what a hub that checked nothing would cost).
2. ``near_duplicates`` and ``consensus``: run ``bench/neardup.py`` and
   ``bench/consensus.py`` and include their figures (each has its own anchor).

    python bench/ingest.py [--items 20000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from commonweal.community.charter import validate_charter
from commonweal.hub import Hub
from commonweal.ledger.canonical import canonical
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.wire import SALT_BYTES, commitment_of
from machine import served

HERE = Path(__file__).resolve().parent
WORDS = (  # noqa: SIM905 - a paragraph of words reads better than a list literal
    "river market bread garden school library bridge canal meadow harbour station orchard "
    "council festival clinic bakery workshop allotment choir ferry lantern quarry mill "
    "spring autumn winter summer morning evening north south old new green blue quiet busy "
    "opened closed planted repaired painted moved shared borrowed donated counted measured "
    "the a our their every some many few near beside under over after before while because"
).split()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(28, 36))]
    return f"Note {n}: " + " ".join(words) + "."


def build_batches(
    key: SigningKey, texts: list[str], size: int, origin: str
) -> list[dict[str, Any]]:
    docs = []
    for start in range(0, len(texts), size):
        described, content = [], []
        for t in texts[start : start + size]:
            item = {"text": t, "label": "news"}
            salt = os.urandom(SALT_BYTES)
            c = commitment_of(salt, item)
            described.append(
                {
                    "id": c[:32],
                    "commitment": c,
                    "license": "CC-BY-4.0",
                    "consent": ["train"],
                    "bytes": len(canonical(item)),
                    "label": "news",
                }
            )
            import base64

            content.append({"id": c[:32], "salt": base64.b64encode(salt).decode(), "item": item})
        ev = sign_event(key, "contribution.submit", {"items": described}, hub=origin)
        docs.append({**ev.to_wire(), "content": content})
    return docs


def bench_http(n: int, batch: int, tmp: Path) -> dict[str, Any]:
    rng = random.Random(5)
    texts = [sentence(rng, i) for i in range(n)]
    charter = validate_charter(
        {
            "name": "Ingest bench",
            "task": {"kind": "text-classification", "labels": ["news", "notice"]},
            "limits": {"max_items_per_member_per_day": 10_000_000},
        }
    )
    hub, founder = Hub.init(tmp / "hub", charter=charter, founder_name="Ada")
    origin = hub.origin
    hub.close()
    docs = build_batches(founder, texts, batch, origin)
    log(f"http: {n} items of ~{sum(map(len, texts)) // n} bytes, batches of {batch}")
    with served(tmp / "hub") as (base, _):
        refused = 0
        with httpx.Client(base_url=base, timeout=60) as http:
            t = time.perf_counter()
            for d in docs:
                r = http.post("/api/v1/contributions", json=d)
                r.raise_for_status()
                refused += sum(i["status"] == "refused" for i in r.json()["items"])
            seconds = time.perf_counter() - t
    ours = n / seconds
    # Anchor: the same rows into a bare SQLite table, batch by batch.
    db = sqlite3.connect(tmp / "bare.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE items (id TEXT PRIMARY KEY, text TEXT, label TEXT)")
    rows = [(f"{i:032x}", t, "news") for i, t in enumerate(texts)]
    t = time.perf_counter()
    for start in range(0, n, batch):
        db.executemany("INSERT INTO items VALUES (?, ?, ?)", rows[start : start + batch])
        db.commit()
    bare = n / (time.perf_counter() - t)
    db.close()
    return {
        "what": "text contributions/s through HTTP with every check on (SQLite hub)",
        "items": n,
        "batch": batch,
        "seconds": round(seconds, 3),
        "items_per_s": round(ours, 1),
        "refused": refused,
        "anchor": {
            "what": "bare SQLite insert of the same rows, same batches",
            "items_per_s": round(bare, 1),
        },
        "ratio": round(ours / bare, 4),
        "target_items_per_s": 1000,
        "meets_target": ours >= 1000,
    }


def run_json(script: str, *args: str) -> Any:
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *args], capture_output=True, text=True, timeout=1200
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["http", "near", "consensus"])
    args = ap.parse_args()
    n = 2000 if args.quick else args.items
    doc: dict[str, Any] = {"bench": "ingest", "nproc": os.cpu_count()}
    with tempfile.TemporaryDirectory() as d:
        if args.only in (None, "http"):
            doc["http"] = bench_http(n, args.batch, Path(d))
    if args.only in (None, "near") and (HERE / "neardup.py").exists():
        log("near duplicates: bench/neardup.py")
        doc["near_duplicates"] = run_json("neardup.py", *(["--quick"] if args.quick else []))
    if args.only in (None, "consensus") and (HERE / "consensus.py").exists():
        log("consensus: bench/consensus.py")
        # consensus.py has no --quick: a fifth of its items, one run.
        quick = ["--items", "2000", "--repeat", "1"] if args.quick else []
        doc["consensus"] = run_json("consensus.py", *quick)
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
