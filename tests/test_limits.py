"""Limits that must hold across server processes: API quotas, members' free tries, members'
event rates, per-address request rates, and authorization against the newest log.

The cross-process tests run two real ``commonweal serve`` processes over one hub (SQLite
file or PostgreSQL schema) and hammer them at once; one of them is killed with SIGKILL
mid-run and restarted. Nothing here is mocked: the limits are counted in the database."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from commonweal.api import create_app
from commonweal.client import HubClient
from commonweal.embedded import EmbeddedTransport
from commonweal.errors import QuotaExceeded, RateLimited, TooLarge
from commonweal.hub import Hub
from commonweal.hub.models import TRY_PER_DAY, TRY_PER_MINUTE
from commonweal.ledger.event import now, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.store.usage import stored_calls
from commonweal.wire import AUTH_HEADER, auth_header, hash_api_key
from tests.kit import Clock, community, free_port, origin_of, start_server, text_items
from tests.kit.databases import Databases

API = "/api/v1"
EVENTS_PER_MINUTE = 12
REQUESTS_PER_MINUTE = 300
LIMITS = {
    "max_item_bytes": 4096,
    "events_per_member_per_minute": EVENTS_PER_MINUTE,
    "requests_per_ip_per_minute": REQUESTS_PER_MINUTE,
}
TRAINING = {"shards": 2, "evaluation": {"holdout_pct": 15, "min_items": 5}}


@pytest.fixture(scope="module")
def trained(
    module_databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, SigningKey]]]:
    """A text community with version 1 trained and tight rate limits, per database kind."""
    directory = tmp_path_factory.mktemp("limits") / "hub"
    client, keys = community(
        directory,
        module_databases.new(),
        kind="text-classification",
        items=text_items(200),
        charter_extra={"training": TRAINING, "limits": LIMITS},
    )
    try:
        assert client.embedded_hub.models.train()["version"] == 1
    finally:
        client.close()
    yield directory, keys


def join(directory: Path, name: str) -> SigningKey:
    """A new member, joined through the operator's (unlimited) embedded client."""
    key = SigningKey.generate()
    with HubClient(str(directory)) as client:
        client.join(key, name)
    return key


def issue_key(directory: Path, member: SigningKey, quota: int) -> str:
    with HubClient(str(directory)) as client:
        secret, _ = client.create_apikey(member, "Shop", quota_per_day=quota)
    return secret


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


class Servers:
    """Two ``commonweal serve`` processes over one hub; ``restart_first`` after a kill."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = [free_port(), free_port()]
        self.procs = [start_server(directory, p) for p in self.ports]

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.ports[n % 2]}"

    def restart_first(self) -> None:
        kill(self.procs[0])
        self.procs[0] = start_server(self.directory, self.ports[0])

    def close(self) -> None:
        for p in self.procs:
            kill(p)


def hammer(
    servers: Servers, secret: str, calls: int, *, kill_at: int | None = None
) -> Counter[Any]:
    """``calls`` predictions of one input from 6 threads, alternating between the servers;
    with ``kill_at``, the first server is killed (SIGKILL) once that many answers came back,
    and restarted. Returns the answers' statuses (``"lost"``: no answer, the server died)."""
    doc = {"inputs": [{"text": "the baker sold bread at the market"}]}
    headers = {"Authorization": f"Bearer {secret}"}
    statuses: Counter[Any] = Counter()
    lock = threading.Lock()
    todo = iter(range(calls))
    killed = threading.Event()

    def worker() -> None:
        with httpx.Client(timeout=30) as http:
            while True:
                with lock:
                    n = next(todo, None)
                if n is None:
                    return
                try:
                    r = http.post(
                        f"{servers.url(n)}{API}/models/latest/predict", json=doc, headers=headers
                    )
                    got: Any = r.status_code
                    if r.status_code == 429:
                        assert r.json()["error"]["code"] == "quota_exceeded"
                        assert int(r.headers["retry-after"]) >= 1
                except httpx.HTTPError:
                    got = "lost"
                with lock:
                    statuses[got] += 1
                    answered = sum(statuses.values())
                if kill_at is not None and answered >= kill_at and not killed.is_set():
                    killed.set()
                    servers.restart_first()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return statuses


