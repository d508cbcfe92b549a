"""Fairness figures: seeded scenario runs of real communities, each over several seeds.

Every community is a real ``Hub`` in-process on SQLite in a temporary directory; members
hold ``SigningKey``s derived from the seed, every item goes in as a signed
``contribution.submit`` (salts seeded, as ``bench/train.py`` does) and every review as a
signed ``review.submit``; the hub screens, decides by consensus, trains, values and closes
reward epochs with the charter's defaults unless said otherwise below. One JSON document
goes to stdout (per seed and a summary per figure); progress to stderr.

1. ``accuracy`` — a model worth owning at every size. For iris, wine, breast cancer
   (tabular), digits (8x8 images as PNGs) and a generated text set (four topics, sentences
   from templates: shipped with the bench, no downloads), the items are dealt over 5
   members and accepted by one trusted review each; ``hub.models.train()`` with the
   default training charter. Reported: the version's accuracy, the ``unsharded.accuracy``
   it logs, and an **anchor computed here**: the same scikit-learn estimator built in this
   file from the bench's own copy of the data (not the hub's features), fitted once on the
   version's training rows and scored on its evaluation items. Target: the community's
   model at most 2 points below the anchor.
2. ``economy`` — one digits community per seed with members who behave differently:
   contributors with clean labels (Ada, C1-C3, S), a mislabeller M (30% of labels flipped),
   a control K and a copier P who send the same number of items late (K originals, P half
   exact copies and half one-pixel-shifted copies of accepted items of others, as a
   reviewer who saw them could make), and five reviewers: C1-C3 careful (right with
   probability 0.9), R a rubber-stamper (accepts everything), X random (accept or reject
   on a coin flip). Default review rules (2 reviews, 3 for newcomers, Dawid-Skene), then
   train, value (knn-shapley) and close one epoch. Figures:

   - ``review_pay``: each reviewer's review award per review; R and X below the median
     careful reviewer in every seed, X at most 10% of it;
   - ``copier``: P's data award over K's (the same number of items sent); at most 10%;
   - ``mislabeller``: M's data award per item sent over the median per item of the clean
     contributors Ada, C1-C3; below 0.5;
   - ``split_identity``: the same seed run again with S's items dealt over two identities
     S1, S2 (every other key, salt, item and review the same); (S1 + S2) / S within ±10%.

   The hub draws its evaluation set by hashing each item's id with its batch's screening
   entry, which holds the hub's random nonce and the time: two runs of the *same* community
   draw different sets (seed 0: S earned 113,140 and 119,431 shares in two identical runs,
   accuracy 0.92 and 0.88), and a split puts S's items in other batches anyway. Compared
   across two such draws, the split figure measured the luck of the draw (0.84-1.26), not
   the split. So the economy runs hold the draw fixed (``fixed_evaluation_draw``): each
   item's draw hashes its id with the seed instead — the same holdout rate and the same
   top-up rule, only no longer different between the twins. The JSON checks that both
   twins trained on the same items and were scored on the same evaluation set; what is
   left of the difference is the split's own effect.

Exact and near copies are found (or not) by the hub's own screening: the JSON says how many
of P's items were refused as exact copies, flagged as near copies (and so credited to the
original), or accepted as originals.

    .venv/bin/python bench/fairness.py > /tmp/bench_fairness.json   # 5 seeds, full sizes
    .venv/bin/python bench/fairness.py --quick                      # smaller data sets
    .venv/bin/python bench/fairness.py --seeds 10 --only economy
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from commonweal.community.charter import validate_charter
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.wire import SALT_BYTES, describe_item
from machine import CpuWatch, log, machine_facts, source_version

TARGET_POINTS = 2.0  # the community's model at most this many points below the anchor
TARGET_REVIEW_RANDOM = 0.10  # random reviewer's pay per review / median careful, at most
TARGET_COPIER = 0.10  # copier's data award / control's, at most
TARGET_MISLABELLER = 0.5  # mislabeller's award per item / careful contributors', below
TARGET_SPLIT = 0.10  # |split / single - 1|, at most

SECTIONS = ("accuracy", "economy")
DATASETS = ("iris", "wine", "breast_cancer", "digits", "text")
BATCH = 150  # items per contribution.submit (a signed event stays well under 64 KiB)
EVENTS = 1000  # events per hub.submit
CAREFUL_P = 0.9  # a careful reviewer's chance of being right
FLIP_PCT = 30  # the mislabeller's share of flipped labels


# -- data -----------------------------------------------------------------------------------


@dataclass
class Dataset:
    """Items as members send them, with the bench's own copy of the data for the anchor."""

    name: str
    task: dict[str, Any]
    items: list[dict[str, Any]]
    labels: list[str]  # the true label of each item
    raw: Any  # per item: the feature row (tabular, digits) or the text


