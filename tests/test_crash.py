"""A real server (uvicorn), killed with SIGKILL in the middle of a stream of appends."""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from commonweal.hub import Hub
from commonweal.ledger.event import SignedEvent, encode_leaf, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import leaf_hash
from commonweal.verify import verify_hub
from tests.kit import free_port, make_hub, origin_of, start_server
from tests.kit.attacks import Ack, attack_hub, crash_trials, lost_acks

pytestmark = pytest.mark.slow


def test_every_acknowledged_event_survives_sigkill(tmp_path: Path, database_url: str) -> None:
    hub, _ = make_hub(tmp_path / "hub", database_url)
    origin = hub.origin
    hub.close()
    port = free_port()
    server = start_server(tmp_path / "hub", port)
    acked: list[tuple[int, str]] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            i = 0
            while not stop.is_set():
                batch = [
                    sign_event(
                        SigningKey.generate(), "member.join", {"name": f"w{n}-{i}-{j}"}, hub=origin
                    ).to_wire()
                    for j in range(3)
                ]
                i += 1
                try:
                    r = http.post("/api/v1/events", json={"events": batch})
                except httpx.HTTPError:
                    return  # the server is gone; this batch was never acknowledged
                assert r.status_code == 201, r.text
                acked.extend((e["index"], e["leaf_hash"]) for e in r.json()["entries"])

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(3)]
    try:
        for t in threads:
            t.start()
        # Until 150 appends are acknowledged, with a deadline: a writer that fails (its
        # assertion ends its thread) or a stuck server must fail the test, not hang it.
        deadline = time.monotonic() + 60
        while len(acked) < 150 and time.monotonic() < deadline:
            if not any(t.is_alive() for t in threads):
                break
            time.sleep(0.01)
        assert len(acked) >= 150, f"only {len(acked)} appends acknowledged"
        os.kill(server.pid, signal.SIGKILL)  # mid-stream: requests are in flight
        server.wait(10)
    finally:
        stop.set()
        server.kill()  # already gone, unless the test failed before the SIGKILL
        server.wait(10)
        for t in threads:
            t.join(10)

    survivor = Hub.open(tmp_path / "hub")
    size = survivor.log.size()
    assert size >= 1 + len(acked)
    stored = {
        leaf.index: leaf_hash(leaf.data).hex() for leaf in survivor.log.entries(0, size, limit=size)
    }
    for index, lh in acked:
        assert stored[index] == lh
    assert verify_hub(survivor).size == size
    survivor.close()

    # And the hub comes back and keeps appending after the crash.
    server = start_server(tmp_path / "hub", port)
    try:
        ev = sign_event(
            SigningKey.generate(),
            "member.join",
            {"name": "after the crash"},
            hub=origin_of(tmp_path / "hub"),
        )
        r = httpx.post(f"http://127.0.0.1:{port}/api/v1/events", json=ev.to_wire())
        assert r.status_code == 201 and r.json()["size"] == size + 1
    finally:
        server.kill()
        server.wait(10)


def test_kill_9_loop_loses_no_acknowledged_event(tmp_path: Path, database_url: str) -> None:
    """A short run of bench/crash.py's loop: members append joins, contributions, reviews,
    proposals and votes over HTTP; the server is killed at a random moment, restarted,
    and every acknowledged event must be where the hub said with verify passing, trial
    after trial (verify remembers the last checkpoint, so the log may only grow)."""
    attack_hub(tmp_path / "hub", database_url)
    results = list(crash_trials(tmp_path / "hub", 3, writers=3, run_for=(0.1, 1.0), seed=14))
    assert len(results) == 3
    for r in results:
        assert r.acked > 0, r
        assert r.lost == 0 and r.verified, r
        assert not r.errors, r.errors[:5]


def test_the_loss_check_finds_a_missing_moved_or_different_entry() -> None:
    """The kill -9 loop's check is only as good as ``lost_acks``: an acknowledged event
    missing, at another index, or replaced by another event there must count as lost."""
    key = SigningKey.generate()
    events = [sign_event(key, "member.join", {"name": f"n{i}"}, hub=None) for i in range(3)]

    def entry(i: int, ev: SignedEvent) -> dict[str, Any]:
        leaf = encode_leaf(ev.data, i, "2026-01-01T00:00:00.000Z", ev.sig)
        return {
            "index": i,
            "event": ev.event,
            "sig": base64.b64encode(ev.sig).decode(),
            "leaf": base64.b64encode(leaf).decode(),
        }

    log = {i: entry(i, ev) for i, ev in enumerate(events)}
    acks = [
        Ack(
            i,
            ev.kind,
            ev.actor,
            sig=e["sig"],
            leaf_hash=leaf_hash(base64.b64decode(e["leaf"])).hex(),
        )
        for (i, e), ev in zip(log.items(), events, strict=True)
    ]
    assert lost_acks(acks, log) == []
    assert lost_acks(acks, {i: log[i] for i in (0, 1)}) == [acks[2]]  # missing
    swapped = {0: log[0], 1: entry(1, events[2]), 2: entry(2, events[1])}
    assert lost_acks(acks, swapped) == acks[1:]  # at another index
    other = sign_event(key, "member.join", {"name": "someone else"}, hub=None)
    assert lost_acks(acks, {**log, 2: entry(2, other)}) == [acks[2]]
    batch = Ack(1, "member.join", key.key_id, items=("a" * 32,))
    assert lost_acks(
        [batch],
        {1: {**log[1], "event": {**log[1]["event"], "body": {"items": [{"id": "b" * 32}]}}}},
    ) == [batch]
