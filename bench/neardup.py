"""Benchmark the near-duplicate check for text against a brute-force anchor.

The hub checks every contributed text against every text the community already holds. This
builds ``TextNearDuplicates`` over 100,000 synthetic texts of about 200 bytes (sentences drawn,
seeded, from the word lists below, so unrelated texts share function words and phrasing as
real ones do) and times what ingest pays per item, ``signature`` then ``query``, over 1,000
new texts: lightly edited copies of stored ones (one word changed, two words changed, re-cased
and re-spaced) and fresh texts. It reports p50/p99 per item, how many edited copies were found
and how many fresh texts matched anything, and the index's memory (RSS growth while it is
built, with the signatures computed beforehand).

Anchor: what a user would otherwise write, an exact Jaccard scan of the query's shingle set
against all 100,000 stored shingle sets (precomputed, shingles interned), for a few items;
its matches are compared with the index's, and the ratio of the two per-item times printed.
The signature methods datasketch offers are timed too: a fresh ``MinHash`` per text (draws
its permutations every time), a copy of one prepared template plus ``update_batch`` (what the
index does), and ``MinHash.bulk``.

One JSON document goes to stdout; progress goes to stderr::

    .venv/bin/python bench/neardup.py > /tmp/bench_neardup.json     # ~40 s, 1.5 GB peak
    .venv/bin/python bench/neardup.py --quick                         # 10k texts, CI smoke
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from datasketch import MinHash

from commonweal.ml.duplicates import (
    MINHASH_SCHEME,
    MINHASH_SEED,
    TextNearDuplicates,
    text_shingles,
)

TARGET_MS_PER_ITEM = 2.0


def _words(text: str) -> list[str]:
    return text.split()


def _phrases(text: str) -> list[str]:
    return [p.strip() for p in text.split("|")]


SUBJECTS = _words(
    "farmer teacher baker painter doctor driver neighbour child grandmother student "
    "fisherman nurse carpenter poet gardener shepherd librarian musician tailor miller "
    "blacksmith merchant sailor weaver potter beekeeper cook postman mayor singer"
)
ADJECTIVES = _words(
    "old young quiet tired cheerful patient careful clever honest busy gentle proud shy "
    "brave lonely curious stubborn generous humble restless thoughtful kind"
)
VERBS = _words(
    "carried painted found repaired planted borrowed sold mended cleaned opened watched "
    "wrote read built baked lost counted measured polished sorted tied wrapped delivered "
    "gathered hid lifted packed stacked swept visited"
)
OBJECTS = _words(
    "basket letter window fence garden boat bicycle lantern blanket kettle ladder wagon map "
    "clock chair table barrel bell book bridge cart coat door drum flag hammer jar kite "
    "mirror net oven parcel quilt rope saddle shelf"
)
OBJECT_ADJECTIVES = _words(
    "red blue green wooden broken heavy small large painted rusty shiny new ancient narrow "
    "wide crooked silver golden dusty striped"
)
PLACES = _phrases(
    "near the river | in the village market | behind the old mill | at the edge of the "
    "forest | beside the harbour | on the hill above the town | in the school yard | under "
    "the stone bridge | by the church | along the railway line | in the walled garden | at "
    "the crossroads | next to the bakery | inside the barn | on the village green | down by "
    "the lake"
)
TIMES = _phrases(
    "every morning | last winter | before the storm | after the harvest | on Sunday | at "
    "dawn | late in the evening | during the festival | in early spring | once a week | all "
    "summer | the day before the fair | when the snow melted | at noon"
)
ENDINGS = _phrases(
    "and nobody noticed | while the dog slept | because the weather turned | so the "
    "children laughed | but it rained again | and the bells rang | as the sun went down | "
    "before anyone woke | and then went home | though it took hours | and told no one"
)


def sentence(rng: random.Random) -> str:
    subject = f"the {rng.choice(ADJECTIVES)} {rng.choice(SUBJECTS)}"
    obj = f"a {rng.choice(OBJECT_ADJECTIVES)} {rng.choice(OBJECTS)}"
    parts = [subject, rng.choice(VERBS), obj, rng.choice(PLACES)]
    if rng.random() < 0.6:
        parts.append(rng.choice(TIMES))
    if rng.random() < 0.5:
        parts.append(rng.choice(ENDINGS))
    text = " ".join(parts)
    return text[0].upper() + text[1:] + "."


def synthetic_text(rng: random.Random, target_bytes: int = 200) -> str:
    """Sentences until the text is about ``target_bytes`` long (mean 192, 155-270 bytes)."""
    out = sentence(rng)
    while len(out) < target_bytes - 45:
        out += " " + sentence(rng)
    return out


def edit_words(rng: random.Random, text: str, n: int) -> str:
    """Replace ``n`` distinct words (not the first or last) by other vocabulary words."""
    words = text.split()
    vocabulary = SUBJECTS + ADJECTIVES + VERBS + OBJECTS + OBJECT_ADJECTIVES
    for i in rng.sample(range(1, len(words) - 1), n):
        replacement = rng.choice(vocabulary)
        while replacement == words[i].strip(".").lower():
            replacement = rng.choice(vocabulary)
        words[i] = replacement
    return " ".join(words)


def respace(rng: random.Random, text: str) -> str:
    words = text.split()
    return "".join(w.upper() if rng.random() < 0.2 else w for w in _join_randomly(rng, words))


def _join_randomly(rng: random.Random, words: list[str]) -> list[str]:
    out: list[str] = []
    for w in words:
        out.append(w)
        out.append(rng.choice([" ", "  ", "\n", " \t"]))
    return out


def rss_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "p50_ms": round(pct(50) * 1e3, 4),
        "p90_ms": round(pct(90) * 1e3, 4),
        "p99_ms": round(pct(99) * 1e3, 4),
        "max_ms": round(ordered[-1] * 1e3, 4),
        "mean_ms": round(statistics.fmean(ordered) * 1e3, 4),
    }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def time_signature_methods(texts: list[str], index: TextNearDuplicates) -> dict[str, Any]:
    """Per-text time of each way datasketch offers to compute the same signature."""
    shingles = [[s.encode() for s in text_shingles(t)] for t in texts]
    n = len(texts)

    def fresh() -> list[np.ndarray]:
        out = []
        for sh in shingles:
            m = MinHash(num_perm=index.num_perm, seed=MINHASH_SEED, scheme=MINHASH_SCHEME)
            m.update_batch(sh)
            out.append(m.hashvalues)
        return out

    def template() -> list[np.ndarray]:
        out = []
        for sh in shingles:
            m = index._template.copy()
            m.update_batch(sh)
            out.append(m.hashvalues)
        return out

    def bulk() -> list[np.ndarray]:
        ms = MinHash.bulk(
            shingles, num_perm=index.num_perm, seed=MINHASH_SEED, scheme=MINHASH_SCHEME
        )
        return [m.hashvalues for m in ms]

    def full() -> list[np.ndarray]:
        return [index.signature(t) for t in texts]

    results: dict[str, Any] = {}
    reference = full()
    methods: dict[str, Callable[[], list[np.ndarray]]] = {
        "fresh_minhash_per_text": fresh,
        "template_copy_update_batch": template,
        "minhash_bulk": bulk,
        "signature_incl_shingling": full,
    }
    for name, fn in methods.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            sigs = fn()
            best = min(best, time.perf_counter() - t0)
        assert all(np.array_equal(a, b) for a, b in zip(sigs, reference, strict=True)), name
        results[name + "_us"] = round(best / n * 1e6, 1)
    results["shingles_per_text_mean"] = round(statistics.fmean(len(s) for s in shingles), 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="stored texts")
    parser.add_argument("--queries", type=int, default=1_000, help="new texts checked")
    parser.add_argument("--anchor-items", type=int, default=5, help="items for the anchor")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10k stored texts, 300 queries")
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries, args.anchor_items = 10_000, 300, 3

    rng = random.Random(args.seed)
    log(f"generating {args.n} texts")
    stored = [synthetic_text(rng) for _ in range(args.n)]
    ids = [f"item-{i:07d}" for i in range(args.n)]

    index = TextNearDuplicates(threshold=args.threshold)
    log("timing signature methods")
    methods = time_signature_methods(stored[:1000], index)

    log("computing signatures")
    t0 = time.perf_counter()
    sigs = [index.signature(t) for t in stored]
    signature_s = time.perf_counter() - t0

    gc.collect()
    rss_before = rss_bytes()
    t0 = time.perf_counter()
    for item_id, sig in zip(ids, sigs, strict=True):
        index.add(item_id, sig)
    insert_s = time.perf_counter() - t0
    gc.collect()
    rss_after = rss_bytes()
    del sigs

    # New items: a quarter each of one-word edits, two-word edits, re-cased/re-spaced copies
    # of stored texts, and fresh texts.
    kinds = ["edit1", "edit2", "respaced", "fresh"]
    queries: list[tuple[str, str, str | None]] = []
    for q in range(args.queries):
        kind = kinds[q % 4]
        if kind == "fresh":
            queries.append((kind, synthetic_text(rng), None))
            continue
        source = rng.randrange(args.n)
        if kind == "edit1":
            text = edit_words(rng, stored[source], 1)
        elif kind == "edit2":
            text = edit_words(rng, stored[source], 2)
        else:
            text = respace(rng, stored[source])
        queries.append((kind, text, ids[source]))

    log(f"timing {len(queries)} checks against {len(index)} stored texts")
    times: list[float] = []
    found = {k: 0 for k in kinds}
    total = {k: 0 for k in kinds}
    results: list[list[tuple[str, float]]] = []
    for kind, text, source_id in queries:
        t0 = time.perf_counter()
        hits = index.query(index.signature(text))
        times.append(time.perf_counter() - t0)
        results.append(hits)
        total[kind] += 1
        if kind == "fresh":
            found[kind] += bool(hits)
        else:
            found[kind] += any(h == source_id for h, _ in hits)

    log("building the anchor's shingle sets")
    interned: dict[str, str] = {}
    stored_sets = [frozenset(interned.setdefault(s, s) for s in text_shingles(t)) for t in stored]
    anchor_times: list[float] = []
    agreement = {"exact_matches": 0, "index_found": 0}
    for q in range(args.anchor_items):
        _, text, _ = queries[q]
        t0 = time.perf_counter()
        query_set = text_shingles(text)
        exact = []
        for item_id, s in zip(ids, stored_sets, strict=True):
            inter = len(query_set & s)
            jaccard = inter / (len(query_set) + len(s) - inter)
            if jaccard >= args.threshold:
                exact.append((item_id, jaccard))
        anchor_times.append(time.perf_counter() - t0)
        ours = {h for h, _ in results[q]}
        agreement["exact_matches"] += len(exact)
        agreement["index_found"] += sum(1 for h, _ in exact if h in ours)
    del stored_sets, interned

    ours_stats = percentiles(times)
    anchor_stats = percentiles(anchor_times)
    index_bytes = None if rss_before is None or rss_after is None else rss_after - rss_before
    report = {
        "bench": "neardup",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "datasketch": importlib.metadata.version("datasketch"),
            "numpy": np.__version__,
        },
        "config": {
            "stored": args.n,
            "queries": len(queries),
            "threshold": args.threshold,
            "num_perm": index.num_perm,
            "lsh_bands_rows": [index._lsh.b, index._lsh.r],
            "mean_text_bytes": round(statistics.fmean(len(t.encode()) for t in stored), 1),
            "seed": args.seed,
        },
        "build": {
            "signatures_s": round(signature_s, 2),
            "insert_s": round(insert_s, 2),
            "index_rss_mb": None if index_bytes is None else round(index_bytes / 2**20, 1),
            "index_rss_bytes_per_item": None if index_bytes is None else index_bytes // args.n,
        },
        "signature_methods_per_text": methods,
        "check_per_item": ours_stats,
        "found": {
            k: {"found": found[k], "of": total[k], "rate": round(found[k] / max(1, total[k]), 3)}
            for k in kinds
        },
        "anchor_exact_jaccard_scan_per_item": {**anchor_stats, "items": args.anchor_items},
        "anchor_agreement": agreement,
        "ratio_anchor_to_ours_p50": round(anchor_stats["p50_ms"] / ours_stats["p50_ms"], 1),
        "target_ms_per_item": TARGET_MS_PER_ITEM,
        "meets_target_p99": ours_stats["p99_ms"] < TARGET_MS_PER_ITEM,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
