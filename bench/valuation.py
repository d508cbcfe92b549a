"""Exact KNN-Shapley values (``commonweal.ml.knn_shapley``) beside pyDVL 0.10's
``KNNShapleyValuation`` on the same data, in the same run. A table goes to stdout
(``--json``: one JSON document instead, the table on stderr); progress goes to stderr.

Data: ``sklearn.datasets.make_classification`` (20 features, 10 informative, 3 classes, a
fixed seed per size); the first ``N`` rows are the training points, the last 500 the
evaluation points; K = 5. Nothing is downloaded except, once, pyDVL itself.

1. ``compare``: at N = 10,000 and 50,000 (``--quick``: 1,000 and 5,000), ours and pyDVL's,
   each in its own subprocess started on the same ``.npy`` files, so peak RSS (the
   process's high-water mark, ``VmHWM``; see ``_rusage``) is measured the same way for
   both. Only the valuation call is timed: ``knn_shapley(...)`` (median of ``--repeat``,
   every repeat bit-identical) and
   ``KNNShapleyValuation(KNeighborsClassifier(n_neighbors=5), test).fit(train)`` (once).
   Targets: ours at least 20x faster; values within 1e-12 (max abs difference).
2. ``big``: N = 1,000,000 training points x 1,000 evaluation points, ours only, with
   progress. Target: under 10 minutes on two cores, memory bounded (evaluation points are
   streamed in batches). The values' sum is checked against ``U(train set)`` (efficiency),
   with the K nearest found independently by scikit-learn.

pyDVL 0.10 pins ``numpy<2``, so it cannot share our virtualenv: it gets its own, created
on first use under ``bench/.venv-pydvl`` and reused afterwards. pyDVL runs with its
defaults: ``progress=True`` (its bar ticks once per joblib job) and, outside a
``joblib.parallel_config`` context, one job; its ``kneighbors`` call (scikit-learn's brute
force with ``n_neighbors=N``) uses OpenMP on both cores, its per-point recursion is a
Python loop on one. Ours is single-threaded throughout. The CPU seconds of each call are
reported beside its wall time.

    .venv/bin/python bench/valuation.py                # full: about three minutes
    .venv/bin/python bench/valuation.py --quick        # smoke: under a minute
    .venv/bin/python bench/valuation.py --skip-big --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from machine import CpuWatch, log, source_version

K = 5
FEATURES = 20
TEST_POINTS = 500
SIZES = (10_000, 50_000)
QUICK_SIZES = (1_000, 5_000)
BIG_N, BIG_TEST = 1_000_000, 1_000

TARGET_SPEEDUP = 20.0  # pyDVL seconds / ours, at least
TARGET_DIFF = 1e-12  # max abs difference from pyDVL's values, at most
TARGET_BIG_SECONDS = 600.0

PYDVL_VENV = Path(__file__).resolve().parent / ".venv-pydvl"
# pyDVL 0.10 requires numpy<2; pip picks the scipy / scikit-learn / joblib that go with it.
PYDVL_REQUIREMENTS = ("pydvl==0.10.0", "numpy<2")
ARRAYS = ("x_train", "y_train", "x_test", "y_test")


# -- workers: run in a subprocess, ours in this venv, pyDVL's in its own ----------------------


def _rusage() -> tuple[float, float]:
    """(CPU seconds so far, peak RSS so far in MB) of this process.

    The peak is the kernel's high-water mark of this process image (``VmHWM``), which is
    what ``ru_maxrss`` would be but for a Linux quirk: at exec, ``ru_maxrss`` takes over the
    high-water mark of the image being replaced, which for a child started with vfork (as
    Python's subprocess does) is the parent's, so every worker would report at least the
    parent's peak (the bench's own copy of the data)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    peak_kib: float = r.ru_maxrss  # KiB on Linux
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak_kib = float(line.split()[1])
    except OSError:
        pass
    return r.ru_utime + r.ru_stime, peak_kib / 1024


