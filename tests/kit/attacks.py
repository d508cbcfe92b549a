"""The attacks an outside review ran against a hub, kept as code that tests and benches
share: members who append signed events over HTTP to real ``commonweal serve`` processes
and remember what the hub acknowledged, a check that every acknowledged event is in the
log, and ``commonweal ledger verify`` run as a user runs it.

``tests/test_crash.py`` runs a few trials of the kill -9 loop and two servers on one hub;
``bench/crash.py`` runs the hundred trials per database the issue asks for. Only the
package, httpx and SQLAlchemy are imported here, so a bench can use this module with the
package installed and nothing else of the test suite.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from commonweal.client import HubClient
from commonweal.community.charter import validate_charter
from commonweal.errors import CommonwealError
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import leaf_hash

__all__ = [
    "Ack",
    "CrashTrial",
    "Writers",
    "attack_hub",
    "crash_trials",
    "fresh_postgres_database",
    "log_entries",
    "lost_acks",
    "serve",
    "verify_cli",
]

LABELS = ("river", "market")
WORDS = {
    "river": ("river", "flood", "bank", "water", "bridge", "canal", "rain", "mill"),
    "market": ("market", "bread", "price", "stall", "cheese", "apples", "baker", "coins"),
}


def attack_hub(directory: Path, database_url: str, **charter_extra: Any) -> SigningKey:
    """A closed hub in ``directory`` that takes text items, open to anyone who joins, with
    votes open as soon as a proposal is made; returns its founder's key."""
    charter = validate_charter(
        {
            "name": "Attack Co-op",
            "join_policy": "open",
            "task": {"kind": "text-classification", "labels": list(LABELS)},
            "governance": {"voting_delay_seconds": 0},
            **charter_extra,
        }
    )
    hub, founder = Hub.init(directory, charter=charter, founder_name="Ada", database=database_url)
    hub.close()
    return founder


# -- servers --------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(hub_dir: Path, port: int, *, wait: float = 60.0) -> subprocess.Popen[bytes]:
    """``commonweal serve`` on ``port``, returned once it answers ``/healthz``. Its stderr
    goes to ``serve-PORT.log`` beside the hub, for a failure to show what the server said."""
    logfile = (hub_dir.parent / f"serve-{port}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "commonweal", "serve", "--hub", str(hub_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=logfile,
    )
    logfile.close()  # the child holds its own descriptor
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)  # polling a starting process: nothing to wait on but time
    proc.kill()
    proc.wait(10)
    raise RuntimeError(f"commonweal serve on {hub_dir} (port {port}) did not come up")