def _png(pixels: Any) -> str:
    from PIL import Image

    img = Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode="L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def digit_pixels() -> tuple[Any, list[str]]:
    """sklearn's 1,797 digits as 8x8 greyscale bytes (0-16 scaled by 15)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = (d.images * 15).clip(0, 255).astype(np.uint8)
    return pixels, [str(int(t)) for t in d.target]


def tabular(name: str) -> Dataset:
    from sklearn import datasets

    loader = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
    }[name]
    d = loader()
    cols = [re.sub(r"[^A-Za-z0-9_.-]", "_", str(f)).strip("_")[:60] for f in d.feature_names]
    cols = [c if re.match(r"^[A-Za-z_]", c) else f"f_{c}" for c in cols]
    names = [str(t) for t in d.target_names]
    labels = [names[int(t)] for t in d.target]
    # Decimal strings, as the log holds no floats; float(repr(x)) == x, so the hub's
    # features are exactly the bench's.
    items = [
        {"features": {c: repr(float(v)) for c, v in zip(cols, row, strict=True)}, "target": lab}
        for row, lab in zip(d.data, labels, strict=True)
    ]
    task = {
        "kind": "tabular-classification",
        "labels": names,
        "columns": [{"name": c, "type": "numeric"} for c in cols],
        "target": "target",
    }
    return Dataset(name, task, items, labels, np.asarray(d.data, dtype=np.float64))


def digits() -> Dataset:
    pixels, labels = digit_pixels()
    items = [{"image": _png(p), "label": lab} for p, lab in zip(pixels, labels, strict=True)]
    task = {"kind": "image-classification", "labels": [str(d) for d in range(10)]}
    task |= {"image_width": 8, "image_height": 8}
    return Dataset("digits", task, items, labels, pixels.reshape(len(pixels), -1) / 255.0)


# Four topics; a sentence is a template filled with a subject, a verb, an object from its
# topic (or, one time in five, from another: the label is usually, not always, clear) and
# a place and time shared by all.
TOPICS = {
    "river": "flood bank water bridge canal rain mill ferry weir towpath lock barge heron ford",
    "market": "bread price stall cheese apples baker coins trader butcher grocer basket honey",
    "school": "teacher pupils lesson homework exam library chalk playground timetable maths",
    "clinic": "nurse doctor patients appointment vaccine surgery prescription pharmacy fever",
}
SUBJECTS = [
    "our neighbour",
    "the council",
    "a volunteer",
    "my sister",
    "the old man",
    "everyone",
    "the town",
]
VERBS = [
    "talked about",
    "worried about",
    "looked at",
    "wrote about",
    "asked about",
    "counted",
    "mentioned",
]
PLACES = [
    "by the square",
    "on the high street",
    "near the station",
    "in the village",
    "down the lane",
]
TIMES = ["this morning", "last week", "on Sunday", "after lunch", "every spring", "again today"]
TEMPLATES = (
    "{s} {v} the {o} {p} {t}.",
    "{t} {s} {v} the {o} and the {o2} {p}.",
    "{s} {v} the {o}, then the {o2}, {t}.",
    "Was it the {o} {s} {v} {p}?",
)


def text_set(n: int, seed: int = 7) -> Dataset:
    rng = random.Random(seed)
    topics = {k: v.split() for k, v in TOPICS.items()}
    names = list(TOPICS)
    items, labels = [], []
    for i in range(n):
        label = names[i % len(names)]

        def word() -> str:
            src = label if rng.random() >= 0.2 else rng.choice(names)  # noqa: B023
            return rng.choice(topics[src])

        text = rng.choice(TEMPLATES).format(
            s=rng.choice(SUBJECTS),
            v=rng.choice(VERBS),
            o=word(),
            o2=word(),
            p=rng.choice(PLACES),
            t=rng.choice(TIMES),
        )
        text = f"{text[0].upper()}{text[1:]} (note {i})"
        items.append({"text": text, "label": label})
        labels.append(label)
    return Dataset(
        "text",
        {"kind": "text-classification", "labels": names},
        items,
        labels,
        [it["text"] for it in items],
    )


def dataset(name: str, *, texts: int) -> Dataset:
    if name == "digits":
        return digits()
    if name == "text":
        return text_set(texts)
    return tabular(name)


# -- communities ----------------------------------------------------------------------------


def key_of(seed: int, name: str) -> SigningKey:
    """A member's key, the same for the same seed and name in every run."""
    import hashlib

    return SigningKey(hashlib.sha256(f"fairness:{seed}:{name}".encode()).digest())