def _load(data: Path) -> list[NDArray[Any]]:
    return [np.load(data / f"{name}.npy") for name in ARRAYS]


def _worker_ours(data: Path, out: Path, repeat: int, show_progress: bool) -> dict[str, Any]:
    from commonweal.ml.knn_shapley import knn_shapley

    x_train, y_train, x_test, y_test = _load(data)
    start = time.perf_counter()
    last_report = [start]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - last_report[0] >= 10:
            last_report[0] = now
            eta = (now - start) / done * (total - done)
            log(
                f"    ours: {done:,}/{total:,} evaluation points, {now - start:.0f} s, "
                f"about {eta:.0f} s to go"
            )

    _, rss_before = _rusage()
    seconds, cpu, values = [], [], None
    for _ in range(repeat):
        start = last_report[0] = time.perf_counter()
        cpu0, _ = _rusage()
        got = knn_shapley(
            x_train, y_train, x_test, y_test, k=K, progress=progress if show_progress else None
        )
        seconds.append(time.perf_counter() - start)
        cpu.append(_rusage()[0] - cpu0)
        if values is not None and not np.array_equal(got, values):
            raise AssertionError("knn_shapley gave different bits on a repeat")
        values = got
    assert values is not None
    np.save(out, values)
    return {
        "seconds": statistics.median(seconds),
        "seconds_each": seconds,
        "cpu_seconds": statistics.median(cpu),
        "peak_rss_mb": _rusage()[1],
        "rss_before_call_mb": rss_before,
    }


def _worker_pydvl(data: Path, out: Path) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # pyDeprecate's own notices
    from importlib.metadata import version

    from pydvl.valuation.dataset import Dataset  # type: ignore[import-not-found]
    from pydvl.valuation.methods.knn_shapley import (  # type: ignore[import-not-found]
        KNNShapleyValuation,
    )
    from sklearn.neighbors import KNeighborsClassifier

    x_train, y_train, x_test, y_test = _load(data)
    train, test = Dataset(x_train, y_train), Dataset(x_test, y_test)
    valuation = KNNShapleyValuation(KNeighborsClassifier(n_neighbors=K), test)  # defaults
    cpu0, rss_before = _rusage()
    start = time.perf_counter()
    valuation.fit(train)
    seconds = time.perf_counter() - start
    cpu = _rusage()[0] - cpu0
    result = valuation.result
    values = np.empty(len(y_train), dtype=np.float64)
    values[np.asarray(result.indices)] = np.asarray(result.values)
    np.save(out, values)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": _rusage()[1],
        "rss_before_call_mb": rss_before,
        "neighbors_algorithm": valuation.model._fit_method,
        "versions": {d: version(d) for d in ("pyDVL", "numpy", "scipy", "scikit-learn", "joblib")},
    }


# -- the parent: data, subprocesses, comparison ------------------------------------------------


def pydvl_python() -> Path:
    """The pyDVL virtualenv's interpreter, creating the virtualenv on first use."""
    python = PYDVL_VENV / "bin" / "python"
    stamp = PYDVL_VENV / "bench-requirements.txt"
    wanted = "\n".join(PYDVL_REQUIREMENTS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"creating {PYDVL_VENV} with {' '.join(PYDVL_REQUIREMENTS)} (once)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PYDVL_VENV)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *PYDVL_REQUIREMENTS,
        ],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def make_data(n_train: int, n_test: int, seed: int, where: Path) -> list[NDArray[Any]]:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n_train + n_test,
        n_features=FEATURES,
        n_informative=10,
        n_redundant=5,
        n_classes=3,
        random_state=seed,
    )
    arrays = [x[:n_train], y[:n_train], x[n_train:], y[n_train:]]
    where.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(ARRAYS, arrays, strict=True):
        np.save(where / f"{name}.npy", np.ascontiguousarray(arr))
    return arrays