def usage_of(directory: Path, secret: str) -> int:
    hub = Hub.open(directory)
    try:
        with hub.read() as conn:
            return stored_calls(conn, hash_api_key(secret), hub.clock()[:10])
    finally:
        hub.close()


@pytest.mark.slow
def test_a_quota_holds_across_two_servers_and_a_kill(
    trained: tuple[Path, dict[str, SigningKey]],
) -> None:
    directory, keys = trained
    first = issue_key(directory, keys["Grace"], 10)
    second = issue_key(directory, keys["Grace"], 10)
    servers = Servers(directory)
    try:
        got = hammer(servers, first, 40)
        assert got == {200: 10, 429: 30}
        assert usage_of(directory, first) == 10
        # Killed mid-run and restarted: an answer may be lost with its server, but the
        # stored count — what is billed, and what the quota checks — never passes 10.
        got = hammer(servers, second, 40, kill_at=4)
        assert got[200] <= 10 and got[200] + got["lost"] >= 10, got
        assert set(got) <= {200, 429, "lost"}
        assert usage_of(directory, second) == 10
    finally:
        servers.close()


def signed_get(url: str, key: SigningKey, path: str) -> httpx.Response:
    return httpx.get(url + path, headers={AUTH_HEADER: auth_header(key, "GET", path)}, timeout=30)


def test_a_member_who_left_through_one_server_is_refused_by_the_other_at_once(
    trained: tuple[Path, dict[str, SigningKey]],
) -> None:
    directory, _ = trained
    servers = Servers(directory)
    try:
        for n in range(3):
            key = join(directory, f"Leaver{n}")
            export = f"{API}/members/{key.key_id}/export"
            # Server B has the member active in its cache, and has just checked the log.
            assert signed_get(servers.url(1), key, export).status_code == 200
            left = httpx.post(
                servers.url(0) + f"{API}/events",
                json=sign_event(key, "member.leave", {}, hub=origin_of(directory)).to_wire(),
                timeout=30,
            )
            assert left.status_code == 201, left.text
            r = signed_get(servers.url(1), key, export)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "forbidden"
    finally:
        servers.close()


def wait_for_a_fresh_minute() -> None:
    """The event limit counts per UTC minute: start early in one, so that a test's burst
    does not straddle two windows (20 s is far more than it takes)."""
    second = int(now()[17:19])
    if second > 40:
        time.sleep(61 - second)


def test_a_members_event_rate_holds_across_two_servers(
    trained: tuple[Path, dict[str, SigningKey]],
) -> None:
    directory, _ = trained
    key = join(directory, "Flooder")
    servers = Servers(directory)
    try:
        wait_for_a_fresh_minute()
        answers: list[httpx.Response] = []
        for n in range(EVENTS_PER_MINUTE + 6):
            ev = sign_event(
                key,
                "member.address",
                {"address": "0x" + os.urandom(20).hex()},
                hub=origin_of(directory),
            )
            answers.append(
                httpx.post(servers.url(n) + f"{API}/events", json=ev.to_wire(), timeout=30)
            )
        statuses = [r.status_code for r in answers]
        assert statuses == [201] * EVENTS_PER_MINUTE + [429] * 6, statuses
        refused = answers[-1]
        assert refused.json()["error"]["code"] == "rate_limited"
        assert f"{EVENTS_PER_MINUTE} a minute" in refused.json()["error"]["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["error"]["detail"] == {
            "retry_after": int(refused.headers["retry-after"])
        }
        # Another member is not held back by this one.
        other = join(directory, "Calm")
        ev = sign_event(
            other,
            "member.address",
            {"address": "0x" + os.urandom(20).hex()},
            hub=origin_of(directory),
        )
        assert (
            httpx.post(servers.url(1) + f"{API}/events", json=ev.to_wire(), timeout=30).status_code
            == 201
        )
    finally:
        servers.close()


@pytest.fixture
def limited_hub(
    trained: tuple[Path, dict[str, SigningKey]],
) -> Iterator[tuple[Hub, Clock, dict[str, SigningKey]]]:
    """The trained hub opened in this process at the last second of the current minute,
    served with its limits on (as ``commonweal serve`` serves it)."""
    directory, keys = trained
    clock = Clock(f"{now()[:17]}59.000Z")
    hub = Hub.open(directory, clock=clock)
    try:
        yield hub, clock, keys
    finally:
        hub.close()


