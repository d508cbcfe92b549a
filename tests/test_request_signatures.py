"""Member-signed requests (``X-Commonweal-Auth``) cover their body and are accepted once.

A captured header cannot carry another body (a webhook URL sending a member's news
elsewhere, other inputs to try a model), cannot be sent a second time — to the same
server or to another process of the same hub — and the older form that covered neither
is refused with a message that says to update the client. Every test runs on SQLite and,
when COMMONWEAL_TEST_DATABASE_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, inspect, select, text

from commonweal.client import HubClient
from commonweal.errors import Unauthorized
from commonweal.hub import Hub
from commonweal.hub.signatures import CLOCK_MARGIN, PRUNE_EVERY
from commonweal.ledger.keys import SigningKey
from commonweal.store.database import read_connection, write_connection
from commonweal.store.schema import seen_requests
from commonweal.wire import AUTH_HEADER, AUTH_WINDOW_SECONDS, auth_header, check_auth_header
from tests.kit import at_once, free_port, make_hub, start_server

API = "/api/v1"


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[tuple[HubClient, SigningKey]]:
    hub, founder = make_hub(tmp_path / "hub", database_url)
    hub.close()
    with HubClient(str(tmp_path / "hub")) as c:
        yield c, founder


def send(c: HubClient, method: str, target: str, header: str, body: bytes = b"") -> httpx.Response:
    headers = {AUTH_HEADER: header}
    if body:
        headers["Content-Type"] = "application/json"
    return c._http.request(method, target, headers=headers, content=body)


def message_of(resp: httpx.Response, status: int) -> str:
    """Check a 401's status and code; return its message."""
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == "unauthorized"
    return str(err["message"])


def test_a_webhook_header_cannot_carry_another_url(client: tuple[HubClient, SigningKey]) -> None:
    c, ada = client
    target = f"{API}/members/{ada.key_id}/webhook"
    mine = b'{"url":"https://hooks.example/ada"}'
    header = auth_header(ada, "PUT", target, body=mine)
    # The captured header, with the attacker's URL as the body: refused, nothing changed.
    for other in (b'{"url":"https://evil.example/"}', mine + b" ", b""):
        msg = message_of(send(c, "PUT", target, header, other), 401)
        assert "does not verify" in msg and "body" in msg
    assert c.webhook(ada)["url"] is None
    assert send(c, "PUT", target, header, mine).status_code == 200
    assert c.webhook(ada)["url"] == "https://hooks.example/ada"


def test_a_try_header_cannot_carry_other_inputs(client: tuple[HubClient, SigningKey]) -> None:
    c, ada = client
    target = f"{API}/models/latest/try"
    signed_for = json.dumps({"inputs": [{"text": "bread"}]}).encode()
    header = auth_header(ada, "POST", target, body=signed_for)
    swapped = json.dumps({"inputs": [{"text": "something else entirely"}]}).encode()
    # Refused at the signature, before the route looks for a model.
    assert "does not verify" in message_of(send(c, "POST", target, header, swapped), 401)
    # The header with the body it was made for passes the signature (no model yet: 404).
    assert send(c, "POST", target, header, signed_for).status_code == 404


def test_a_signed_request_is_accepted_once(client: tuple[HubClient, SigningKey]) -> None:
    c, ada = client
    export = f"{API}/members/{ada.key_id}/export"
    header = auth_header(ada, "GET", export)
    assert send(c, "GET", export, header).status_code == 200
    msg = message_of(send(c, "GET", export, header), 401)
    assert "already used" in msg and "sign each request afresh" in msg
    # A body-carrying request too: the webhook cannot be set twice with one header.
    target = f"{API}/members/{ada.key_id}/webhook"
    body = b'{"url":"https://hooks.example/ada"}'
    put = auth_header(ada, "PUT", target, body=body)
    assert send(c, "PUT", target, put, body).status_code == 200
    assert c.set_webhook(ada, None)["url"] is None
    assert "already used" in message_of(send(c, "PUT", target, put, body), 401)
    assert c.webhook(ada)["url"] is None
    # A refused signature (a swapped body) is not remembered: the right body still passes.
    fresh = auth_header(ada, "PUT", target, body=body)
    assert send(c, "PUT", target, fresh, b'{"url":"https://evil.example/"}').status_code == 401
    assert send(c, "PUT", target, fresh, body).status_code == 200


