"""What the benchmarks share about the machine they run on: how busy it was with other
work while a figure was measured, and which code was measured."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "CpuWatch",
    "free_port",
    "log",
    "machine_facts",
    "pid_cpu",
    "served",
    "source_version",
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(hub_dir: Path, *, wait: float = 30.0) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``commonweal serve`` on ``hub_dir`` in a subprocess, once it answers ``/healthz``:
    its base URL and process (for CPU accounting). Stopped on leaving."""
    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "commonweal", "serve", "--hub", str(hub_dir), "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"commonweal serve on {hub_dir} did not come up")
            time.sleep(0.1)
        yield base, server
    finally:
        server.terminate()
        server.wait(30)


def _cpu_ticks() -> list[int] | None:
    """The aggregate ``cpu`` line of /proc/stat: user nice system idle iowait irq softirq
    steal ... (in clock ticks, summed over CPUs)."""
    try:
        return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None


def _own_cpu() -> float:
    """CPU seconds of this process and of its children that have been waited for (pool
    workers, anchor processes, servers and CLI runs are all joined before a watch ends)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def pid_cpu(pid: int) -> float | None:
    """CPU seconds of another process (a server we started) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuWatch:
    """How busy the machine was with *other* work while something ran: another engineer's
    test run on a two-core box halves any figure, so every figure says how noisy it was.
    ``extra_pids``: processes of ours that are not waited-for children (a server)."""

    def __init__(self, extra_pids: Sequence[int] = ()) -> None:
        self.extra_pids = list(extra_pids)

    def __enter__(self) -> CpuWatch:
        self._t, self._ticks, self._own = time.perf_counter(), _cpu_ticks(), _own_cpu()
        self._extra = [pid_cpu(p) or 0.0 for p in self.extra_pids]
        self.other_cores_busy: float | None = None
        self.steal_pct: float | None = None
        self.cpu_seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self._t
        after = _cpu_ticks()
        self.cpu_seconds = (
            _own_cpu()
            - self._own
            + sum((pid_cpu(p) or b) - b for p, b in zip(self.extra_pids, self._extra, strict=True))
        )
        if not self._ticks or not after or len(after) < 8 or elapsed <= 0:
            return
        d = [b - a for a, b in zip(self._ticks, after, strict=False)]
        busy = (d[0] + d[1] + d[2] + d[5] + d[6]) / os.sysconf("SC_CLK_TCK")
        self.other_cores_busy = round(max(0.0, busy - self.cpu_seconds) / elapsed, 2)
        total = sum(d[:8])
        self.steal_pct = round(100 * d[7] / total, 2) if total else None

    def to_json(self) -> dict[str, Any]:
        return {"other_cores_busy": self.other_cores_busy, "steal_pct": self.steal_pct}


def source_version() -> dict[str, Any]:
    """Which code was measured: the commit, and whether src/ differed from it (the code is
    imported once, at start, so later edits do not change a run)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "src")
    return {
        "commit": git("rev-parse", "HEAD"),
        "src_modified": None if dirty is None else bool(dirty),
    }


def machine_facts(*dists: str) -> dict[str, Any]:
    """Cores, Python and the versions of ``dists`` (numpy, scipy, scikit-learn by default):
    what a figure depends on besides our own code."""

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "absent"

    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        **{d: version(d) for d in (dists or ("numpy", "scipy", "scikit-learn"))},
    }