@dataclass
class Community:
    hub: Hub
    keys: dict[str, SigningKey]  # by name
    task_kind: str
    salts: random.Random
    names: dict[str, str] = field(default_factory=dict)  # key id -> name
    sent: dict[str, int] = field(default_factory=dict)  # items sent, by name
    results: dict[str, str] = field(default_factory=dict)  # item id -> screening status
    resembles: dict[str, str] = field(default_factory=dict)  # item id -> item it copies

    def join(self, name: str) -> None:
        key = self.keys[name]
        self.names[key.key_id] = name
        if name != "Ada":
            self.hub.submit(
                sign_event(key, "member.join", {"name": name}, hub=self.hub.origin).to_wire()
            )

    def contribute(self, name: str, items: Sequence[dict[str, Any]]) -> list[str]:
        """Send ``items`` as ``name`` in signed batches; the ids of the items, in order."""
        key = self.keys[name]
        ids = []
        for n in range(0, len(items), BATCH):
            described, content = [], []
            for item in items[n : n + BATCH]:
                meta, part = describe_item(
                    item,
                    task_kind=self.task_kind,
                    license="CC-BY-4.0",
                    consent=("train", "evaluate"),
                    salt=self.salts.randbytes(SALT_BYTES),
                )
                described.append(meta)
                content.append(part)
            ev = sign_event(key, "contribution.submit", {"items": described}, hub=self.hub.origin)
            got = self.hub.data.contribute({**ev.to_wire(), "content": content})
            for r in got["items"]:
                self.results[r["id"]] = r["status"]
                if "resembles" in r:
                    self.resembles[r["id"]] = r["resembles"]
            ids.extend(m["id"] for m in described)
        self.sent[name] = self.sent.get(name, 0) + len(items)
        return ids

    def submit(self, events: list[Any]) -> None:
        for b in range(0, len(events), EVENTS):
            self.hub.submit({"events": [e.to_wire() for e in events[b : b + EVENTS]]})


def found(
    directory: Path, task: dict[str, Any], seed: int, extra: dict[str, Any] | None = None
) -> Community:
    charter = validate_charter({"name": "Fairness bench", "task": task, **(extra or {})})
    keys = {"Ada": key_of(seed, "Ada")}
    hub, _ = Hub.init(
        directory,
        charter=charter,
        founder_name="Ada",
        founder_key=keys["Ada"],
        database="sqlite:///hub.db",
    )
    c = Community(hub, keys, task["kind"], random.Random(f"salts:{seed}"))
    c.names[keys["Ada"].key_id] = "Ada"
    return c


# -- 1. accuracy ----------------------------------------------------------------------------


