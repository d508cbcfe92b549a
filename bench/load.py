"""Load: 50 members on loopback for 60 s against two ``commonweal serve`` processes on one
PostgreSQL hub, each member in a thread of its own, doing what members do: contribute an
item, fetch the next item to review and review it, vote, and read the item list.

Requests answered 429 are the charter's rate limits doing their job: the member waits the
``Retry-After`` the hub sent and goes on, and they are counted apart from errors (anything
else outside 2xx, except a 404 from ``/reviews/next`` when nothing waits for review and a
409 on a review of an item other members' reviews decided in the meantime: both are the
hub answering as documented, and both are counted and reported).
Reported per kind of request: count, p50/p95/p99 latency; and events acknowledged per
second.

Anchor, same run: the read workload alone (the same 50 threads, only ``GET
/api/v1/contributions?limit=20``) against our two servers, then against two uvicorn
processes of ``bench/load_anchor.py`` — a bare FastAPI app reading the same rows with the
same SQLAlchemy statement — and the ratio of the two (ours / anchor: p50 latency, and
anchor / ours: requests per second), which is what the hub adds to a read.

    .venv/bin/python bench/load.py                      # 50 members, 60 s (+ 2 x 15 s reads)
    .venv/bin/python bench/load.py --quick              # 20 members, 10 s (+ 2 x 5 s)
    .venv/bin/python bench/load.py --charter '{"limits": {...}}'   # charter fields to set

Progress goes to stderr, one JSON document to stdout. Exits 1 on any error.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.kit.attacks

from tests.kit.attacks import free_port, fresh_postgres_database, serve

from commonweal.client import HubClient
from commonweal.community.charter import validate_charter
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.wire import AUTH_HEADER, auth_header, describe_item

BENCH = Path(__file__).resolve().parent
DEFAULT_POSTGRES = os.environ.get(
    "COMMONWEAL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
LABELS = ("river", "market")
# How often each act comes up in a member's loop (reads dominate, as on a real hub).
MIX = {"contribute": 2, "review": 3, "vote": 2, "read": 5}
READ = "/api/v1/contributions?limit=20"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the community ---------------------------------------------------------------------------


@dataclass
class Community:
    hub_dir: Path
    url: str
    members: list[SigningKey]
    proposal: int
    charter: dict[str, Any]
    origin: str  # the hub's log origin, which every event is signed for


def build(workdir: Path, url: str, n: int, charter_extra: dict[str, Any]) -> Community:
    """A hub of ``n`` members (and Ada, its founder), each of whom has shared two texts,
    with a proposal open for votes for the next day."""
    charter = validate_charter(
        {
            "name": "Load Co-op",
            "join_policy": "open",
            "task": {"kind": "text-classification", "labels": list(LABELS)},
            **charter_extra,
        }
    )
    hub_dir = workdir / "hub"
    hub, ada = Hub.init(hub_dir, charter=charter, founder_name="Ada", database=url)
    hub.close()
    members = [SigningKey.generate() for _ in range(n)]
    with HubClient(str(hub_dir)) as c:
        c.submit(
            [
                sign_event(k, "member.join", {"name": f"Member {i}"}, hub=c.origin)
                for i, k in enumerate(members)
            ]
        )
        signal = [{"type": "signal", "text": "Plant more trees by the canal"}]
        got = c.submit(
            [
                sign_event(
                    ada, "proposal.create", {"title": "Trees", "actions": signal}, hub=c.origin
                )
            ]
        )
        proposal = int(got["entries"][0]["index"])
        shown = c.community()["charter"]
        for i, k in enumerate(members):
            c.contribute(k, [_text(f"seed {i}", j) for j in range(2)], charter=shown)
    return Community(hub_dir, url, members, proposal, shown, hub.origin)


def _text(tag: str, n: int) -> dict[str, Any]:
    rng = random.Random(f"{tag}-{n}")
    label = LABELS[n % 2]
    words = ["river", "flood", "bank", "water"] if label == "river" else ["bread", "price", "stall"]
    return {"text": f"Report {tag}-{n}: the {' '.join(rng.choices(words, k=6))}", "label": label}


# -- members at work -------------------------------------------------------------------------


@dataclass
class Tally:
    """What the members saw, per kind of request."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    limited: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    events: int = 0  # member events the hub acknowledged
    empty_queue: int = 0  # /reviews/next with nothing to review (a 404 the API documents)
    decided_first: int = 0  # reviews refused (409) because other reviews decided the item
    lock: threading.Lock = field(default_factory=threading.Lock)


