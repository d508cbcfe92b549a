"""Federated softmax (``commonweal.ml.federated``) against the central model the hub trains,
simulated in numpy (no Flower, no network): how close federation gets, how fast, and how
well the robust rules and the outlier screen hold off one poisoning client. The anchor is
the central model, trained in the same run; every federated figure is printed beside it as
a difference in accuracy points.

Data: scikit-learn's ``load_digits`` (nothing is downloaded), X/16, a stratified 80/20
split (seed 0); the test set is the 20% (360 rows). The 80% (1,437 rows) goes to 5 clients:

- ``iid``: shuffled (seed 42) and cut into 5 near-equal parts;
- ``skew``: label-skewed. Client c holds 80% of the rows of digits 2c and 2c+1 (its two
  dominant digits); the other 20% of every digit is spread evenly over the other four
  clients, so each client has ~82% of its rows from two digits and a few of every other.

Central: ``LogisticRegression(C=1.0, max_iter=2000)`` on the union of the clients' rows
(what the hub trains). Federated: every round, each client runs ``softmax_train`` from the
global model on its rows; the hub screens and aggregates. Sections:

1. ``grid``: FedAvg, clean, local_epochs x learning_rate (l2 = 1e-4), 10 rounds: accuracy
   after rounds 3, 5 and 10, and the first round within 2 points of central.
2. ``attack``: the chosen recipe (5 rounds), client 0 poisoned: it sends ``s * w_local``
   (its locally trained parameters times s), s = -3 (sign flip x3) or +3 (scale x3), under
   each rule (trim_pct 20, malicious 1), with the outlier screen off and at factor 3.
3. ``shapley``: time of ``coalition_utilities`` for all coalitions of 5 players (32 masks)
   and 10 players (1,024 masks, 10 IID clients), per rule, on the 360 test rows.

    .venv/bin/python bench/federated_numerics.py            # about a minute
    .venv/bin/python bench/federated_numerics.py --json     # one JSON document on stdout
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from commonweal.ml import federated as fed

Data = tuple[NDArray[np.float64], NDArray[np.intp]]

# The recipe this bench recommends as the charter's defaults (see section 1's table).
CHOSEN = {"rounds": 5, "local_epochs": 100, "learning_rate": 2.0, "l2": 1e-4}
RULES = ["fedavg", "trimmed-mean", "median", "krum", "multi-krum", "bulyan"]


def load() -> tuple[Data, Data]:
    d = load_digits()
    X, y = d.data / 16.0, d.target.astype(np.intp)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    return (Xtr, ytr), (Xte, yte)


def iid_parts(train: Data, n: int) -> list[Data]:
    X, y = train
    order = np.random.default_rng(42).permutation(len(y))
    return [(X[p], y[p]) for p in np.array_split(order, n)]


def skewed_parts(train: Data) -> list[Data]:
    X, y = train
    rng = np.random.default_rng(42)
    rows: list[list[int]] = [[] for _ in range(5)]
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(y == digit))
        owner = digit // 2
        k = int(0.8 * len(idx))
        rows[owner].extend(idx[:k].tolist())
        others = [c for c in range(5) if c != owner]
        for c, part in zip(others, np.array_split(idx[k:], 4), strict=True):
            rows[c].extend(part.tolist())
    return [(X[np.sort(r)], y[np.sort(r)]) for r in rows]


def simulate(
    parts: list[Data],
    test: Data,
    *,
    rounds: int,
    epochs: int,
    lr: float,
    l2: float,
    rule: str = "fedavg",
    attack: float | None = None,
    factor: float = 0.0,
) -> tuple[list[float], int, int]:
    """Test accuracy after each round, how many of the poisoned client's updates the screen
    rejected, and how many honest updates it rejected."""
    model = fed.zeros(10, test[0].shape[1])
    examples = [len(y) for _, y in parts]
    accs: list[float] = []
    caught = honest = 0
    for _ in range(rounds):
        ups = [fed.softmax_train(model, X, y, epochs=epochs, lr=lr, l2=l2) for X, y in parts]
        if attack is not None:
            ups[0] = (attack * ups[0][0], attack * ups[0][1])
        reasons = fed.screen(ups, factor)
        caught += attack is not None and reasons[0] is not None
        honest += sum(r is not None for r in reasons[1 if attack is not None else 0 :])
        keep = [i for i, r in enumerate(reasons) if r is None]
        model = fed.aggregate(
            rule, [ups[i] for i in keep], [examples[i] for i in keep], trim_pct=20, malicious=1
        )
        accs.append(fed.accuracy(model, *test))
    return accs, caught, honest


def grid(splits: dict[str, list[Data]], test: Data, central: float) -> list[dict[str, Any]]:
    rows = []
    for epochs in (5, 20, 50, 100):
        for lr in (0.5, 1.0, 2.0, 4.0):
            row: dict[str, Any] = {"local_epochs": epochs, "learning_rate": lr}
            for name, parts in splits.items():
                accs, _, _ = simulate(parts, test, rounds=10, epochs=epochs, lr=lr, l2=1e-4)
                within = [r + 1 for r, a in enumerate(accs) if a >= central - 0.02]
                row[name] = {
                    "r3": accs[2],
                    "r5": accs[4],
                    "r10": accs[9],
                    "first_within_2": within[0] if within else None,
                }
            rows.append(row)
            print(f"grid {epochs} {lr} done", file=sys.stderr)
    return rows


def attacks(splits: dict[str, list[Data]], test: Data) -> list[dict[str, Any]]:
    c = CHOSEN
    rows = []
    for name, parts in splits.items():
        for rule in RULES:
            for factor in (0.0, 3.0):
                row: dict[str, Any] = {"split": name, "rule": rule, "factor": factor}
                for label, attack in (("clean", None), ("flip3", -3.0), ("scale3", 3.0)):
                    accs, caught, honest = simulate(
                        parts,
                        test,
                        rounds=int(c["rounds"]),
                        epochs=int(c["local_epochs"]),
                        lr=c["learning_rate"],
                        l2=c["l2"],
                        rule=rule,
                        attack=attack,
                        factor=factor,
                    )
                    row[label] = accs[-1]
                    row[f"{label}_honest_rejected"] = honest
                    if attack is not None:
                        row[f"{label}_caught"] = caught
                rows.append(row)
        print(f"attack {name} done", file=sys.stderr)
    return rows


def shapley_timing(train: Data, test: Data) -> list[dict[str, Any]]:
    c = CHOSEN
    rows = []
    for n in (5, 10):
        parts = iid_parts(train, n)
        start = fed.zeros(10, test[0].shape[1])
        ups = [
            fed.softmax_train(
                start, X, y, epochs=int(c["local_epochs"]), lr=c["learning_rate"], l2=c["l2"]
            )
            for X, y in parts
        ]
        examples = [len(y) for _, y in parts]
        masks = list(range(1 << n))
        for rule in RULES:
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                fed.coalition_utilities(
                    rule, ups, examples, start, *test, masks, trim_pct=20, malicious=1
                )
                best = min(best, time.perf_counter() - t)
            rows.append({"players": n, "coalitions": len(masks), "rule": rule, "seconds": best})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args()
    train, test = load()
    central_model = LogisticRegression(C=1.0, max_iter=2000).fit(*train)
    central = float(central_model.score(*test))
    splits = {"iid": iid_parts(train, 5), "skew": skewed_parts(train)}
    out = {
        "central": central,
        "chosen": CHOSEN,
        "grid": grid(splits, test, central),
        "attack": attacks(splits, test),
        "shapley": shapley_timing(train, test),
    }
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        print()
        return
    pts = lambda a: f"{a:.3f} ({100 * (a - central):+.1f})"  # noqa: E731
    print(f"central LogisticRegression(C=1.0): {central:.3f} on {len(test[1])} test rows\n")
    print(
        "1. FedAvg, clean, l2=1e-4: accuracy (points vs central) after rounds 3/5/10; "
        "first round within 2 points"
    )
    print(
        f"{'epochs':>6} {'lr':>4} | {'iid r3':>14} {'iid r5':>14} {'iid r10':>14} {'1st':>3} |"
        f" {'skew r3':>14} {'skew r5':>14} {'skew r10':>14} {'1st':>3}"
    )
    for r in out["grid"]:
        cells = []
        for s in ("iid", "skew"):
            g = r[s]
            first = "-" if g["first_within_2"] is None else str(g["first_within_2"])
            cells.append(f"{pts(g['r3']):>14} {pts(g['r5']):>14} {pts(g['r10']):>14} {first:>3}")
        print(f"{r['local_epochs']:>6} {r['learning_rate']:>4} | " + " | ".join(cells))
    print(
        f"\n2. chosen recipe {CHOSEN}; client 0 sends s * w_local; accuracy after the last "
        "round (points vs the same rule's clean run); [a/h] = the attacker's updates / honest "
        "updates the screen rejected over all rounds"
    )
    print(
        f"{'split':>5} {'rule':>12} {'screen':>6} | {'clean':>11} | {'flip x3':>20} | "
        f"{'scale x3':>20}"
    )

    def cell(r: dict[str, Any], k: str) -> str:
        a = r[k]
        caught = r.get(f"{k}_caught", 0)
        return f"{a:.3f} ({100 * (a - r['clean']):+.1f}) [{caught}/{r[f'{k}_honest_rejected']}]"

    for r in out["attack"]:
        screen = "off" if r["factor"] == 0 else f"{r['factor']:g}x"
        clean = f"{r['clean']:.3f} [{r['clean_honest_rejected']}]"
        print(
            f"{r['split']:>5} {r['rule']:>12} {screen:>6} | {clean:>11} | "
            f"{cell(r, 'flip3'):>20} | {cell(r, 'scale3'):>20}"
        )
    print("\n3. coalition_utilities, every coalition, 360 test rows (best of 3)")
    for r in out["shapley"]:
        print(
            f"{r['players']:>3} players {r['coalitions']:>5} coalitions {r['rule']:>12}: "
            f"{1000 * r['seconds']:8.1f} ms"
        )


if __name__ == "__main__":
    main()