def anchor_model(ds: Dataset, n_train: int) -> tuple[Any, Callable[[list[int]], Any]]:
    """The estimator the default charter names for this task, built here with
    scikit-learn's own classes and parameters, and the features of rows (by index into
    the data set) from the bench's copy of the data."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression

    kind = ds.task["kind"]
    if kind == "tabular-classification":  # gradient-boosting, min_samples_leaf "auto"
        est = HistGradientBoostingClassifier(
            max_iter=200,
            learning_rate=0.1,
            min_samples_leaf=max(2, min(20, n_train // 10)),
            random_state=0,
        )
        return est, lambda rows: ds.raw[rows]
    if kind == "image-classification":  # pixels-logreg, pixels / 255
        est = LogisticRegression(C=1.0, max_iter=2000, random_state=0)
        return est, lambda rows: ds.raw[rows]
    vec = HashingVectorizer(n_features=2**18, ngram_range=(1, 2), alternate_sign=False, norm="l2")
    est = LogisticRegression(C=10.0, max_iter=1000, random_state=0)  # hashing-logreg
    return est, lambda rows: vec.transform([ds.raw[r] for r in rows])


def run_accuracy(directory: Path, ds: Dataset, seed: int) -> dict[str, Any]:
    """The default charter's model on ``ds``; if the default charter refuses to train (too
    few evaluation items), the refusal is reported and the run repeated with
    ``training.evaluation.holdout_pct`` 20."""
    from commonweal.errors import Conflict

    try:
        return _run_accuracy(directory, ds, seed, {})
    except Conflict as e:
        if "min_items" not in str(e):
            raise
        log(f"accuracy {ds.name} seed {seed}: default charter refused to train: {e}")
        retry = {"training": {"evaluation": {"holdout_pct": 20}}}
        got = _run_accuracy(directory.with_name(directory.name + "-h20"), ds, seed, retry)
        return {**got, "default_charter_refused": str(e), "charter_changed": retry}


def _run_accuracy(
    directory: Path, ds: Dataset, seed: int, charter: dict[str, Any]
) -> dict[str, Any]:
    rng = random.Random(f"deal:{ds.name}:{seed}")
    order = list(range(len(ds.items)))
    rng.shuffle(order)
    members = ["Ada", "M1", "M2", "M3", "M4"]
    extra = {
        "review": {"reviews_needed": 1, "newcomer_reviews_needed": 1, "consensus": "majority"},
        **charter,
    }
    c = found(directory, ds.task, seed, extra)
    try:
        for name in members[1:]:
            c.keys[name] = key_of(seed, name)
            c.join(name)
        row_of: dict[str, int] = {}
        owner: dict[str, str] = {}
        for m, name in enumerate(members):
            rows = order[m :: len(members)]
            ids = c.contribute(name, [ds.items[r] for r in rows])
            row_of.update(zip(ids, rows, strict=True))
            owner.update(dict.fromkeys(ids, name))
        # One trusted review each, by the next member round the table.
        reviews = [
            sign_event(
                c.keys[members[(members.index(owner[i]) + 1) % len(members)]],
                "review.submit",
                {"item": i, "verdict": "accept"},
                hub=c.hub.origin,
            )
            for i, status in c.results.items()
            if status == "in_review"
        ]
        c.submit(reviews)
        accepted = sum(x.status == "accepted" for x in c.hub.state.contributions.values())
        t = time.perf_counter()
        got = c.hub.models.train()
        train_s = time.perf_counter() - t
        v = got.get("version") or c.hub.models.versions()[-1]["version"]
        row = c.hub.models.version(v)
        metrics = row["metrics"]
        train_ids = c.hub.models.manifest_ids(v)
        eval_ids = c.hub.models.evaluation_ids(v)
        train_rows = [row_of[i] for i in train_ids]
        eval_rows = [row_of[i] for i in eval_ids]
        est, feats = anchor_model(ds, len(train_rows))
        est.fit(feats(train_rows), [ds.labels[r] for r in train_rows])
        pred = est.predict(feats(eval_rows))
        anchor = float(np.mean([p == ds.labels[r] for p, r in zip(pred, eval_rows, strict=True)]))
    finally:
        c.hub.close()
    ours = metrics["accuracy"]
    unsharded = metrics.get("unsharded.accuracy")
    behind = 100 * (anchor - ours)
    return {
        "seed": seed,
        "items": len(ds.items),
        "accepted": accepted,
        "training_rows": len(train_rows),
        "evaluation_items": len(eval_rows),
        "shards": row.get("shards"),
        "accuracy": round(ours, 4),
        "unsharded_logged": None if unsharded is None else round(unsharded, 4),
        "anchor": round(anchor, 4),
        "points_behind_anchor": round(behind, 2),
        "warnings": got.get("warnings", []),
        "train_seconds": round(train_s, 2),
        "holds": behind <= TARGET_POINTS,
    }


# -- 2. economy -----------------------------------------------------------------------------

CLEAN = ("Ada", "C1", "C2", "C3")
REVIEWERS = ("C1", "C2", "C3", "R", "X")


@dataclass
class Sizes:
    per_member: int  # items of Ada, C1-C3, M and S each
    late: int  # items of K (originals) and of P (copies) each


def shifted(pixels: Any, rng: random.Random) -> Any:
    """The image moved one pixel in a random direction (the edge filled with background)."""
    out = np.zeros_like(pixels)
    dy, dx = rng.choice([(0, 1), (0, -1), (1, 0), (-1, 0)])
    h, w = pixels.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = pixels[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def phash_distances(
    originals: list[Any], copies: list[Any], pool: list[Any], max_distance: int
) -> dict[str, Any]:
    """How far (Hamming bits of the hub's own 64-bit pHash) each near copy is from its
    original, beside how far each original is from the nearest *other* item in the pool:
    a screen can only flag copies closer than distinct digits are to each other."""
    from commonweal.ml.duplicates import ImageNearDuplicates

    index = ImageNearDuplicates(max_distance=max_distance)

    def sig(p: Any) -> int:
        return int(index.signature(np.asarray(p, dtype=np.uint8))[0])

    pool_sigs = np.array([sig(p) for p in pool], dtype=np.uint64)
    to_copy, to_other = [], []
    for o, c in zip(originals, copies, strict=True):
        so = sig(o)
        to_copy.append(int(bin(so ^ sig(c)).count("1")))
        d = np.bitwise_count(pool_sigs ^ np.uint64(so))
        others = d[d > 0]
        to_other.append(int(others.min()) if len(others) else 64)
    return {
        "max_distance": max_distance,
        "copy_median": statistics.median(to_copy) if to_copy else None,
        "copies_within_max": sum(d <= max_distance for d in to_copy),
        "nearest_other_median": statistics.median(to_other) if to_other else None,
        "others_within_max": sum(d <= max_distance for d in to_other),
    }


def verdict(
    who: str, given: str, true: str, labels: list[str], rng: random.Random
) -> dict[str, Any]:
    """What reviewer ``who`` says of an item labelled ``given`` whose true label is ``true``."""
    if who == "R":
        return {"verdict": "accept"}
    if who == "X":
        return {"verdict": rng.choice(["accept", "reject"])}
    right = rng.random() < CAREFUL_P
    if given == true:
        if right:
            return {"verdict": "accept"}
        return {"verdict": "relabel", "label": rng.choice([x for x in labels if x != given])}
    if right:
        return {"verdict": "relabel", "label": true}
    return {"verdict": "accept"}


def run_economy(directory: Path, seed: int, sizes: Sizes, *, split: bool) -> dict[str, Any]:
    """One digits community; ``split``: S's items are dealt over S1 and S2 instead."""
    pixels, truth = digit_pixels()
    labels = [str(d) for d in range(10)]
    rng = random.Random(f"deal:economy:{seed}")
    order = list(range(len(truth)))
    rng.shuffle(order)
    contributors = ["Ada", "C1", "C2", "C3", "M", "S"]
    deal = {
        n: order[k * sizes.per_member : (k + 1) * sizes.per_member]
        for k, n in enumerate(contributors)
    }
    start = len(contributors) * sizes.per_member
    deal["K"] = order[start : start + sizes.late]
    if start + sizes.late > len(order):
        raise ValueError("the sizes ask for more digits than sklearn has")
    flips = random.Random(f"flips:{seed}")
    given = {r: truth[r] for r in order}
    m_rows = deal["M"]
    for r in flips.sample(m_rows, len(m_rows) * FLIP_PCT // 100):
        given[r] = flips.choice([x for x in labels if x != truth[r]])

    def item(pix: Any, label: str) -> dict[str, Any]:
        return {"image": _png(pix), "label": label}

    task = {"kind": "image-classification", "labels": labels, "image_width": 8, "image_height": 8}
    c = found(directory, task, seed)
    senders = ["C1", "C2", "C3", "R", "X", "M", "K", "P", *(["S1", "S2"] if split else ["S"])]
    for name in senders:
        c.keys[name] = key_of(seed, name)
        c.join(name)
    true_of: dict[str, str] = {}
    given_of: dict[str, str] = {}
    row_of: dict[str, int] = {}
    reviews_given: dict[str, int] = dict.fromkeys(REVIEWERS, 0)

    def send(name: str, rows: list[int], images: list[Any] | None = None) -> list[str]:
        images = images if images is not None else [pixels[r] for r in rows]
        ids = c.contribute(name, [item(p, given[r]) for p, r in zip(images, rows, strict=True)])
        for i, r in zip(ids, rows, strict=True):
            true_of[i], given_of[i], row_of[i] = truth[r], given[r], r
        return ids

    def review_all() -> None:
        state = c.hub.state
        events = []
        for i, status in c.results.items():
            contrib = state.contributions.get(i)
            if status != "in_review" or contrib is None or contrib.status != "in_review":
                continue
            who = random.Random(f"review:{seed}:{i}")
            eligible = [n for n in REVIEWERS if c.keys[n].key_id != contrib.member]
            for name in who.sample(eligible, contrib.reviews_needed - contrib.reviews):
                body = {"item": i, **verdict(name, given_of[i], true_of[i], labels, who)}
                events.append(sign_event(c.keys[name], "review.submit", body, hub=c.hub.origin))
                reviews_given[name] += 1
        c.submit(events)

    try:
        # The originals, in interleaved batches (log order is the members' turns).
        for b in range(0, sizes.per_member, BATCH):
            for name in contributors:
                rows = deal[name][b : b + BATCH]
                if name == "S" and split:
                    half = len(rows) // 2
                    send("S1", rows[:half])
                    send("S2", rows[half:])
                else:
                    send(name, rows)
        review_all()
        # Late: the control's originals and the copier's copies of accepted items of others.
        send("K", deal["K"])
        state = c.hub.state
        pool_ids = sorted(
            i for i, x in state.contributions.items() if x.status == "accepted" and i in true_of
        )
        copy_rng = random.Random(f"copies:{seed}")
        picked = copy_rng.sample(pool_ids, sizes.late)
        src = {i: row_of[i] for i in picked}
        exact = picked[: sizes.late // 2]
        near = picked[sizes.late // 2 :]
        p_rows = [src[i] for i in exact + near]
        p_images = [pixels[src[i]] for i in exact] + [
            shifted(pixels[src[i]], copy_rng) for i in near
        ]
        # A copier copies what the log shows: the label as decided.
        for i, r in zip(exact + near, p_rows, strict=True):
            given[r] = state.contributions[i].decided_label or given[r]
        p_ids = send("P", p_rows, p_images)
        review_all()
        hub = c.hub
        trained = hub.models.train()
        valued = hub.ownership.value()
        epoch = hub.ownership.close_epoch()
        state = hub.state
        name_of = c.names
        data = {name_of[m]: s for m, s in _awards(epoch, "data")}
        review = {name_of[m]: s for m, s in _awards(epoch, "review")}
        copies = {
            "sent": len(p_ids),
            "exact_sent": len(exact),
            "near_sent": len(near),
            "refused": sum(c.results[i] == "refused" for i in p_ids),
            "flagged_resembles": sum(i in c.resembles for i in p_ids),
            "near_flagged": sum(i in c.resembles for i in p_ids[len(exact) :]),
            "accepted": sum(state.contributions[i].status == "accepted" for i in p_ids),
        }
        # Originals screening took for copies: each one's value went to someone else.
        copies["originals_flagged"] = {
            name: sum(
                state.contributions[i].resembles is not None
                for i in true_of
                if state.contributions[i].member == c.keys[name].key_id
            )
            for name in senders
            if name != "P"
        }
        copies["near_phash_distance"] = phash_distances(
            [pixels[src[i]] for i in near],
            p_images[len(exact) :],
            [pixels[row_of[i]] for i in pool_ids],
            state.charter.duplicates.image_max_distance if state.charter else 4,
        )
        metrics = hub.models.versions()[-1]["metrics"]
        mv = state.models[trained["version"]]
        statuses: dict[str, dict[str, int]] = {}
        for i in true_of:
            x = state.contributions[i]
            who = name_of[x.member]
            statuses.setdefault(who, {})
            statuses[who][x.status] = statuses[who].get(x.status, 0) + 1
        m_flipped = [
            i
            for i in true_of
            if name_of[state.contributions[i].member] == "M" and given_of[i] != true_of[i]
        ]
        caught = sum(
            state.contributions[i].status != "accepted"
            or (state.contributions[i].decided_label or "") == true_of[i]
            for i in m_flipped
        )
    finally:
        c.hub.close()
    return {
        "data_award": data,
        "review_award": review,
        "reviews_given": reviews_given,
        "sent": dict(c.sent),
        "statuses": statuses,
        "copies": copies,
        "mislabels": {"flipped": len(m_flipped), "caught_by_review": caught},
        "model": {
            "version": trained.get("version"),
            "accuracy": round(metrics["accuracy"], 4),
            "unsharded_accuracy": metrics.get("unsharded.accuracy"),
            "manifest_root": mv.manifest_root,
            "evaluation_root": mv.eval_root,
            "evaluation_items": mv.eval_items,
        },
        "valuation": {"number": valued.get("valuation"), "method": valued.get("method")},
        "pools": {k: v["amount"] for k, v in epoch["pools"].items()},
    }


@contextmanager
def fixed_evaluation_draw(seed: int) -> Iterator[None]:
    """Within the block, every item's evaluation draw hashes its id with the seed rather
    than with its batch's screening entry: the hub and its rules both read the beacon
    through ``community.models.evaluation_beacon``, so the versions stay valid, and two
    runs holding the same items draw the same evaluation set."""
    from commonweal.community import models

    real = models.evaluation_beacon
    models.evaluation_beacon = lambda state, c: f"fairness-bench:{seed}"
    models._POOL_CACHE.clear()
    try:
        yield
    finally:
        models.evaluation_beacon = real
        models._POOL_CACHE.clear()


def _awards(epoch: dict[str, Any], pool: str) -> list[tuple[str, int]]:
    return [(a["member"], a["shares"]) for a in epoch["pools"][pool]["awards"]]


# -- figures --------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> float | None:
    return None if not b else round(a / b, 4)


def economy_figures(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The four economy figures of one seed, from the run (``a``) and its split twin (``b``)."""
    per_review = {
        n: round(a["review_award"].get(n, 0) / a["reviews_given"][n], 2)
        if a["reviews_given"][n]
        else 0.0
        for n in REVIEWERS
    }
    careful = statistics.median(per_review[n] for n in ("C1", "C2", "C3"))
    r, x = _ratio(per_review["R"], careful), _ratio(per_review["X"], careful)
    data, sent = a["data_award"], a["sent"]
    copier = _ratio(data.get("P", 0), data.get("K", 0))
    per_item = {n: round(data.get(n, 0) / sent[n], 2) for n in (*CLEAN, "M", "S", "K", "P")}
    clean = statistics.median(per_item[n] for n in CLEAN)
    mis = _ratio(per_item["M"], clean)
    single = a["data_award"].get("S", 0)
    both = b["data_award"].get("S1", 0) + b["data_award"].get("S2", 0)
    split = _ratio(both, single)
    return {
        "review_pay": {
            "per_review": per_review,
            "median_careful": careful,
            "rubber_stamper_over_careful": r,
            "random_over_careful": x,
            "holds": r is not None
            and x is not None
            and r < 1
            and x < 1
            and x <= TARGET_REVIEW_RANDOM,
        },
        "copier": {
            "copier_award": data.get("P", 0),
            "control_award": data.get("K", 0),
            "items_each": sent["P"],
            "copies": a["copies"],
            "copier_over_control": copier,
            "holds": copier is not None and copier <= TARGET_COPIER,
        },
        "mislabeller": {
            "per_item": per_item,
            "median_clean_per_item": clean,
            "mislabeller_over_clean": mis,
            "mislabels": a["mislabels"],
            "mislabeller_statuses": a["statuses"].get("M", {}),
            "holds": mis is not None and mis < TARGET_MISLABELLER,
        },
        "split_identity": {
            "one_identity": single,
            "two_identities": [b["data_award"].get("S1", 0), b["data_award"].get("S2", 0)],
            "data_pool": [a["pools"]["data"], b["pools"]["data"]],
            "evaluation_accuracy": [a["model"]["accuracy"], b["model"]["accuracy"]],
            "same_training_items": a["model"]["manifest_root"] == b["model"]["manifest_root"],
            "same_evaluation_set": a["model"]["evaluation_root"] == b["model"]["evaluation_root"],
            "split_over_single": split,
            "holds": split is not None and abs(split - 1) <= TARGET_SPLIT,
        },
    }


TARGETS = {
    "accuracy": f"the community's model at most {TARGET_POINTS:g} accuracy points below one "
    "unsharded model of the same kind fitted here on the same rows (per data set)",
    "review_pay": "rubber-stamper's and random reviewer's review award per review below the "
    f"median careful reviewer's; random at most {TARGET_REVIEW_RANDOM:.0%} of it",
    "copier": f"copier's data award at most {TARGET_COPIER:.0%} of the control's (same number "
    "of original items)",
    "mislabeller": f"mislabeller's ({FLIP_PCT}% flips) data award per item below "
    f"{TARGET_MISLABELLER:g} x the clean contributors' median",
    "split_identity": f"one member's data over two identities: combined data award within "
    f"±{TARGET_SPLIT:.0%} of one identity holding it",
}
HEADLINE = {
    "review_pay": ("rubber_stamper_over_careful", "random_over_careful"),
    "copier": ("copier_over_control",),
    "mislabeller": ("mislabeller_over_clean",),
    "split_identity": ("split_over_single",),
}


def summarise(name: str, runs: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"target": TARGETS[name]}
    for k in keys:
        vals = [r[k] for r in runs]
        nums = [v for v in vals if v is not None]
        out[k] = {
            "per_seed": vals,
            "min": min(nums) if nums else None,
            "median": statistics.median(nums) if nums else None,
            "max": max(nums) if nums else None,
        }
    out["holds_per_seed"] = [r["holds"] for r in runs]
    out["holds_every_seed"] = all(r["holds"] for r in runs)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds per figure (default 5)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smaller communities: a few minutes")
    ap.add_argument("--only", action="append", choices=SECTIONS, help="repeatable")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (0: default)")
    ap.add_argument(
        "--dataset", action="append", choices=DATASETS, help="accuracy: only these (repeatable)"
    )
    args = ap.parse_args(argv)
    os.environ.pop("COMMONWEAL_DATABASE_URL", None)
    only = set(args.only or SECTIONS)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    sizes = Sizes(per_member=120, late=60) if args.quick else Sizes(per_member=240, late=150)
    texts = 400 if args.quick else 1200
    doc: dict[str, Any] = {
        "bench": "fairness",
        "quick": args.quick,
        "seeds": seeds,
        "machine": machine_facts(),
        "source": source_version(),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, threadpool_limits(args.threads or None):
        work = Path(d)
        if "accuracy" in only:
            per_set: dict[str, Any] = {}
            names = args.dataset or DATASETS
            for name in names:
                ds = dataset(name, texts=texts)
                if args.quick and name == "digits":
                    ds = Dataset(ds.name, ds.task, ds.items[:600], ds.labels[:600], ds.raw[:600])
                runs = []
                with CpuWatch() as w:
                    for seed in seeds:
                        r = run_accuracy(work / f"acc-{name}-{seed}", ds, seed)
                        log(
                            f"accuracy {name} seed {seed}: {r['accuracy']:.4f} "
                            f"(unsharded {r['unsharded_logged']}, anchor {r['anchor']:.4f}, "
                            f"{r['shards']} shard(s))"
                        )
                        runs.append(r)
                per_set[name] = {
                    **summarise("accuracy", runs, ("points_behind_anchor",)),
                    "runs": runs,
                    **w.to_json(),
                }
            doc["accuracy"] = {
                "target": TARGETS["accuracy"],
                "sets": per_set,
                "holds_every_seed": all(v["holds_every_seed"] for v in per_set.values()),
            }
        if "economy" in only:
            figures: dict[str, list[dict[str, Any]]] = {k: [] for k in HEADLINE}
            raw = []
            with CpuWatch() as w:
                for seed in seeds:
                    t = time.perf_counter()
                    with fixed_evaluation_draw(seed):
                        a = run_economy(work / f"eco-{seed}", seed, sizes, split=False)
                        b = run_economy(work / f"eco-{seed}-split", seed, sizes, split=True)
                    got = economy_figures(a, b)
                    for k, v in got.items():
                        figures[k].append({"seed": seed, **v})
                    raw.append({"seed": seed, "single": a, "split": b})
                    log(
                        f"economy seed {seed} ({time.perf_counter() - t:.0f}s): "
                        + ", ".join(
                            f"{k} {[got[k][h] for h in HEADLINE[k]]}"
                            + ("" if got[k]["holds"] else " (misses)")
                            for k in HEADLINE
                        )
                    )
            doc["economy"] = {
                "sizes": {"per_member": sizes.per_member, "late": sizes.late},
                **{
                    k: {**summarise(k, figures[k], HEADLINE[k]), "runs": figures[k]}
                    for k in HEADLINE
                },
                "raw": raw,
                **w.to_json(),
            }
    doc["seconds"] = round(time.perf_counter() - started, 1)
    doc["summary"] = summary(doc)
    json.dump(doc, sys.stdout, indent=1)
    print()


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Each figure's target, its headline value per seed, and whether it held in every seed."""
    out: dict[str, Any] = {}
    if "accuracy" in doc:
        for name, s in doc["accuracy"]["sets"].items():
            out[f"accuracy.{name}"] = {
                "target": f"points behind anchor <= {TARGET_POINTS:g}",
                "points_behind_anchor": s["points_behind_anchor"]["per_seed"],
                "accuracy": [r["accuracy"] for r in s["runs"]],
                "unsharded_logged": [r["unsharded_logged"] for r in s["runs"]],
                "anchor": [r["anchor"] for r in s["runs"]],
                "holds_every_seed": s["holds_every_seed"],
            }
    if "economy" in doc:
        for k, keys in HEADLINE.items():
            s = doc["economy"][k]
            out[k] = {
                "target": s["target"],
                **{h: s[h]["per_seed"] for h in keys},
                "holds_every_seed": s["holds_every_seed"],
            }
    out["seconds"] = doc["seconds"]
    return out


if __name__ == "__main__":
    main()