def _retry_after(resp: httpx.Response) -> float:
    """The Retry-After a 429 carries, in seconds (delta or HTTP date); 1 s if none."""
    value = resp.headers.get("Retry-After", "1").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return 1.0


class Member:
    """One member's loop: pick an act from ``mix``, send it, time it, honour 429s."""

    def __init__(
        self, key: SigningKey, base: str, c: Community, tally: Tally, mix: dict[str, int], seed: int
    ) -> None:
        self.key = key
        self.http = httpx.Client(base_url=base, timeout=60)
        self.c = c
        self.tally = tally
        self.kinds = list(mix)
        self.weights = list(mix.values())
        self.rng = random.Random(seed)
        self.n = 0

    def run(self, until: float) -> None:
        try:
            while time.monotonic() < until:
                getattr(self, "_" + self.rng.choices(self.kinds, self.weights)[0])()
        finally:
            self.http.close()

    def _send(self, kind: str, method: str, path: str, **kw: Any) -> httpx.Response | None:
        """One request, retried after its Retry-After while the hub answers 429; its
        latency is recorded under ``kind`` once it is answered otherwise."""
        while True:
            t0 = time.perf_counter()
            try:
                resp = self.http.request(method, path, **kw)
            except httpx.HTTPError as exc:
                with self.tally.lock:
                    self.tally.errors[kind].append(f"{type(exc).__name__}: {exc}")
                return None
            dt = time.perf_counter() - t0
            if resp.status_code != 429:
                break
            with self.tally.lock:
                self.tally.limited[kind] += 1
            time.sleep(_retry_after(resp))
        with self.tally.lock:
            self.tally.latency[kind].append(dt)
        return resp

    def _check(self, kind: str, resp: httpx.Response | None, events: int = 0) -> bool:
        if resp is None:
            return False
        if resp.is_success:
            with self.tally.lock:
                self.tally.events += events
            return True
        with self.tally.lock:
            self.tally.errors[kind].append(f"{resp.status_code} {resp.text[:200]}")
        return False

    def _contribute(self) -> None:
        self.n += 1
        meta, part = describe_item(
            _text(f"{self.key.key_id[:8]}-{self.rng.random()}", self.n),
            task_kind="text-classification",
            license="CC-BY-4.0",
            consent=("train", "evaluate"),
        )
        ev = sign_event(self.key, "contribution.submit", {"items": [meta]}, hub=self.c.origin)
        resp = self._send(
            "contribute", "POST", "/api/v1/contributions", json={**ev.to_wire(), "content": [part]}
        )
        self._check("contribute", resp, 1)

    def _review(self) -> None:
        target = "/api/v1/reviews/next"
        headers = {AUTH_HEADER: auth_header(self.key, "GET", target)}
        resp = self._send("review.next", "GET", target, headers=headers)
        if resp is not None and resp.status_code == 404:
            with self.tally.lock:
                self.tally.empty_queue += 1
            return
        if not self._check("review.next", resp):
            return
        assert resp is not None
        body = {
            "item": resp.json()["id"],
            "verdict": self.rng.choice(["accept", "accept", "reject"]),
        }
        ev = sign_event(self.key, "review.submit", body, hub=self.c.origin)
        resp = self._send("review", "POST", "/api/v1/events", json=ev.to_wire())
        if resp is not None and resp.status_code == 409 and "not in review" in resp.text:
            # Every reviewer is offered the oldest item waiting; when others' reviews
            # decided it first, the hub refuses this one as it should. Counted apart.
            with self.tally.lock:
                self.tally.decided_first += 1
            return
        self._check("review", resp, 1)

    def _vote(self) -> None:
        body = {
            "proposal": self.c.proposal,
            "choice": self.rng.choice(["for", "against", "abstain"]),
        }
        ev = sign_event(self.key, "vote.cast", body, hub=self.c.origin)
        self._check("vote", self._send("vote", "POST", "/api/v1/events", json=ev.to_wire()), 1)

    def _read(self) -> None:
        self._check("read", self._send("read", "GET", READ))


