"""The command line and the server, run as a user runs them: as separate processes.

``cw(..., clock=T)`` runs the command with the hub's clock fixed at log time ``T`` (the
process sets ``Hub.clock`` before the CLI starts), so a test can move a vote past its
voting period without waiting for it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["cw", "cwj", "free_port", "start_server"]

# ``python -m commonweal``, after fixing the hub's clock at $COMMONWEAL_TEST_CLOCK — and the
# time members sign their events with, which the charter's clock skew compares to it.
_CLOCKED = (
    "import os, runpy; from commonweal.hub import Hub; "
    "t = os.environ['COMMONWEAL_TEST_CLOCK']; Hub.clock = staticmethod(lambda: t); "
    "import commonweal.ledger.event as ev; ev.now = lambda: t; "
    "runpy.run_module('commonweal', run_name='__main__', alter_sys=True)"
)


def cw(
    *args: str | Path,
    ok: bool = True,
    env: dict[str, str] | None = None,
    clock: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``commonweal ARGS``; with ``ok`` (the default), check it exits 0. ``timeout``
    bounds a hung command, not a slow one: long jobs (the demo) pass a generous one."""
    start = ["-m", "commonweal"] if clock is None else ["-c", _CLOCKED]
    extra = {} if clock is None else {"COMMONWEAL_TEST_CLOCK": clock}
    proc = subprocess.run(
        [sys.executable, *start, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {}), **extra},
    )
    if ok:
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc


def cwj(*args: str | Path, clock: str | None = None, timeout: float = 120) -> Any:
    """Run ``commonweal ARGS --json`` (which must succeed) and parse what it prints."""
    proc = cw(*args, "--json", clock=clock, timeout=timeout)
    return json.loads(proc.stdout)  # stdout holds one JSON document and nothing else


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(hub_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """``commonweal serve`` on ``port``, once it answers (RuntimeError after 30 s)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "commonweal", "serve", "--hub", str(hub_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)  # polling a starting process: nothing to wait on but time
    proc.kill()
    proc.wait(10)
    raise RuntimeError("server did not start")


def origin_of(hub: str | Path) -> str:
    """The origin line of a hub's log, which every event signed for it must name: from a
    served hub's ``/community``, or a hub directory's ``hub.toml`` (no hub opened, so it
    is safe while a server runs on that directory)."""
    if str(hub).startswith(("http://", "https://")):
        r = httpx.get(str(hub).rstrip("/") + "/api/v1/community", timeout=30)
        r.raise_for_status()
        return str(r.json()["origin"])
    import tomllib

    return str(tomllib.loads((Path(hub) / "hub.toml").read_text())["origin"])