def test_the_client_waits_out_a_rate_limit_and_shows_it(
    limited_hub: tuple[Hub, Clock, dict[str, SigningKey]],
) -> None:
    hub, clock, _ = limited_hub
    key = SigningKey.generate()
    waits: list[tuple[float, int, str]] = []

    def on_wait(seconds: float, attempt: int, message: str) -> None:
        waits.append((seconds, attempt, message))
        clock.advance(int(seconds))  # the hub's minute ends while the client waits

    with HubClient("http://limited", on_wait=on_wait, retries=2) as client:
        client._http = httpx.Client(
            transport=EmbeddedTransport(create_app(hub, limited=True)), base_url="http://limited"
        )
        client.join(key, "Patient")
        events = [
            sign_event(
                key, "member.address", {"address": "0x" + os.urandom(20).hex()}, hub=client.origin
            )
            for _ in range(EVENTS_PER_MINUTE)
        ]
        client.submit(events[:-1])  # 11 of 12, with the join
        ack = client.submit(events[-1:])  # over the limit: waits a second, then appended
        assert ack["entries"][0]["kind"] == "member.address"
        assert [(s, a) for s, a, _ in waits] == [(1.0, 1)]
        assert "a member may add 12 a minute" in waits[0][2]
        # A batch larger than the whole limit can never pass: refused at once, unwaited.
        clock.advance(60)
        many = [
            sign_event(
                key, "member.address", {"address": "0x" + os.urandom(20).hex()}, hub=client.origin
            )
            for _ in range(EVENTS_PER_MINUTE + 1)
        ]
        with pytest.raises(TooLarge, match=r"this batch has 13 events .* batches of 12 or fewer"):
            client.submit(many)
        assert len(waits) == 1
        # Nothing of it was counted: a batch within the limit still passes this minute.
        assert len(client.submit(many[:EVENTS_PER_MINUTE])["entries"]) == EVENTS_PER_MINUTE


def test_requests_per_address_are_limited_with_retry_after(
    limited_hub: tuple[Hub, Clock, dict[str, SigningKey]],
) -> None:
    hub, clock, _ = limited_hub
    with TestClient(create_app(hub, limited=True)) as http:
        for _ in range(REQUESTS_PER_MINUTE):
            assert http.get(f"{API}/community").status_code == 200
        r = http.get(f"{API}/community")
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "rate_limited"
        assert "testclient" in r.json()["error"]["message"]
        assert http.get("/healthz").status_code == 200  # health checks are not counted
        clock.advance(1)
        assert http.get(f"{API}/community").status_code == 200
    # The operator's embedded hub is not limited.
    with TestClient(create_app(hub)) as http:
        assert all(http.get(f"{API}/community").status_code == 200 for _ in range(5))


def test_free_tries_are_counted_in_the_database_for_every_process(
    limited_hub: tuple[Hub, Clock, dict[str, SigningKey]],
) -> None:
    hub, clock, _ = limited_hub
    other = Hub.open(hub.directory or Path(), clock=clock)  # another server process
    try:
        ada, grace = "a" * 64, "b" * 64
        hub.models.tries.take(ada, TRY_PER_MINUTE - 1)
        hub.models.tries.take(grace, TRY_PER_MINUTE)  # each member has their own allowance
        with pytest.raises(RateLimited, match="a minute") as refused:
            other.models.tries.take(ada, 2)
        assert refused.value.retry_after == 1
        other.models.tries.take(ada, 1)  # the refused take counted nothing
        with pytest.raises(RateLimited):
            hub.models.tries.take(ada, 1)
        # A day's allowance spans minutes; past it, the refusal says to wait for tomorrow.
        taken = TRY_PER_MINUTE
        while taken + TRY_PER_MINUTE <= TRY_PER_DAY:
            clock.advance(60)
            (hub if taken % 2 else other).models.tries.take(ada, TRY_PER_MINUTE)
            taken += TRY_PER_MINUTE
        clock.advance(60)
        left = TRY_PER_DAY - taken
        with pytest.raises(QuotaExceeded, match="a day") as day:
            other.models.tries.take(ada, left + 1)
        assert not isinstance(day.value, RateLimited) and (day.value.retry_after or 0) > 60
        if left:
            hub.models.tries.take(ada, left)  # the refused minute's count was rolled back
    finally:
        other.close()