def run_members(
    c: Community, bases: list[str], seconds: float, mix: dict[str, int], label: str
) -> dict[str, Any]:
    """Every member in a thread of its own, spread over ``bases``, for ``seconds``."""
    tally = Tally()
    members = [Member(k, bases[i % len(bases)], c, tally, mix, i) for i, k in enumerate(c.members)]
    cpu0, t0 = time.process_time(), time.monotonic()
    until = t0 + seconds
    threads = [threading.Thread(target=m.run, args=(until,)) for m in members]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(min(5.0, max(0.1, until - time.monotonic())))
        done = sum(len(v) for v in tally.latency.values())
        if time.monotonic() < until:
            log(
                f"  {label}: {done} requests, {tally.events} events, "
                f"{sum(tally.limited.values())} 429s, {sum(map(len, tally.errors.values()))} errors"
            )
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return summarize(tally, wall, time.process_time() - cpu0)


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def summarize(t: Tally, wall: float, client_cpu: float) -> dict[str, Any]:
    kinds = {
        kind: {
            "requests": len(v),
            "per_second": round(len(v) / wall, 1),
            "p50_ms": _ms(v, 0.50),
            "p95_ms": _ms(v, 0.95),
            "p99_ms": _ms(v, 0.99),
            "mean_ms": round(1000 * statistics.fmean(v), 2),
            "limited_429": t.limited.get(kind, 0),
            "errors": len(t.errors.get(kind, [])),
        }
        for kind, v in sorted(t.latency.items())
        if v
    }
    errors = [e for v in t.errors.values() for e in v]
    return {
        "seconds": round(wall, 1),
        "requests": sum(len(v) for v in t.latency.values()),
        "errors": len(errors),
        "first_errors": errors[:5],
        "limited_429": sum(t.limited.values()),
        "events_acknowledged": t.events,
        "events_per_second": round(t.events / wall, 1),
        "review_queue_empty": t.empty_queue,
        "review_decided_first_409": t.decided_first,
        "client_cpu_seconds": round(client_cpu, 1),
        "kinds": kinds,
    }


# -- servers ---------------------------------------------------------------------------------


@contextmanager
def anchor_servers(url: str, n: int) -> Iterator[list[str]]:
    """``n`` uvicorn processes of bench/load_anchor.py on the database ``url``."""
    procs, bases = [], []
    try:
        for _ in range(n):
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "load_anchor:app",
                        "--app-dir",
                        str(BENCH),
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                    ],
                    env={**os.environ, "LOAD_ANCHOR_DATABASE": url},
                )
            )
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + READ, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the anchor at {base} did not come up")
                time.sleep(0.1)
        yield bases
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)


def warm_up(c: Community, bases: list[str]) -> list[float]:
    """One contribution through each server before the clock starts, timed: a server's
    first contribution loads the screening stack (under the append lock, so every writer
    on every server waits for it), which the steady state should not be charged with."""
    took = []
    for n, base in enumerate(bases):
        t0 = time.monotonic()
        with HubClient(base, timeout=300) as client:
            client.contribute(c.members[n], [_text(f"warm {n}", 0)], charter=c.charter)
        took.append(round(time.monotonic() - t0, 2))
    log(f"warm-up: first contribution per server took {took} s")
    return took


