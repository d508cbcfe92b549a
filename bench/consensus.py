"""Benchmark review consensus: ``commonweal.ml.consensus.decide`` on a synthetic community.

Workload (seeded): 10,000 items × 5 reviews = 50,000 reviews by 200 reviewers over 10
labels. 10% of items deserve rejection; 20% of the rest carry a wrong given label, so the
right verdict is a relabel. 30% of reviewers are spammers (a uniformly random answer among
the 10 labels and reject); the others are right with a probability drawn from [0.6, 0.95]
and otherwise give a random wrong answer.

- ``seconds``: ``decide`` (Dawid–Skene, from ``Review`` records to decisions and
  reliabilities), best of ``--repeat``. Target: under 5 s.
- anchor: crowd-kit's ``DawidSkene().fit_predict`` on the same answers, already in the
  DataFrame it takes (its defaults: at most 100 iterations, ELBO tolerance 1e-5), best of
  ``--repeat``; ``ratio`` = ours / anchor. Ours includes turning records into arrays, and
  usually runs more iterations (it stops when no posterior moves by 1e-6, or at 100), so
  ``em`` and ``ms_per_iteration`` also time our EM alone on index arrays.
- accuracy: share of items whose decision (rejected, or accepted with label L) is the
  right one, for Dawid–Skene, majority vote at the same threshold, plurality (threshold 0)
  and crowd-kit's most probable class; and how often ours and crowd-kit's agree.

One JSON document goes to stdout; progress goes to stderr::

    .venv/bin/python bench/consensus.py
    .venv/bin/python bench/consensus.py --items 2000 --repeat 1     # quick
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from commonweal.ml.consensus import REJECT, Decision, Review, answer, dawid_skene, decide

TARGET_SECONDS = 5.0


def workload(
    *, items: int, per_item: int, reviewers: int, classes: int, spammers: float, seed: int
) -> tuple[list[Review], dict[str, str], np.ndarray[Any, Any]]:
    """The reviews, each item's right answer (a label or REJECT), and which reviewers are
    spammers."""
    rng = np.random.default_rng(seed)
    labels = [f"label{c:02d}" for c in range(classes)]
    answers = [*labels, REJECT]
    truth_label = rng.integers(0, classes, items)
    bad = rng.random(items) < 0.10
    given = np.where(rng.random(items) < 0.8, truth_label, rng.integers(0, classes, items))
    true_answer = np.where(bad, classes, truth_label)  # index into answers

    spam = rng.random(reviewers) < spammers
    accuracy = np.where(spam, 0.0, rng.uniform(0.6, 0.95, reviewers))
    who = np.argsort(rng.random((items, reviewers)), axis=1)[:, :per_item].reshape(-1)
    item_of = np.repeat(np.arange(items), per_item)
    right = rng.random(items * per_item) < accuracy[who]
    wrong = (true_answer[item_of] + rng.integers(1, classes + 1, items * per_item)) % (classes + 1)
    random_answer = rng.integers(0, classes + 1, items * per_item)
    ans = np.where(spam[who], random_answer, np.where(right, true_answer[item_of], wrong))

    names = [f"item{i:06d}" for i in range(items)]
    reviewer_names = [f"member{w:04d}" for w in range(reviewers)]
    reviews = []
    for i, w, a in zip(item_of.tolist(), who.tolist(), ans.tolist(), strict=True):
        g = labels[given[i]]
        if a == classes:
            reviews.append(Review(names[i], reviewer_names[w], "reject", None, g))
        elif labels[a] == g:
            reviews.append(Review(names[i], reviewer_names[w], "accept", None, g))
        else:
            reviews.append(Review(names[i], reviewer_names[w], "relabel", labels[a], g))
    truth = {names[i]: answers[true_answer[i]] for i in range(items)}
    return reviews, truth, spam


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def share_right(decisions: list[Decision], truth: dict[str, str]) -> float:
    right = sum(
        (d.label if d.outcome == "accepted" else REJECT) == truth[d.item] for d in decisions
    )
    return round(float(right) / len(decisions), 4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--reviews-per-item", type=int, default=5)
    parser.add_argument("--reviewers", type=int, default=200)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--spammers", type=float, default=0.3, help="share of reviewers")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    say("generating workload")
    reviews, truth, spam = workload(
        items=args.items,
        per_item=args.reviews_per_item,
        reviewers=args.reviewers,
        classes=args.classes,
        spammers=args.spammers,
        seed=args.seed,
    )
    say(f"decide (dawid-skene) on {len(reviews)} reviews, best of {args.repeat}")
    seconds, (ds, reliability) = best_of(args.repeat, lambda: decide(reviews))
    majority_seconds, (mv, _) = best_of(args.repeat, lambda: decide(reviews, method="majority"))
    plurality, _ = decide(reviews, method="majority", accept_threshold=0.0)

    frame = pd.DataFrame(
        {
            "task": [r.item for r in reviews],
            "worker": [r.reviewer for r in reviews],
            "label": [answer(r) for r in reviews],
        }
    ).sort_values(["task", "worker"], ignore_index=True)

    say("the EM alone, on index arrays")
    items, item_idx = np.unique(frame["task"].to_numpy(), return_inverse=True)
    workers, worker_idx = np.unique(frame["worker"].to_numpy(), return_inverse=True)
    classes, answer_idx = np.unique(frame["label"].to_numpy(), return_inverse=True)
    support = np.zeros((len(items), len(classes)), dtype=bool)
    support[item_idx, answer_idx] = True
    em_seconds, fit = best_of(
        args.repeat,
        lambda: dawid_skene(
            item_idx,
            worker_idx,
            answer_idx,
            n_items=len(items),
            n_reviewers=len(workers),
            n_classes=len(classes),
            support=support,
        ),
    )

    say(f"anchor: crowd-kit DawidSkene.fit_predict, best of {args.repeat}")
    from crowdkit.aggregation import DawidSkene

    def crowd_kit() -> tuple[pd.Series[Any], int]:
        model = DawidSkene()
        return model.fit_predict(frame), len(model.loss_history_)

    anchor_seconds, (ck_labels, ck_iterations) = best_of(args.repeat, crowd_kit)
    ck_right = sum(ck_labels[item] == t for item, t in truth.items()) / len(truth)
    ours = {d.item: d.label if d.outcome == "accepted" else REJECT for d in ds}
    agree = sum(ours[item] == ck_labels[item] for item in truth) / len(truth)

    rel = np.array([reliability[f"member{w:04d}"] for w in range(args.reviewers)])
    doc = {
        "bench": "consensus",
        "workload": {
            "items": args.items,
            "reviews": len(reviews),
            "reviewers": args.reviewers,
            "classes": args.classes,
            "spammers": int(spam.sum()),
            "seed": args.seed,
        },
        "seconds": round(seconds, 4),
        "anchor": {
            "name": "crowdkit.DawidSkene.fit_predict",
            "seconds": round(anchor_seconds, 4),
            "iterations": ck_iterations,
        },
        "ratio": round(seconds / anchor_seconds, 3),
        "em": {"seconds": round(em_seconds, 4), "iterations": fit.iterations},
        "ms_per_iteration": {
            "ours": round(1000 * em_seconds / fit.iterations, 2),
            "crowdkit": round(1000 * anchor_seconds / ck_iterations, 2),
        },
        "majority_seconds": round(majority_seconds, 4),
        "target_seconds": TARGET_SECONDS,
        "meets_target": seconds < TARGET_SECONDS,
        "accuracy": {
            "dawid_skene": share_right(ds, truth),
            "majority": share_right(mv, truth),
            "plurality": share_right(plurality, truth),
            "crowdkit_dawid_skene": round(ck_right, 4),
        },
        "agreement_with_crowdkit": round(agree, 4),
        "reliability_mean": {
            "spammers": round(float(rel[spam].mean()), 4),
            "others": round(float(rel[~spam].mean()), 4),
        },
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "crowd_kit": importlib.metadata.version("crowd-kit"),
            "cpus": os.cpu_count(),
        },
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