def test_requests_signed_in_the_same_millisecond_do_not_collide(
    client: tuple[HubClient, SigningKey],
) -> None:
    c, ada = client
    at = time.time()
    paths = [f"{API}/members/{ada.key_id}/export", f"{API}/members/{ada.key_id}/webhook"] * 4
    headers = [auth_header(ada, "GET", p, now=at) for p in paths]
    stamps = {h.split(".")[2] for h in headers}
    assert len(stamps) == 1 and len(set(headers)) == len(headers)  # one ms, eight nonces
    assert [send(c, "GET", p, h).status_code for p, h in zip(paths, headers, strict=True)] == [
        200
    ] * len(paths)
    # The SDK signs each of its requests afresh: reading twice in a row just works.
    assert c.export(ada)["member"] == c.export(ada)["member"]


def test_the_older_header_form_is_refused_with_a_clear_message(
    client: tuple[HubClient, SigningKey],
) -> None:
    c, ada = client
    export = f"{API}/members/{ada.key_id}/export"
    # How clients before this change signed: KEYID.UNIXTIME.SIG over "GET target time".
    stamp = str(int(time.time()))
    old = ada.sign(f"GET {export} {stamp}".encode())
    header = f"{ada.key_id}.{stamp}.{base64.b64encode(old).decode()}"
    msg = message_of(send(c, "GET", export, header), 401)
    assert msg.startswith("this client signs requests in an older form; update it")


def test_the_replay_table_is_created_on_open_and_pruned(tmp_path: Path, database_url: str) -> None:
    hub, ada = make_hub(tmp_path / "hub", database_url)
    with write_connection(hub.engine) as conn:
        conn.execute(text("DROP TABLE seen_requests"))
    hub.close()
    # An existing hub without the table (made before it existed) gets it on open, with
    # no schema version change.
    hub = Hub.open(tmp_path / "hub")
    try:
        with read_connection(hub.engine) as conn:
            assert "seen_requests" in inspect(conn).get_table_names()
        now = time.time()
        target = f"{API}/members/{ada.key_id}/export"
        old = check_auth_header(
            auth_header(ada, "GET", target, now=now - 200), "GET", target, b"", now=now
        )
        new = check_auth_header(
            auth_header(ada, "GET", target, now=now), "GET", target, b"", now=now
        )
        assert old.expires == int(now - 200) + AUTH_WINDOW_SECONDS + 1
        hub.signatures.use(old, now=now)
        hub.signatures.use(new, now=now + 1)
        with pytest.raises(Unauthorized, match="already used"):
            hub.signatures.use(old, now=now + 2)
        assert count(hub) == 2

        # Once its window has passed, the next use's prune forgets the old row only.
        def use_at(t: float) -> bytes:
            signed = check_auth_header(
                auth_header(ada, "GET", target, now=t), "GET", target, b"", now=t
            )
            hub.signatures.use(signed, now=t)
            return signed.digest

        def kept() -> set[bytes]:
            with read_connection(hub.engine) as conn:
                return {r[0] for r in conn.execute(select(seen_requests.c.digest))}

        third = use_at(now + 200 + PRUNE_EVERY)
        assert kept() == {new.digest, third}
        # Past its expiry, a row is kept CLOCK_MARGIN seconds more (another server's clock
        # may be behind this one's), then goes.
        assert new.expires < now + 200 + 2 * PRUNE_EVERY < new.expires + CLOCK_MARGIN
        fourth = use_at(now + 200 + 2 * PRUNE_EVERY)
        assert kept() == {new.digest, third, fourth}
        fifth = use_at(now + 200 + 3 * PRUNE_EVERY)
        assert kept() == {third, fourth, fifth}
    finally:
        hub.close()


def count(hub: Hub) -> int:
    with read_connection(hub.engine) as conn:
        return int(conn.execute(select(func.count()).select_from(seen_requests)).scalar_one())


@pytest.mark.slow
def test_a_header_is_accepted_once_across_two_server_processes(
    tmp_path: Path, database_url: str
) -> None:
    hub, ada = make_hub(tmp_path / "hub", database_url)
    hub.close()
    ports = [free_port(), free_port()]
    procs = [start_server(tmp_path / "hub", p) for p in ports]
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        export = f"{API}/members/{ada.key_id}/export"
        # One after the other: used on the first server, refused by the second.
        header = auth_header(ada, "GET", export)
        assert httpx.get(urls[0] + export, headers={AUTH_HEADER: header}).status_code == 200
        again = httpx.get(urls[1] + export, headers={AUTH_HEADER: header})
        assert again.status_code == 401 and "already used" in again.text
        # At once: each header sent 6 times, 3 to each server, from 6 threads — exactly one
        # of its copies is served.
        for _ in range(5):
            header = auth_header(ada, "GET", export)

            def fire(n: int, h: str = header) -> int:
                r = httpx.get(urls[n % 2] + export, headers={AUTH_HEADER: h}, timeout=30)
                return r.status_code

            got = Counter(at_once(6, fire))
            assert got == {200: 1, 401: 5}, got
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