def log_size(base: str) -> int:
    return int(httpx.get(f"{base}/api/v1/ledger/entries?start=0&end=0").json()["size"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="20 members, 10 s, reads 5 s each")
    p.add_argument("--members", type=int, default=None, help="members (threads); 50")
    p.add_argument("--seconds", type=float, default=None, help="mixed load; 60")
    p.add_argument("--read-seconds", type=float, default=None, help="each read-only run; 15")
    p.add_argument("--servers", type=int, default=2, help="commonweal serve processes")
    p.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    p.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL server URL")
    p.add_argument(
        "--charter", default="{}", help="charter fields as JSON, e.g. raised rate limits"
    )
    args = p.parse_args()
    members = args.members or (20 if args.quick else 50)
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    read_seconds = args.read_seconds or (5.0 if args.quick else 15.0)
    out: dict[str, Any] = {
        "members": members,
        "servers": args.servers,
        "database": args.database,
        "charter": json.loads(args.charter),
        "mix": MIX,
    }
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cw-load-")))
        if args.database == "postgresql":
            url = stack.enter_context(fresh_postgres_database(args.postgres, "cw_load"))
        else:
            url = f"sqlite:///{tmp}/hub.db"
        log(f"building a community of {members} members on {args.database}")
        c = build(tmp, url, members, out["charter"])
        servers = [serve(c.hub_dir, free_port()) for _ in range(args.servers)]
        try:
            bases = [f"http://127.0.0.1:{s.args[-1]}" for s in servers]
            out["warm_up_seconds"] = warm_up(c, bases)
            before = log_size(bases[0])
            log(f"mixed load: {members} members over {len(bases)} servers for {seconds:.0f}s")
            out["mixed"] = run_members(c, bases, seconds, MIX, "mixed")
            grew = log_size(bases[0]) - before
            out["mixed"]["log_entries_added"] = grew
            out["mixed"]["log_entries_per_second"] = round(grew / out["mixed"]["seconds"], 1)
            log(f"reads alone, ours: {read_seconds:.0f}s")
            out["reads_ours"] = run_members(c, bases, read_seconds, {"read": 1}, "reads, ours")
        finally:
            for s in servers:
                s.terminate()
                s.wait(30)
        log(f"reads alone, anchor (FastAPI + SQLAlchemy, {args.servers} uvicorn processes)")
        with anchor_servers(url, args.servers) as anchor_bases:
            out["reads_anchor"] = run_members(
                c, anchor_bases, read_seconds, {"read": 1}, "reads, anchor"
            )
    ours, anchor = out["reads_ours"]["kinds"]["read"], out["reads_anchor"]["kinds"]["read"]
    out["ratio"] = {
        "read_p50_ours_over_anchor": round(ours["p50_ms"] / anchor["p50_ms"], 2),
        "read_p99_ours_over_anchor": round(ours["p99_ms"] / anchor["p99_ms"], 2),
        "read_throughput_anchor_over_ours": round(anchor["per_second"] / ours["per_second"], 2),
    }
    m = out["mixed"]
    log(
        f"mixed: {m['requests']} requests, {m['errors']} errors, {m['limited_429']} 429s, "
        f"{m['events_per_second']} events/s"
    )
    for kind, k in m["kinds"].items():
        log(
            f"  {kind:12} {k['requests']:6} req  p50 {k['p50_ms']:8.1f} ms  "
            f"p95 {k['p95_ms']:8.1f} ms  p99 {k['p99_ms']:8.1f} ms"
        )
    log(
        f"reads: ours p50 {ours['p50_ms']} ms, {ours['per_second']}/s; anchor p50 "
        f"{anchor['p50_ms']} ms, {anchor['per_second']}/s; ratio {out['ratio']}"
    )
    print(json.dumps(out, indent=2))
    errors = m["errors"] + out["reads_ours"]["errors"] + out["reads_anchor"]["errors"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
