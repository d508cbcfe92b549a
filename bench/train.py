"""Training and serving figures for the community's model, each beside an anchor measured
in the same run. A table goes to stdout (``--json``: one JSON document instead, the table
on stderr); progress goes to stderr.

The data lives in real hubs built first (every item accepted by two reviews): ~20k
generated texts in four topics (``hashing-logreg``) and sklearn's 1,797 digits as PNGs
(``pixels-logreg``), each once with charter ``training.shards: 1`` and once with 8. Salts
are seeded, so item ids, and so the shards, repeat from run to run.

1. ``overhead``: the path a version's data goes through in ``commonweal.ml`` with one shard
   (``fit_shard`` + ``dump_shard`` + SHA-256 + ``ShardedModel`` scoring the evaluation
   rows) against the same scikit-learn estimator fitted and predicting directly on the
   same arrays (``trainer.make(kind, seed).fit(X, y)`` + ``predict``), both read back from
   the S=1 hub's pool; median of ``--repeat`` runs (digits: 3x as many), alternating.
   Target: at most 1.15x. Informational: ``hub.models.train()`` end to end on that hub
   (decrypting, featurizing, fitting, scoring, storing the artifact, logging the version)
   against the same direct fit, with where its time went.
2. ``unlearning``: on the S=8 hubs, a full ``hub.models.train()``; then, ``--repeat`` times, one
   item withdrawn and ``hub.models.train(incremental=True)`` (it must retrain exactly that
   item's shard); then a full retrain of the final data, which must predict exactly as
   the last incremental version does. Target (text; digits is too small to time):
   incremental at most 1/4 of the full retrain; also shown against the direct unsharded
   fit on all training rows. Accuracy on the evaluation set of the S=8 version and of one
   unsharded model fitted on the same rows. Target (digits): within 2 points. As the
   digits evaluation set holds ~180 items (one item is 0.6 points), 5-fold
   cross-validation over all of them gives the same comparison with a smaller error.
3. ``serving``: ``commonweal serve`` (a subprocess, metering and billing on) predicting
   single text items over HTTP with an API key, driven by ``--concurrency`` threads of
   keep-alive ``httpx.Client`` in this process, for ``--seconds`` after a warm-up.
   Target: at least 500 requests/s; p50/p99 latency. Anchor: the same model's
   ``ShardedModel.predict_proba`` on one featurized item, called in-process (and
   ``hub.models.predict`` in-process, unmetered, to show what HTTP adds). Afterwards the server
   is stopped with SIGINT (it bills what is left) and the calls in its ``revenue.record``
   events must equal the successful requests, as must the treasury's count.

BLAS and OpenMP are limited to one thread in this process (``--threads``; the server keeps
the libraries' defaults): with their default pools (OpenBLAS, twice: numpy's and scipy's)
a digits fit on a two-core machine took 20-100x longer and a text fit 1.5-3x, which would
drown every figure in noise. The full run times the anchor once more with the default
pools, to show what ``commonweal train`` pays.

    .venv/bin/python bench/train.py                 # full: about ten minutes
    .venv/bin/python bench/train.py --quick         # smoke: one to three minutes
    .venv/bin/python bench/train.py --only serving --json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from threadpoolctl import threadpool_limits

from commonweal.client import HubClient
from commonweal.community.charter import validate_charter
from commonweal.community.models import pool, shard_of, trainer_name
from commonweal.hub import Hub
from commonweal.hub.features import featurize, targets
from commonweal.hub.training import load_model
from commonweal.ledger.canonical import canonical
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ml.sisa import ShardedModel, dump_shard, fit_shard, shard_seed
from commonweal.ml.trainers import get_trainer
from commonweal.store import vault
from commonweal.wire import SALT_BYTES, commitment_of
from machine import CpuWatch, log, machine_facts, pid_cpu, source_version

TARGET_OVERHEAD = 1.15  # ours / direct sklearn fit + predict, at most
TARGET_UNLEARN = 0.25  # incremental / full retrain, at most
TARGET_POINTS = 2.0  # accuracy points between sharded and unsharded, at most
TARGET_RPS = 500.0  # single-item predictions per second over HTTP, at least

SECTIONS = ("overhead", "unlearning", "serving")
MEMBERS = ("Grace", "Alan", "Tim")
BATCH = 200  # items per contribution (a signed batch must stay under 64 KiB)

# Four topics for generated texts. A text is 24-34 words, mostly everyday words shared by
# all topics; about 12% come from its own topic and 8% from a random one, so a text's label
# is usually, not always, clear (the fit has something to do, accuracy is not 100%).
TOPICS = {
    "river": "river flood bank water bridge canal rain mill ferry weir current towpath lock "
    "barge stream tide heron reeds ford jetty",
    "market": "market bread price stall cheese apples baker coins trader butcher grocer "
    "bargain basket vendor scales fruit honey fish eggs till",
    "school": "school teacher pupils lesson classroom homework exam library chalk playground "
    "timetable reading spelling maths term uniform assembly headteacher desk register",
    "clinic": "clinic nurse doctor patients appointment vaccine surgery prescription pharmacy "
    "waiting bandage checkup midwife fever injury ward dentist therapy pulse ambulance",
}
COMMON = (  # noqa: SIM905 - a paragraph of words reads better than a list literal
    "the a our their every some many few near beside under over after before while because "
    "morning evening today yesterday week month year spring autumn winter summer north south "
    "old new green blue quiet busy opened closed moved shared borrowed donated counted "
    "measured visited planned cancelled started finished people families neighbours "
    "volunteers council street square corner village town hall road lane path station and "
    "with without about around through from into onto more less very again still also only"
).split()


# -- data and communities -------------------------------------------------------------------


def text_items(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    labels = list(TOPICS)
    vocab = {k: v.split() for k, v in TOPICS.items()}
    out = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = []
        for _ in range(rng.randint(24, 34)):
            r = rng.random()
            if r < 0.12:
                words.append(rng.choice(vocab[label]))
            elif r < 0.20:
                words.append(rng.choice(vocab[rng.choice(labels)]))
            else:
                words.append(rng.choice(COMMON))
        out.append({"text": " ".join(words).capitalize() + ".", "label": label})
    return out


def digit_items(n: int | None = None) -> list[dict[str, Any]]:
    """sklearn's bundled 8x8 digits as the PNGs members would send (as tests/modelkit.py)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    out = []
    for pixels, target in list(zip(d.images, d.target, strict=True))[:n]:
        img = Image.fromarray((pixels * 15).clip(0, 255).astype("uint8"), mode="L")
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append({"image": base64.b64encode(buf.getvalue()).decode(), "label": str(target)})
    return out