def run_worker(
    python: Path | str, which: str, data: Path, out: Path, *extra: str
) -> dict[str, Any]:
    """One worker subprocess; its stderr (progress) passes through, its stdout is JSON."""
    cmd = [
        str(python),
        str(Path(__file__).resolve()),
        "--worker",
        which,
        "--data",
        str(data),
        "--out",
        str(out),
        *extra,
    ]
    with CpuWatch() as watch:
        done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report.update(watch.to_json())
    report["values"] = np.load(out)
    return report


def full_utility(arrays: Sequence[NDArray[Any]]) -> float:
    """U(train set): mean over evaluation points of the share of their K nearest training
    points carrying their label, the K nearest found by scikit-learn (not our code)."""
    from sklearn.neighbors import NearestNeighbors

    x_train, y_train, x_test, y_test = arrays
    nearest = NearestNeighbors(n_neighbors=K, algorithm="brute").fit(x_train)
    idx = nearest.kneighbors(x_test, return_distance=False)
    return float(np.mean(np.sum(y_train[idx] == y_test[:, None], axis=1) / K))


def bench_compare(n_train: int, repeat: int, tmp: Path, python: Path) -> dict[str, Any]:
    data = tmp / f"n{n_train}"
    log(f"N = {n_train:,} x {TEST_POINTS} evaluation points: data")
    arrays = make_data(n_train, TEST_POINTS, seed=n_train, where=data)
    log(f"  ours (median of {repeat})")
    ours = run_worker(sys.executable, "ours", data, tmp / "ours.npy", "--repeat", str(repeat))
    log(f"    {ours['seconds']:.3f} s")
    log("  pyDVL 0.10 KNNShapleyValuation.fit")
    theirs = run_worker(python, "pydvl", data, tmp / "pydvl.npy")
    log(f"    {theirs['seconds']:.3f} s")
    values = ours.pop("values")
    diff = np.abs(values - theirs.pop("values"))
    speedup = theirs["seconds"] / ours["seconds"]
    return {
        "n_train": n_train,
        "n_test": TEST_POINTS,
        "ours": ours,
        "pydvl": theirs,
        "speedup": round(speedup, 1),
        "max_abs_diff": float(diff.max()),
        "bit_identical_share": float(np.mean(diff == 0)),
        "efficiency_gap": abs(float(values.sum()) - full_utility(arrays)),
        "meets_target": speedup >= TARGET_SPEEDUP and float(diff.max()) <= TARGET_DIFF,
    }


def bench_big(n_train: int, n_test: int, tmp: Path) -> dict[str, Any]:
    data = tmp / "big"
    log(f"N = {n_train:,} x {n_test:,} evaluation points (ours only): data")
    arrays = make_data(n_train, n_test, seed=1, where=data)
    ours = run_worker(sys.executable, "ours", data, tmp / "big.npy", "--repeat", "1", "--progress")
    values = ours.pop("values")
    log(f"    {ours['seconds']:.1f} s; checking efficiency")
    gap = abs(float(values.sum()) - full_utility(arrays))
    return {
        "n_train": n_train,
        "n_test": n_test,
        "ours": ours,
        "efficiency_gap": gap,
        "meets_target": ours["seconds"] < TARGET_BIG_SECONDS,
    }


