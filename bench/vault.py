"""Benchmark what a withdrawal adds to its append: rotating the key-encryption keys (KEKs)
that wrapped the withdrawn items' keys, in a vault of N items.

- ``one``: ``vault.shred`` of one item (the delete, a new KEK file, the keys of the one
  bucket its key was in — at most ``vault.BUCKET`` — unwrapped and wrapped again, the rows
  replaced) and the old KEK's destruction after the commit.
- ``every_bucket``: a withdrawal with one item in every bucket (a member leaving whose items
  are spread over the whole vault, the worst case): every key re-wrapped, N in all.
- Anchor: the same one-item delete without rotation (what ``shred`` did before keys were
  wrapped), measured in the same run on the same database; ratios against it.

Each runs on SQLite and, given ``--database URL``, on PostgreSQL too (in a fresh schema,
dropped afterwards). One JSON document goes to stdout; progress to stderr::

    .venv/bin/python bench/vault.py                 # N = 100,000 on SQLite
    .venv/bin/python bench/vault.py --items 100000 \\
        --database postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, delete, text

from commonweal.store import vault
from commonweal.store.database import open_engine, write_connection
from commonweal.store.keyring import Keyring
from commonweal.store.log import LogStore
from commonweal.store.schema import CONTENT_TABLES

MEMBER = "ab" * 32


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def database(kind: str, url: str | None, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'hub.db'}"
        return
    assert url is not None
    schema = f"bench_vault_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def fill(url: str, keyring: Keyring, n: int) -> Any:
    engine = open_engine(url)
    with write_connection(engine) as conn:
        LogStore(engine).create(conn)
    items = [
        (f"{i:032x}", {"text": f"item {i}: a short sentence of ordinary length"}) for i in range(n)
    ]
    started = time.perf_counter()
    with write_connection(engine) as conn:
        for i in range(0, n, 5000):
            vault.store_items(conn, keyring, MEMBER, items[i : i + 5000])
    log(f"  stored {n} items in {time.perf_counter() - started:.2f} s")
    return engine


def delete_only(conn: Any, ids: list[str]) -> None:
    """The anchor: the rows deleted, nothing re-wrapped."""
    for table in CONTENT_TABLES:
        conn.execute(delete(table).where(table.c.id.in_(ids)))


def run(kind: str, url: str | None, n: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, database(kind, url, Path(tmp)) as db:
        keyring = Keyring(Path(tmp) / "vault-keys")
        engine = fill(db, keyring, n)
        try:
            buckets = len(keyring.on_disk())
            one, anchor = [], []
            for r in range(repeats):
                t = time.perf_counter()
                with write_connection(engine) as conn:
                    _, retired = vault.shred(conn, keyring, [f"{2 * r:032x}"])
                vault.destroy(keyring, retired)
                one.append(time.perf_counter() - t)
                t = time.perf_counter()
                with write_connection(engine) as conn:
                    delete_only(conn, [f"{2 * r + 1:032x}"])
                anchor.append(time.perf_counter() - t)
                log(f"  {kind}: one item {one[-1]:.3f} s, delete only {anchor[-1]:.4f} s")
            # One item from every bucket: every remaining key is re-wrapped.
            with write_connection(engine) as conn:
                spread = [
                    str(r[0])
                    for r in conn.execute(
                        text("SELECT min(id) FROM content_keys GROUP BY kek ORDER BY 1")
                    )
                ]
            t = time.perf_counter()
            with write_connection(engine) as conn:
                _, retired = vault.shred(conn, keyring, spread)
            vault.destroy(keyring, retired)
            every = time.perf_counter() - t
            log(f"  {kind}: one item in each of {len(spread)} buckets {every:.3f} s")
            with write_connection(engine) as conn:
                keks = {r[0] for r in conn.execute(text("SELECT DISTINCT kek FROM content_keys"))}
                left = conn.execute(text("SELECT count(*) FROM content_keys")).scalar_one()
            assert keks == keyring.on_disk() and len(keks) == buckets
            assert left == n - 2 * repeats - len(spread)
        finally:
            engine.dispose()
    best_one, best_anchor = min(one), min(anchor)
    return {
        "database": kind,
        "items": n,
        "bucket": vault.BUCKET,
        "kek_files": buckets,
        "one_item_s": round(best_one, 3),
        "every_bucket_s": round(every, 3),
        "every_bucket_us_per_key": round(every / left * 1e6, 1),
        "anchor_delete_only_s": round(best_anchor, 4),
        "ratio_one_item": round(best_one / best_anchor, 1),
        "ratio_every_bucket": round(every / best_anchor, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--database", help="a PostgreSQL URL to measure there too")
    args = ap.parse_args()
    results = []
    for kind in ["sqlite"] + (["postgresql"] if args.database else []):
        log(f"{kind}: {args.items} items")
        results.append(run(kind, args.database, args.items, args.repeats))
    doc = {"bench": "vault", "cpu_count": os.cpu_count(), "results": results}
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