@dataclass
class Community:
    directory: Path
    keys: dict[str, SigningKey]  # by key id
    founder: SigningKey
    build_seconds: float

    def open(self) -> Hub:
        return Hub.open(self.directory)


def contribution_doc(
    key: SigningKey, items: list[dict[str, Any]], rng: random.Random, origin: str
) -> dict[str, Any]:
    """A signed ``contribution.submit`` with its content, as ``HubClient.contribute`` builds
    it, but with seeded salts: item ids, and so the evaluation set and the shards, are the
    same in every run."""
    described, content = [], []
    for item in items:
        salt = rng.randbytes(SALT_BYTES)
        commitment = commitment_of(salt, item)
        described.append(
            {
                "id": commitment[:32],
                "commitment": commitment,
                "license": "CC-BY-4.0",
                "consent": ["train", "evaluate"],
                "bytes": len(canonical(item)),
                "label": item["label"],
            }
        )
        content.append(
            {"id": commitment[:32], "salt": base64.b64encode(salt).decode(), "item": item}
        )
    return {
        **sign_event(key, "contribution.submit", {"items": described}, hub=origin).to_wire(),
        "content": content,
    }


def community(
    directory: Path, *, kind: str, items: list[dict[str, Any]], shards: int, seed: int = 3
) -> Community:
    """A hub whose members shared ``items``, every one accepted by two other members'
    reviews (what ``tests/modelkit.py`` builds, here through ``Hub`` in-process)."""
    if (directory / "bench-keys.json").exists():  # --workdir: built by an earlier run
        saved = json.loads((directory / "bench-keys.json").read_text())
        keys = [SigningKey(bytes.fromhex(s)) for s in saved]
        return Community(directory, {k.key_id: k for k in keys}, keys[0], 0.0)
    start = time.perf_counter()
    rng = random.Random(seed)
    task: dict[str, Any] = {"kind": kind}
    if kind == "image-classification":
        task |= {"labels": [str(d) for d in range(10)], "image_width": 8, "image_height": 8}
    else:
        task |= {"labels": list(TOPICS)}
    charter = validate_charter(
        {
            "name": "Training bench",
            "task": task,
            "review": {"reviews_needed": 2, "newcomer_reviews_needed": 2, "consensus": "majority"},
            "training": {"shards": shards},
            "serving": {"quota_per_key_per_day": 10**9},
        }
    )
    keys = {"Ada": SigningKey(rng.randbytes(32))}
    hub, _ = Hub.init(
        directory,
        charter=charter,
        founder_name="Ada",
        founder_key=keys["Ada"],
        database="sqlite:///hub.db",
    )
    try:
        for name in MEMBERS:
            keys[name] = SigningKey(rng.randbytes(32))
            hub.submit(
                sign_event(keys[name], "member.join", {"name": name}, hub=hub.origin).to_wire()
            )
        names = list(keys)
        in_review: list[tuple[str, str]] = []
        refused = 0
        for n in range(0, len(items), BATCH):
            owner = names[(n // BATCH) % len(names)]
            got = hub.data.contribute(
                contribution_doc(keys[owner], items[n : n + BATCH], rng, hub.origin)
            )
            for i in got["items"]:
                if i["status"] == "in_review":
                    in_review.append((i["id"], owner))
                else:
                    refused += 1
        reviews = [
            sign_event(
                keys[name], "review.submit", {"item": iid, "verdict": "accept"}, hub=hub.origin
            ).to_wire()
            for iid, owner in in_review
            for name in [n for n in names if n != owner][:2]
        ]
        for b in range(0, len(reviews), 1000):
            hub.submit({"events": reviews[b : b + 1000]})
        accepted = sum(c.status == "accepted" for c in hub.state.contributions.values())
    finally:
        hub.close()
    if accepted != len(in_review):
        raise AssertionError(f"{accepted} of {len(in_review)} items accepted")
    (directory / "bench-keys.json").write_text(json.dumps([k.seed.hex() for k in keys.values()]))
    seconds = time.perf_counter() - start
    log(f"  {directory.name}: {accepted} items accepted ({refused} refused) in {seconds:.0f}s")
    return Community(directory, {k.key_id: k for k in keys.values()}, keys["Ada"], seconds)


@dataclass
class Arrays:
    """A hub's training pool and evaluation set as the trainer sees them."""

    kind: str
    labels: list[str]
    X: Any
    y: Any
    X_eval: Any
    y_eval: Any
    ids: tuple[str, ...]  # of the training rows
    eval_ids: tuple[str, ...]


def pool_arrays(hub: Hub) -> Arrays:
    """Features and labels of the pool the log implies, read back from the vault the way
    ``commonweal.hub.training`` reads them."""
    state = hub.state
    assert state.charter is not None and state.charter.task is not None
    task = state.charter.task
    p = pool(state)
    content: dict[str, Any] = {}
    ids = [*p.training, *p.evaluation]
    with hub.read() as conn:
        for n in range(0, len(ids), 500):
            content.update(vault.load_items(conn, hub.keyring, ids[n : n + 500]))

    def arrays(part: Sequence[str]) -> tuple[Any, Any]:
        items = [content[i] for i in part]
        labels = []
        for i in part:
            c = state.contributions[i]
            labels.append(c.decided_label or c.label)
        return featurize(task, items), targets(task, items, labels)

    X, y = arrays(p.training)
    X_eval, y_eval = arrays(p.evaluation)
    return Arrays(
        task.kind, list(task.labels), X, y, X_eval, y_eval, tuple(p.training), p.evaluation
    )


# -- measuring ------------------------------------------------------------------------------


_WAIT_IDLE = 0.0
_DEFAULT_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2


def wait_idle(threshold: float = 0.25) -> None:
    """Wait up to ``--wait-idle`` seconds for other work to drop under ``threshold`` cores."""
    deadline = time.monotonic() + _WAIT_IDLE
    waited = 0
    while time.monotonic() < deadline:
        with CpuWatch() as watch:
            time.sleep(1.0)
        waited += 1
        if watch.other_cores_busy is None or watch.other_cores_busy < threshold:
            break
        if waited % 15 == 1:
            log(f"  waiting for the machine to go quiet (other work: {watch.other_cores_busy})")


@dataclass
class Timed:
    wall: float
    cpu: float
    value: Any = None


def timed(fn: Callable[[], Any]) -> Timed:
    w, c = time.perf_counter(), time.process_time()
    value = fn()
    return Timed(time.perf_counter() - w, time.process_time() - c, value)


def med(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def r3(x: float) -> float:
    return round(x, 3)


# -- 1. overhead of our training path -------------------------------------------------------


def ml_overhead(
    data: Arrays, trainer_label: str, seed: int, repeat: int, *, library_threads: bool
) -> dict[str, Any]:
    """Ours (S=1 through commonweal.ml) against the same estimator fitted directly; with
    ``library_threads``, the anchor once more with the libraries' default thread pools."""
    trainer = get_trainer(trainer_label, data.kind)
    X, y, Xe = data.X, data.y, data.X_eval
    # Imports (skops, the dummy estimator) are paid once per process, not per version.
    dump_shard(fit_shard(trainer, data.kind, X[:2], np.array(["a", "a"]), seed=0, shard=0))

    def ours() -> dict[str, Any]:
        t0 = time.perf_counter()
        model = fit_shard(trainer, data.kind, X, y, seed=seed, shard=0)
        t1 = time.perf_counter()
        blob = dump_shard(model)
        digest = hashlib.sha256(blob).hexdigest()
        t2 = time.perf_counter()
        pred = ShardedModel([model], data.labels).predict(Xe)
        t3 = time.perf_counter()
        return {
            "parts": {"fit": t1 - t0, "dump_sha256": t2 - t1, "score": t3 - t2},
            "pred": pred,
            "bytes": len(blob),
            "sha256": digest,
        }

    def anchor() -> dict[str, Any]:
        est = trainer.make(data.kind, shard_seed(seed, 0)).fit(X, y)
        return {"pred": est.predict(Xe)}

    runs: dict[str, list[Timed]] = {"ours": [], "anchor": []}
    for r in range(repeat):
        order = ("anchor", "ours") if r % 2 == 0 else ("ours", "anchor")
        for which in order:
            wait_idle()
            runs[which].append(timed(ours if which == "ours" else anchor))
            log(f"    {which}: {runs[which][-1].wall:.2f}s")
    # The same anchor once more with the libraries' own thread pools (BLAS, OpenMP), which
    # is how ``commonweal train`` runs: on a busy two-core machine these can cost far more
    # than they bring.
    pooled = None
    if library_threads:
        with threadpool_limits(_DEFAULT_THREADS):
            wait_idle()
            pooled = timed(anchor)
        log(f"    anchor, {_DEFAULT_THREADS} BLAS/OpenMP threads: {pooled.wall:.2f}s")
    last_ours, last_anchor = runs["ours"][-1].value, runs["anchor"][-1].value
    same = bool(np.array_equal(last_ours["pred"].astype(str), last_anchor["pred"].astype(str)))
    wall = {k: med([t.wall for t in v]) for k, v in runs.items()}
    cpu = {k: med([t.cpu for t in v]) for k, v in runs.items()}
    parts = {k: r3(med([t.value["parts"][k] for t in runs["ours"]])) for k in last_ours["parts"]}
    ratio = wall["ours"] / wall["anchor"]
    best = {k: min(t.wall for t in v) for k, v in runs.items()}
    return {
        "trainer": trainer_label,
        "rows": int(X.shape[0]),
        "features": int(X.shape[1]),
        "evaluation_rows": int(Xe.shape[0]),
        "repeat": repeat,
        "seconds": r3(wall["ours"]),
        "parts": parts,
        "artifact_bytes": last_ours["bytes"],
        "anchor": {
            "what": "trainer.make(kind, seed).fit(X, y) + predict(X_eval), same arrays",
            "seconds": r3(wall["anchor"]),
            "seconds_library_threads": None if pooled is None else r3(pooled.wall),
        },
        "ratio": round(ratio, 4),
        "runs": {k: [r3(t.wall) for t in v] for k, v in runs.items()},
        "cpu_ratio": round(cpu["ours"] / cpu["anchor"], 4),
        "best_of_ratio": round(best["ours"] / best["anchor"], 4),
        # What ours adds beyond the fit itself (a noise-free view when the fit is short).
        "beyond_fit_ratio": round((parts["dump_sha256"] + parts["score"]) / wall["anchor"], 4),
        "same_predictions": same,
        "target_ratio": TARGET_OVERHEAD,
        "meets_target": ratio <= TARGET_OVERHEAD,
    }


class Phases:
    """Turns ``hub.models.train``'s progress callbacks into a breakdown of where the time went."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        t = time.perf_counter()
        if what == "training shards":
            self.marks.setdefault("loaded", t)
            if done == total:
                self.marks.setdefault("fitted", t)
        elif what == "scoring":
            self.marks.setdefault("scoring" if done == 0 else "scored", t)

    def summary(self, end: float) -> dict[str, float]:
        m = self.marks
        if not {"loaded", "fitted", "scoring", "scored"} <= set(m):
            return {}
        return {
            "load": r3(m["loaded"] - self.start),  # decrypt items, load reused shards
            "featurize_fit_dump": r3(m["fitted"] - m["loaded"]),
            "before_scoring": r3(m["scoring"] - m["fitted"]),
            "score": r3(m["scored"] - m["scoring"]),
            "register": r3(end - m["scored"]),  # under the lock: store, bundle, log
        }


def hub_train(hub: Hub, *, incremental: bool = False) -> tuple[float, dict[str, Any]]:
    wait_idle()
    phases = Phases()
    result = hub.models.train(incremental=incremental, progress=phases)
    end = time.perf_counter()
    result["phases"] = phases.summary(end)
    return end - phases.start, result


def end_to_end(hub: Hub, anchor_seconds: float, repeat: int) -> dict[str, Any]:
    """``hub.models.train()`` on the hub the arrays came from (S=1) against the direct fit."""
    runs = []
    for _ in range(repeat):
        seconds, result = hub_train(hub)
        log(f"    hub.models.train(): {seconds:.2f}s {result['phases']}")
        runs.append((seconds, result))
    mid = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    return {
        "what": "hub.models.train() end to end, charter training.shards 1 (informational)",
        "seconds": r3(mid[0]),
        "phases": mid[1]["phases"],
        "runs": [r3(s) for s, _ in runs],
        "anchor_seconds": r3(anchor_seconds),
        "ratio": round(mid[0] / anchor_seconds, 4),
        "metrics": mid[1]["metrics"],
    }


def bench_overhead(
    name: str, built: Community, repeat: int, e2e_repeat: int, *, library_threads: bool
) -> dict[str, Any]:
    hub = built.open()
    try:
        charter = hub.state.charter
        assert charter is not None
        data = pool_arrays(hub)
        log(f"overhead ({name}): {data.X.shape[0]} training rows, median of {repeat}")
        with CpuWatch() as watch:
            out = ml_overhead(
                data,
                trainer_name(charter),
                charter.training.seed,
                repeat,
                library_threads=library_threads,
            )
        out["other_cores_busy"] = watch.other_cores_busy
        log(f"  ours/anchor = {out['ratio']:.3f}; end to end, median of {e2e_repeat}")
        with CpuWatch() as watch:
            out["end_to_end"] = end_to_end(hub, out["anchor"]["seconds"], e2e_repeat)
        out["end_to_end"]["other_cores_busy"] = watch.other_cores_busy
        return out
    finally:
        hub.close()


# -- 2. unlearning --------------------------------------------------------------------------


def withdraw_one(hub: Hub, keys: dict[str, SigningKey], rng: random.Random) -> tuple[str, int]:
    """Withdraw one training item (signed by its contributor); return it and its shard."""
    p = pool(hub.state)
    shard = rng.choice([n for n, ids in enumerate(p.shards) if len(ids) > 1])
    item = rng.choice(p.shards[shard])
    member = keys[hub.state.contributions[item].member]
    hub.submit(
        sign_event(member, "contribution.withdraw", {"items": [item]}, hub=hub.origin).to_wire()
    )
    return item, shard


def cv_accuracy(
    data: Arrays, trainer_label: str, shards: int, seed: int, folds: int
) -> dict[str, Any]:
    """A tighter look at what sharding costs than one small evaluation set gives: k-fold
    over every accepted item (training pool and evaluation set), the S shards split by
    ``shard_of`` as the hub splits them, against one model on the same training folds."""
    import scipy.sparse as sp

    stack = sp.vstack if sp.issparse(data.X) else np.vstack
    X, y = stack([data.X, data.X_eval]), np.concatenate([data.y, data.y_eval])
    ids = data.ids + data.eval_ids
    n = len(ids)
    # Folds by sorted id, not by row: the evaluation draw (which decides the row order)
    # changes from run to run, the ids do not.
    fold = np.empty(n, dtype=np.intp)
    rank = np.argsort(np.array(ids))
    fold[rank[np.random.default_rng(seed).permutation(n)]] = np.arange(n) % folds
    shard = np.array([shard_of(i, shards) for i in ids])
    trainer = get_trainer(trainer_label, data.kind)
    right = {"sharded": 0, "unsharded": 0}
    for f in range(folds):
        test, train = fold == f, fold != f
        models = []
        for k in range(shards):
            rows = train & (shard == k)
            if rows.any():
                models.append(
                    fit_shard(
                        trainer, data.kind, X[rows], y[rows], seed=seed, shard=k, shards=shards
                    )
                )
        one = fit_shard(trainer, data.kind, X[train], y[train], seed=seed, shard=0)
        right["sharded"] += int(
            (ShardedModel(models, data.labels).predict(X[test]) == y[test]).sum()
        )
        right["unsharded"] += int((one.predict(X[test]) == y[test]).sum())
    acc = {k: v / n for k, v in right.items()}
    points = 100 * (acc["unsharded"] - acc["sharded"])
    se = 100 * float(np.sqrt(sum(a * (1 - a) for a in acc.values()) / n))
    return {
        "folds": folds,
        "rows": n,
        "sharded": round(acc["sharded"], 4),
        "unsharded": round(acc["unsharded"], 4),
        "points": round(points, 2),
        "points_se": round(se, 2),
    }


def bench_unlearning(
    name: str, built: Community, repeat: int, *, final_full: bool = True, cv_folds: int = 0
) -> dict[str, Any]:
    """Full train, then ``repeat`` times: withdraw one item, train incrementally; then a
    full retrain of the final data (``final_full``; else the first full train, which had
    ``repeat`` more items, is the comparison)."""
    hub = built.open()
    rng = random.Random(7)
    try:
        charter = hub.state.charter
        assert charter is not None
        shards = charter.training.shards
        log(f"unlearning ({name}): S={shards}, full hub.models.train()")
        with CpuWatch() as watch:
            full = [hub_train(hub)]
            log(f"    full: {full[-1][0]:.2f}s {full[-1][1]['phases']}")
            incremental = []
            for _ in range(repeat):
                _, shard = withdraw_one(hub, built.keys, rng)
                seconds, result = hub_train(hub, incremental=True)
                log(f"    withdrew 1 item of shard {shard}; incremental: {seconds:.2f}s")
                if result["retrained"] != [shard]:
                    raise AssertionError(f"retrained {result['retrained']}, expected [{shard}]")
                incremental.append((seconds, result))
            data = pool_arrays(hub)
            same_artifact = same_predictions = None
            if final_full:
                full.append(hub_train(hub))
                log(f"    full retrain of the same data: {full[-1][0]:.2f}s")
                same_artifact = (
                    full[-1][1]["artifact"]["sha256"] == incremental[-1][1]["artifact"]["sha256"]
                )
                a, _ = load_model(hub, incremental[-1][1]["version"])
                b, _ = load_model(hub, full[-1][1]["version"])
                same_predictions = bool(
                    np.array_equal(a.predict_proba(data.X_eval), b.predict_proba(data.X_eval))
                )
            trainer = get_trainer(trainer_name(charter), data.kind)
            seed = shard_seed(charter.training.seed, 0)
            direct = []
            for _ in range(repeat):
                wait_idle()
                direct.append(timed(lambda: trainer.make(data.kind, seed).fit(data.X, data.y)))
                log(f"    direct unsharded fit: {direct[-1].wall:.2f}s")
        unsharded = direct[-1].value
        acc_unsharded = float((unsharded.predict(data.X_eval) == data.y_eval).mean())
        acc_sharded = float(incremental[-1][1]["metrics"]["accuracy"])
        inc = med([s for s, _ in incremental])
        full_s = med([s for s, _ in full])
        direct_s = med([t.wall for t in direct])
        points = 100 * (acc_unsharded - acc_sharded)
        n_eval = int(data.X_eval.shape[0])
        # Standard error of the difference of two accuracies on the same n rows (upper
        # bound, as if the two models' errors were independent), in points.
        se = 100 * float(
            np.sqrt(
                (acc_sharded * (1 - acc_sharded) + acc_unsharded * (1 - acc_unsharded)) / n_eval
            )
        )
        return {
            "shards": shards,
            "training_rows": int(data.X.shape[0]),
            "incremental": {
                "seconds": r3(inc),
                "runs": [r3(s) for s, _ in incremental],
                "phases": sorted(incremental, key=lambda r: r[0])[len(incremental) // 2][1][
                    "phases"
                ],
            },
            "full_retrain": {
                "what": f"hub.models.train() with S={shards}, "
                + ("same data" if final_full else f"first train ({repeat} more items)"),
                "seconds": r3(full_s),
                "runs": [r3(s) for s, _ in full],
                "phases": full[-1][1]["phases"],
            },
            "direct_unsharded_fit": {
                "what": "trainer.make(kind, seed).fit(X, y) on all training rows",
                "seconds": r3(direct_s),
                "runs": [r3(t.wall) for t in direct],
            },
            "ratio": round(inc / full_s, 4),
            "ratio_to_unsharded_fit": round(inc / direct_s, 4),
            "full_retrain_to_unsharded_fit": round(full_s / direct_s, 4),
            "incremental_vs_full_retrain": {
                "same_artifact_sha256": same_artifact,
                "same_predictions": same_predictions,
            },
            "target_ratio": TARGET_UNLEARN,
            "meets_target": inc / full_s <= TARGET_UNLEARN,
            "accuracy": {
                "evaluation_rows": n_eval,
                "sharded": round(acc_sharded, 4),
                "unsharded": round(acc_unsharded, 4),
                "points": round(points, 2),
                "points_se": round(se, 2),
                "target_points": TARGET_POINTS,
                "meets_target": abs(points) <= TARGET_POINTS,
                "cross_validation": cv_accuracy(
                    data, trainer_name(charter), shards, charter.training.seed, cv_folds
                )
                if cv_folds
                else None,
            },
            "other_cores_busy": watch.other_cores_busy,
        }
    finally:
        hub.close()


# -- 3. serving -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "commonweal"
    return [str(script)] if script.exists() else [sys.executable, "-m", "commonweal"]


@dataclass
class Load:
    ok: int
    errors: dict[str, int]
    latencies: list[float]
    seconds: float
    client_cpu: float
    server_cpu: float | None


def drive(
    base: str, path: str, secret: str, bodies: list[bytes], threads: int, seconds: float, pid: int
) -> Load:
    """``threads`` keep-alive clients posting single-item bodies until ``seconds`` pass."""
    stop = time.perf_counter() + seconds
    lat: list[list[float]] = [[] for _ in range(threads)]
    errors: dict[str, int] = {}
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    go = threading.Barrier(threads + 1)

    def worker(n: int) -> None:
        mine = lat[n]
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            go.wait()
            k = n
            while time.perf_counter() < stop:
                body = bodies[k % len(bodies)]
                k += threads
                t = time.perf_counter()
                try:
                    r = http.post(path, content=body)
                    status = str(r.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                if status == "200":
                    mine.append(time.perf_counter() - t)
                else:
                    with lock:
                        errors[status] = errors.get(status, 0) + 1

    pool_ = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool_:
        t.start()
    go.wait()
    c0, s0, t0 = time.process_time(), pid_cpu(pid), time.perf_counter()
    for t in pool_:
        t.join()
    elapsed = time.perf_counter() - t0
    c1, s1 = time.process_time(), pid_cpu(pid)
    flat = [x for part in lat for x in part]
    server = None if s0 is None or s1 is None else (s1 - s0) / elapsed
    return Load(len(flat), errors, flat, elapsed, (c1 - c0) / elapsed, server)


def pct(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def revenue_calls(hub: Hub, start: int, key_hash: str) -> int:
    """Calls billed to ``key_hash`` in ``revenue.record`` events from entry ``start`` on."""
    calls = 0
    pos, size = start, hub.log.size()
    while pos < size:
        leaves = hub.log.entries(pos, size)
        for leaf in leaves:
            if leaf.kind == "revenue.record":
                calls += sum(u["calls"] for u in leaf.body["usage"] if u["key_hash"] == key_hash)
        pos += len(leaves)
    return calls


def bench_serving(
    built: Community, *, seconds: float, warmup: float, threads: int, anchor_calls: int, tmp: Path
) -> dict[str, Any]:
    from commonweal.wire import hash_api_key as hash_key

    hub = built.open()
    if hub.state.latest_model is None:
        log("serving: training a model first")
        hub.models.train()
    version = hub.state.latest_model
    assert version is not None and hub.state.charter is not None
    task = hub.state.charter.task
    assert task is not None
    with HubClient(str(built.directory)) as client:
        secret, _ = client.create_apikey(built.founder, "bench", quota_per_day=10**9)
    key_hash = hash_key(secret)
    hub.refresh()
    start_entry, treasury_before = hub.log.size(), hub.state.treasury
    texts = [it["text"] for it in text_items(2000, seed=99)]
    bodies = [json.dumps({"inputs": [{"text": t}]}).encode() for t in texts]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "COMMONWEAL_DATABASE_URL"}
    server_log = tmp / "serve.log"
    with server_log.open("wb") as out:
        server = subprocess.Popen(
            [*_cli(), "serve", "--hub", str(built.directory), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    path = f"/api/v1/models/{version.version}/predict"
    try:
        for _ in range(300):
            try:
                httpx.get(base + "/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if server.poll() is not None:
                    raise RuntimeError(server_log.read_text()[-2000:]) from None
                time.sleep(0.1)
        log(f"serving: warm-up {warmup:.0f}s, then {seconds:.0f}s with {threads} clients")
        first = httpx.post(  # loads the version's shards
            base + path, content=bodies[0], headers={"Authorization": f"Bearer {secret}"}
        )
        first.raise_for_status()
        warm = drive(base, path, secret, bodies, threads, warmup, server.pid)
        wait_idle()
        with CpuWatch([server.pid]) as watch:
            load = drive(base, path, secret, bodies, threads, seconds, server.pid)
        rps = load.ok / load.seconds
        log(f"  {rps:.0f} requests/s, p50 {1000 * pct(load.latencies, 50):.2f} ms")
    finally:
        server.send_signal(signal.SIGINT)  # the server bills the remainder on shutdown
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    hub.refresh()
    billed = revenue_calls(hub, start_entry, key_hash)
    treasury = hub.state.treasury
    successes = 1 + warm.ok + load.ok

    # Anchor: the same version's model, in this process, one featurized item per call.
    model, _ = load_model(hub, version.version)
    lat = []
    items = [{"text": t} for t in texts]
    for n in range(anchor_calls + 50):
        t0 = time.perf_counter()
        model.predict_proba(featurize(task, [items[n % len(items)]]))
        if n >= 50:
            lat.append(time.perf_counter() - t0)
    # Between the two: the hub's own predict (input checks, featurize, model, response
    # shape), in-process and unmetered, so HTTP's share of a request shows.
    inproc = []
    for n in range(anchor_calls + 50):
        t0 = time.perf_counter()
        hub.models.predict(version.version, [items[n % len(items)]], api_key=None, metered=False)
        if n >= 50:
            inproc.append(time.perf_counter() - t0)
    hub.close()
    anchor_rate = len(lat) / sum(lat)
    return {
        "what": "single-text predictions over HTTP, API key, metering and billing on",
        "version": version.version,
        "shards": hub.state.charter.training.shards,
        "clients": threads,
        "seconds": r3(load.seconds),
        "requests": load.ok,
        "errors": load.errors,
        "requests_per_s": round(rps, 1),
        "latency_ms": {
            "p50": round(1000 * pct(load.latencies, 50), 3),
            "p90": round(1000 * pct(load.latencies, 90), 3),
            "p99": round(1000 * pct(load.latencies, 99), 3),
        },
        "server_cpu_cores": None if load.server_cpu is None else round(load.server_cpu, 2),
        "client_cpu_cores": round(load.client_cpu, 2),
        "other_cores_busy": watch.other_cores_busy,
        "anchor": {
            "what": "ShardedModel.predict_proba(featurize(one item)) in-process, per call",
            "calls_per_s": round(anchor_rate, 1),
            "latency_ms": {
                "p50": round(1000 * pct(lat, 50), 3),
                "p99": round(1000 * pct(lat, 99), 3),
            },
        },
        "hub_predict_in_process_ms": {
            "p50": round(1000 * pct(inproc, 50), 3),
            "p99": round(1000 * pct(inproc, 99), 3),
        },
        "ratio": round(rps / anchor_rate, 4),
        "metering": {
            "successful_requests": successes,
            "warmup_requests": 1 + warm.ok,
            "billed_calls": billed,
            "treasury_calls_added": treasury.calls - treasury_before.calls,
            "treasury_revenue_added": treasury.revenue - treasury_before.revenue,
            "matches": billed == successes == treasury.calls - treasury_before.calls,
        },
        "target_requests_per_s": TARGET_RPS,
        "meets_target": rps >= TARGET_RPS,
    }


# -- output ---------------------------------------------------------------------------------


def table(doc: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []

    def ok(flag: bool | None) -> str:
        return "-" if flag is None else ("yes" if flag else "NO")

    for name, o in doc.get("overhead", {}).items():
        rows.append(
            (
                f"1. overhead, {name} ({o['rows']} rows) [the 1.15x figure]",
                f"{o['seconds']:.2f} s",
                f"{o['anchor']['seconds']:.2f} s",
                f"{o['ratio']:.3f}x",
                f"<= {TARGET_OVERHEAD}x",
                ok(o["meets_target"]),
            )
        )
        e = o["end_to_end"]
        rows.append(
            (
                f"   hub.models.train() end to end, {name}, S=1 (informational)",
                f"{e['seconds']:.2f} s",
                f"{e['anchor_seconds']:.2f} s",
                f"{e['ratio']:.3f}x",
                "-",
                "-",
            )
        )
    for name, u in doc.get("unlearning", {}).items():
        s, timing = u["shards"], name == "text"
        rows.append(
            (
                f"2. unlearn 1 item, {name}: incremental vs full hub.models.train(), S={s}",
                f"{u['incremental']['seconds']:.2f} s",
                f"{u['full_retrain']['seconds']:.2f} s",
                f"{u['ratio']:.3f}",
                f"<= {TARGET_UNLEARN}" if timing else "- (too small to time)",
                ok(u["meets_target"]) if timing else "-",
            )
        )
        rows.append(
            (
                f"   incremental vs direct unsharded fit, {name}",
                f"{u['incremental']['seconds']:.2f} s",
                f"{u['direct_unsharded_fit']['seconds']:.2f} s",
                f"{u['ratio_to_unsharded_fit']:.3f}",
                f"<= {TARGET_UNLEARN}" if timing else "-",
                ok(u["ratio_to_unsharded_fit"] <= TARGET_UNLEARN) if timing else "-",
            )
        )
        same = u["incremental_vs_full_retrain"]
        for what, key in (("predictions", "same_predictions"), ("sha256", "same_artifact_sha256")):
            if same[key] is not None:
                rows.append(
                    (
                        f"   incremental version vs full retrain, {what}, {name}",
                        "same" if same[key] else "different",
                        "",
                        "",
                        "same",
                        ok(same[key]),
                    )
                )
        a = u["accuracy"]
        rows.append(
            (
                f"   accuracy S={s} vs unsharded, {name} ({a['evaluation_rows']} eval rows)",
                f"{100 * a['sharded']:.2f}%",
                f"{100 * a['unsharded']:.2f}%",
                f"{-a['points']:+.2f} pt (se {a['points_se']:.1f})",
                f"within {TARGET_POINTS:g} pt" if name == "digits" else "-",
                ok(a["meets_target"]) if name == "digits" else "-",
            )
        )
        cv = a.get("cross_validation")
        if cv:
            rows.append(
                (
                    f"   accuracy S={s} vs unsharded, {name}, {cv['folds']}-fold over {cv['rows']}",
                    f"{100 * cv['sharded']:.2f}%",
                    f"{100 * cv['unsharded']:.2f}%",
                    f"{-cv['points']:+.2f} pt (se {cv['points_se']:.1f})",
                    "-",
                    "-",
                )
            )
    if "serving" in doc:
        v = doc["serving"]
        a = v["anchor"]
        rows.append(
            (
                f"3. predict over HTTP, 1 text/request, {v['clients']} clients, S={v['shards']}",
                f"{v['requests_per_s']:.0f} req/s",
                f"{a['calls_per_s']:.0f} calls/s",
                f"{v['ratio']:.3f}",
                f">= {TARGET_RPS:.0f} req/s",
                ok(v["meets_target"]),
            )
        )
        lat, al = v["latency_ms"], a["latency_ms"]
        rows.append(
            (
                "   latency p50 / p99",
                f"{lat['p50']:.2f} / {lat['p99']:.2f} ms",
                f"{al['p50']:.3f} / {al['p99']:.3f} ms",
                f"{lat['p50'] / al['p50']:.1f}x",
                "-",
                "-",
            )
        )
        hp = v["hub_predict_in_process_ms"]
        rows.append(
            (
                "   hub.models.predict in-process, unmetered (no HTTP): p50 / p99",
                f"{hp['p50']:.2f} / {hp['p99']:.2f} ms",
                f"{al['p50']:.3f} / {al['p99']:.3f} ms",
                f"{hp['p50'] / al['p50']:.1f}x",
                "-",
                "-",
            )
        )
        m = v["metering"]
        rows.append(
            (
                "   metering: calls billed vs successful requests",
                str(m["billed_calls"]),
                str(m["successful_requests"]),
                "equal" if m["matches"] else "DIFFER",
                "equal",
                ok(m["matches"]),
            )
        )
    head = ("figure", "ours", "anchor", "ratio", "target", "ok")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def main(argv: Sequence[str] | None = None) -> None:
    global _WAIT_IDLE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--only", action="append", choices=SECTIONS, help="repeatable")
    ap.add_argument("--json", action="store_true", help="JSON on stdout, the table on stderr")
    ap.add_argument("--texts", type=int, help="generated texts (default 20000; quick 2000)")
    ap.add_argument("--repeat", type=int, help="runs per timed figure (default 3; quick 1)")
    ap.add_argument("--seconds", type=float, help="measured load (default 10; quick 3)")
    ap.add_argument("--concurrency", type=int, default=8, help="client threads")
    ap.add_argument("--wait-idle", type=float, default=0.0, help="wait for a quiet machine")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP threads in this process (0: the libraries' default); the server "
        "always runs with the default",
    )
    ap.add_argument(
        "--workdir", type=Path, help="build hubs here and reuse them next time (development)"
    )
    args = ap.parse_args(argv)
    _WAIT_IDLE = args.wait_idle
    os.environ.pop("COMMONWEAL_DATABASE_URL", None)
    only = set(args.only or SECTIONS)
    n_texts = args.texts or (2000 if args.quick else 20_000)
    repeat = args.repeat or (1 if args.quick else 3)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    doc: dict[str, Any] = {
        "bench": "train",
        "quick": args.quick,
        "threads": args.threads or "library default",
        "machine": machine_facts("numpy", "scipy", "scikit-learn", "skops", "uvicorn"),
        "source": source_version(),
    }
    with tempfile.TemporaryDirectory() as d, threadpool_limits(args.threads or None):
        work = args.workdir or Path(d)
        work.mkdir(parents=True, exist_ok=True)
        log(f"building communities in {work}")
        texts = text_items(n_texts, seed=1)
        digits = digit_items()
        built: dict[str, Community] = {}

        def get(name: str) -> Community:
            if name not in built:
                kind, items = (
                    ("text-classification", texts)
                    if name.startswith("text")
                    else ("image-classification", digits)
                )
                built[name] = community(
                    work / name, kind=kind, items=items, shards=8 if name.endswith("s8") else 1
                )
            return built[name]

        if "overhead" in only:
            full = not args.quick and args.threads != 0
            doc["overhead"] = {
                "text": bench_overhead(
                    "text", get("text-s1"), repeat, repeat, library_threads=full
                ),
                "digits": bench_overhead(
                    "digits", get("digits-s1"), max(5 * repeat, 9), repeat, library_threads=full
                ),
            }
        if "unlearning" in only:
            doc["unlearning"] = {
                "text": bench_unlearning("text", get("text-s8"), repeat, final_full=not args.quick),
                "digits": bench_unlearning("digits", get("digits-s8"), max(repeat, 3), cv_folds=5),
            }
        if "serving" in only:
            doc["serving"] = bench_serving(
                get("text-s8"),
                seconds=seconds,
                warmup=1.0 if args.quick else 2.0,
                threads=args.concurrency,
                anchor_calls=300 if args.quick else 2000,
                tmp=Path(d),
            )
        doc["build_seconds"] = {k: r3(v.build_seconds) for k, v in built.items()}
    text = table(doc)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(doc, indent=2))
    else:
        print(text)


if __name__ == "__main__":
    main()