def verify_cli(hub_dir: Path, config_dir: Path) -> tuple[bool, int, str]:
    """``commonweal ledger verify --hub DIR --json``: (passed, size verified, message).
    ``config_dir`` keeps the checkpoints it remembers between runs, so a later run also
    checks that the log only grew (a lost acknowledged append would break consistency)."""
    proc = subprocess.run(
        [sys.executable, "-m", "commonweal", "ledger", "verify", "--hub", str(hub_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COMMONWEAL_CONFIG_DIR": str(config_dir)},
    )
    if proc.returncode != 0:
        return False, -1, proc.stderr.strip()[-500:]
    return True, int(json.loads(proc.stdout)["size"]), ""


@contextmanager
def fresh_postgres_database(server_url: str, prefix: str = "cw_attack") -> Iterator[str]:
    """A new, uniquely named PostgreSQL database on the server ``server_url`` names (its
    own database part is only where the admin connection goes), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# -- members who write ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    """One member's event the hub acknowledged with a 2xx, and how to find it again: its
    index, kind and actor, and its signature (events sent to ``/events``) or its items'
    ids (a contribution batch, whose SDK call signs inside)."""

    index: int
    kind: str
    actor: str
    sig: str | None = None
    leaf_hash: str | None = None
    items: tuple[str, ...] = ()
    via: str = ""  # the server that acknowledged it


@dataclass
class _Tally:
    acks: list[Ack] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # refusals or failures before the kill
    limited: int = 0  # 429s, honoured by waiting Retry-After


class Writers:
    """``n`` members appending over HTTP through the SDK, spread over ``bases`` (one URL
    per server), each in a thread: a join, then rounds of two fresh joins, a contribution
    of two texts, an accepting review of the previous writer's items and, every fourth
    round, a proposal and a vote on it. Everything acknowledged is remembered.

    ``gone`` is set before a server is killed: a request that fails after it died with
    the server, and is not an error; anything refused or failed before it is."""

    def __init__(self, bases: Sequence[str], n: int, tag: str, *, seed: int = 0) -> None:
        self.bases = list(bases)
        self.tag = tag
        self.gone = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._tally = _Tally()
        self._items: dict[int, list[str]] = {w: [] for w in range(n)}
        self._rng = random.Random(seed)
        self._charter: dict[str, Any] | None = None
        self._threads = [
            threading.Thread(target=self._run, args=(w, n), daemon=True) for w in range(n)
        ]

    def start(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def acked(self, kind: str | None = None) -> int:
        """How many events (of ``kind``, or of any) the hub has acknowledged so far."""
        with self._lock:
            return sum(kind is None or a.kind == kind for a in self._tally.acks)

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 30.0) -> tuple[list[Ack], list[str], int]:
        """Stop the writers; (acks, errors, 429s)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        with self._lock:
            return list(self._tally.acks), list(self._tally.errors), self._tally.limited

    # -- one writer -----------------------------------------------------------------------

    def _run(self, w: int, n: int) -> None:
        base = self.bases[w % len(self.bases)]
        with HubClient(base, timeout=30) as client:
            try:
                self._rounds(client, w, n)
            except _Gone:
                return

    def _rounds(self, client: HubClient, w: int, n: int) -> None:
        me = SigningKey.generate()
        origin = self._call(lambda: client.origin)  # what every event is signed for
        if origin is None:
            return
        self._send(
            client,
            [sign_event(me, "member.join", {"name": f"Writer {self.tag}-{w}"}, hub=origin)],
        )
        if self._charter is None:
            found = self._call(client.community)
            if found is None:
                return  # the error is remembered; this writer cannot describe items
            self._charter = found["charter"]
        reviewed: set[str] = set()
        i = 0
        while not self._stop.is_set():
            joins = [
                sign_event(
                    SigningKey.generate(),
                    "member.join",
                    {"name": f"J {self.tag}-{w}-{i}-{j}"},
                    hub=origin,
                )
                for j in range(2)
            ]
            self._send(client, joins)
            self._contribute(client, me, w, i)
            with self._lock:
                theirs = [x for x in self._items[(w + 1) % n] if x not in reviewed]
            if theirs and n > 1:
                item = theirs[0]
                reviewed.add(item)
                body = {"item": item, "verdict": "accept"}
                self._send(client, [sign_event(me, "review.submit", body, hub=origin)])
            if i % 4 == 0:
                title = f"Plant trees, round {self.tag}-{w}-{i}"
                actions = [{"type": "signal", "text": "Plant more trees by the canal"}]
                got = self._send(
                    client,
                    [
                        sign_event(
                            me,
                            "proposal.create",
                            {"title": title, "actions": actions},
                            hub=origin,
                        )
                    ],
                )
                if got:
                    choice = self._rng.choice(["for", "against"])
                    vote = {"proposal": got[0].index, "choice": choice}
                    self._send(client, [sign_event(me, "vote.cast", vote, hub=origin)])
            i += 1

    def _contribute(self, client: HubClient, me: SigningKey, w: int, i: int) -> None:
        rng = random.Random(f"{self.tag}-{w}-{i}")
        items = []
        for j in range(2):
            label = LABELS[(i + j) % 2]
            words = " ".join(rng.choice(WORDS[label]) for _ in range(6))
            items.append({"text": f"Report {self.tag}-{w}-{i}-{j}: the {words}", "label": label})
        receipt = self._call(lambda: client.contribute(me, items, charter=self._charter))
        if receipt is None:
            return
        ids = tuple(r["id"] for r in receipt["items"])
        ack = Ack(receipt["batch"], "contribution.submit", me.key_id, items=ids, via=client.target)
        in_review = [r["id"] for r in receipt["items"] if r.get("status") == "in_review"]
        with self._lock:
            self._tally.acks.append(ack)
            self._items[w].extend(in_review)

    def _send(self, client: HubClient, events: list[Any]) -> list[Ack]:
        got = self._call(lambda: client.submit(events))
        if got is None:
            return []
        acks = [
            Ack(
                e["index"],
                ev.kind,
                ev.actor,
                sig=base64.b64encode(ev.sig).decode(),
                leaf_hash=e["leaf_hash"],
                via=client.target,
            )
            for ev, e in zip(events, got["entries"], strict=True)
        ]
        with self._lock:
            self._tally.acks.extend(acks)
        return acks

    def _call(self, fn: Callable[[], Any]) -> Any:
        """``fn()``'s answer; None when the hub refused it with a 429 (after waiting its
        Retry-After) or another error (remembered); _Gone once the server was killed."""
        while True:
            if self._stop.is_set() and self.gone.is_set():
                raise _Gone
            try:
                return fn()
            except CommonwealError as exc:
                if self.gone.is_set():
                    raise _Gone from None
                retry = _retry_after(exc)
                with self._lock:
                    if retry is None:
                        self._tally.errors.append(f"{type(exc).__name__}: {exc.message}")
                        return None
                    self._tally.limited += 1
                time.sleep(retry)


class _Gone(Exception):
    """The server this writer talked to was killed."""


def _retry_after(exc: CommonwealError) -> float | None:
    """Seconds to wait before retrying a 429 (from its detail; 1 s if it names none), or
    None for any other error."""
    if getattr(exc, "status", None) != 429:
        return None
    detail = exc.detail if isinstance(exc.detail, dict) else {}
    value = detail.get("retry_after", 1)
    return float(value) if isinstance(value, int | float) else 1.0


# -- checking the log -----------------------------------------------------------------------


def log_entries(base: str, start: int = 0) -> dict[int, dict[str, Any]]:
    """Every entry from ``start`` on, read over HTTP, by index."""
    with HubClient(base, timeout=60) as client:
        return {e["index"]: e for e in client.iter_entries(start)}


def lost_acks(acks: Sequence[Ack], entries: dict[int, dict[str, Any]]) -> list[Ack]:
    """The acknowledged events the log does not hold where the hub said it put them: the
    entry at the index must be the same event (its signature and leaf hash, or for a
    contribution the same member's batch of the same items)."""
    lost = []
    for ack in acks:
        e = entries.get(ack.index)
        if e is None or e["event"]["kind"] != ack.kind or e["event"]["actor"] != ack.actor:
            lost.append(ack)
            continue
        same_sig = ack.sig is None or (
            e["sig"] == ack.sig and leaf_hash(base64.b64decode(e["leaf"])).hex() == ack.leaf_hash
        )
        same_items = (
            not ack.items or tuple(x["id"] for x in e["event"]["body"]["items"]) == ack.items
        )
        if not (same_sig and same_items):
            lost.append(ack)
    return lost


# -- the kill -9 loop -----------------------------------------------------------------------


@dataclass(frozen=True)
class CrashTrial:
    """What one trial of the kill -9 loop found."""

    trial: int
    acked: int
    lost: int
    verified: bool
    size: int
    errors: list[str]
    limited: int
    seconds: float
    verify_message: str = ""


def crash_trials(
    hub_dir: Path,
    trials: int,
    *,
    writers: int = 4,
    run_for: tuple[float, float] = (0.3, 2.0),
    seed: int = 0,
    config_dir: Path | None = None,
) -> Iterator[CrashTrial]:
    """Run the kill -9 loop on the (closed) hub in ``hub_dir``: per trial, ``writers``
    members append over HTTP to ``commonweal serve`` until it is killed with SIGKILL at a
    random moment within ``run_for`` seconds of its first acknowledged contribution; the
    server is started again, every acknowledged event must be in the log where the hub
    said, and ``commonweal
    ledger verify`` must pass (remembering checkpoints across trials, so the log must only
    grow). Yields one result per trial; the server is left stopped."""
    rng = random.Random(seed)
    config = config_dir or hub_dir.parent / "verifier"
    port = free_port()
    server = serve(hub_dir, port)
    base = f"http://127.0.0.1:{port}"
    try:
        size_before = int(httpx.get(f"{base}/api/v1/ledger/checkpoint").text.split("\n")[1])
        for trial in range(trials):
            t0 = time.monotonic()
            w = Writers([base], writers, f"{seed}.{trial}", seed=rng.randrange(2**32)).start()
            # The random moment counts from the first acknowledged contribution, so that
            # every trial kills a server that takes every kind of append: after a restart
            # the first contribution loads the screening stack, which on a busy machine
            # takes longer than the whole window.
            started = time.monotonic() + 120
            while not w.acked("contribution.submit") and w.alive():
                if time.monotonic() > started:
                    break
                time.sleep(0.01)
            deadline = time.monotonic() + rng.uniform(*run_for)
            while time.monotonic() < deadline and w.alive():
                time.sleep(0.01)  # the kill moment is a time, not an event to wait on
            w.gone.set()
            os.kill(server.pid, signal.SIGKILL)  # mid-stream: requests are in flight
            server.wait(30)
            acks, errors, limited = w.stop()
            server = serve(hub_dir, port)
            entries = log_entries(base, size_before)
            lost = lost_acks(acks, entries)
            size = size_before + len(entries)
            ok, verified_size, message = verify_cli(hub_dir, config)
            ok = ok and verified_size >= size
            yield CrashTrial(
                trial,
                len(acks),
                len(lost),
                ok,
                size,
                errors,
                limited,
                time.monotonic() - t0,
                message,
            )
            size_before = size
    finally:
        server.kill()
        server.wait(30)