def table(doc: dict[str, Any]) -> str:
    def ok(flag: bool) -> str:
        return "yes" if flag else "NO"

    def rss(worker: dict[str, Any]) -> str:
        return f"{worker['peak_rss_mb']:.0f} MB ({worker['rss_before_call_mb']:.0f})"

    head = (
        "N x eval",
        "ours s",
        "pyDVL s",
        "ratio",
        "max abs diff",
        "ours peak RSS",
        "pyDVL peak RSS",
        "cpu s ours / pyDVL",
        "busy",
        "ok",
    )
    rows = []
    for c in doc.get("compare", []):
        o, p = c["ours"], c["pydvl"]
        rows.append(
            (
                f"{c['n_train']:,} x {c['n_test']}",
                f"{o['seconds']:.3f}",
                f"{p['seconds']:.2f}",
                f"{c['speedup']:.1f}x",
                f"{c['max_abs_diff']:.1e}",
                rss(o),
                rss(p),
                f"{o['cpu_seconds']:.2f} / {p['cpu_seconds']:.2f}",
                f"{o['other_cores_busy']} / {p['other_cores_busy']}",
                ok(c["meets_target"]),
            )
        )
    if "big" in doc:
        b = doc["big"]
        o = b["ours"]
        rows.append(
            (
                f"{b['n_train']:,} x {b['n_test']:,}",
                f"{o['seconds']:.1f}",
                "-",
                "-",
                "-",
                rss(o),
                "-",
                f"{o['cpu_seconds']:.1f} / -",
                f"{o['other_cores_busy']}",
                ok(b["meets_target"]),
            )
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    notes = [
        f"targets: ratio (pyDVL s / ours s) >= {TARGET_SPEEDUP:.0f}x and max abs diff <= "
        f"{TARGET_DIFF:.0e}; {BIG_N:,} x {BIG_TEST:,} under {TARGET_BIG_SECONDS:.0f} s",
        "peak RSS: high-water mark (VmHWM) of each worker process (imports, the data, the "
        "call); in brackets, its peak before the call",
        "busy: other_cores_busy while the worker ran (CPU used by other work, in cores)",
    ]
    for c in doc.get("compare", []):
        notes.append(
            f"N = {c['n_train']:,}: sum of our values - U(train set) = "
            f"{c['efficiency_gap']:.1e}; values bit-identical to pyDVL's: "
            f"{100 * c['bit_identical_share']:.2f}% of points; pyDVL's kneighbors: "
            f"{c['pydvl']['neighbors_algorithm']}"
        )
    if "big" in doc:
        notes.append(
            f"N = {doc['big']['n_train']:,}: sum of our values - U(train set) = "
            f"{doc['big']['efficiency_gap']:.1e}"
        )
    return "\n".join([line(head), sep, *(line(r) for r in rows), "", *notes])


def machine() -> dict[str, Any]:
    from importlib import metadata

    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        **{d: metadata.version(d) for d in ("numpy", "scipy", "scikit-learn")},
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 1,000 and 5,000; no big run")
    ap.add_argument("--skip-big", action="store_true", help="no 1M x 1,000 run")
    ap.add_argument("--json", action="store_true", help="JSON on stdout, the table on stderr")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls of ours per size")
    ap.add_argument("--sizes", type=int, nargs="+", help="training sizes for the comparison")
    ap.add_argument("--big-n", type=int, default=BIG_N, help=argparse.SUPPRESS)
    ap.add_argument("--big-test", type=int, default=BIG_TEST, help=argparse.SUPPRESS)
    # Worker mode (internal): one valuation in this process, a JSON line on stdout.
    ap.add_argument("--worker", choices=("ours", "pydvl"), help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        if args.worker == "ours":
            report = _worker_ours(args.data, args.out, args.repeat, args.progress)
        else:
            report = _worker_pydvl(args.data, args.out)
        print(json.dumps(report))
        return

    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    doc: dict[str, Any] = {
        "bench": "valuation",
        "quick": args.quick,
        "k": K,
        "features": FEATURES,
        "machine": machine(),
        "source": source_version(),
    }
    python = pydvl_python()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        doc["compare"] = [bench_compare(n, args.repeat, tmp, python) for n in sizes]
        doc["pydvl_versions"] = doc["compare"][0]["pydvl"].pop("versions")
        for c in doc["compare"][1:]:
            c["pydvl"].pop("versions")
        if not (args.quick or args.skip_big):
            doc["big"] = bench_big(args.big_n, args.big_test, tmp)
    text = table(doc)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(doc, indent=2))
    else:
        print(text)
        print(f"pyDVL venv: {json.dumps(doc['pydvl_versions'])}")
        print(f"source: {json.dumps(doc['source'])}; machine: {json.dumps(doc['machine'])}")


if __name__ == "__main__":
    main()
