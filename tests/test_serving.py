"""Serving the community's model: API keys, predictions, metering and revenue.

A member issues a key; a consumer predicts with it, in-process and over a real socket; every
input predicted is one metered call; the hub bills the calls into signed ``revenue.record``
events exactly once, even while predictions and billing run at the same time; and every way
a consumer can get a call wrong is one clear error with its HTTP status.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from commonweal.api import create_app
from commonweal.audit import audit_hub
from commonweal.client import HubClient
from commonweal.errors import Unauthorized
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.serving import Biller, hash_key
from commonweal.store.schema import treasury, usage
from tests.modelkit import community, digit_items, text_items
from tests.test_crash import free_port, start_server

PRICE = 3
API = "/api/v1"
# Small communities train in about a second: two shards, a small evaluation set.
TRAINING = {"shards": 2, "evaluation": {"min_items": 10}}


@contextmanager
def served(
    tmp_path: Path,
    database_url: str,
    *,
    kind: str = "text-classification",
    n: int = 200,
    serving: dict[str, Any] | None = None,
    train: bool = True,
) -> Iterator[tuple[HubClient, dict[str, SigningKey]]]:
    """A community of ``n`` texts (or digits) with version 1 trained, unless not ``train``."""
    items = text_items(n) if kind == "text-classification" else digit_items(0, n)
    client, keys = community(
        tmp_path / "hub",
        database_url,
        kind=kind,
        items=items,
        charter_extra={
            "training": TRAINING,
            "serving": {"price_per_call": PRICE, **(serving or {})},
        },
    )
    try:
        if train:
            client._hub.train()
        yield client, keys
    finally:
        client.close()


def texts(n: int, seed: int = 1) -> tuple[list[dict[str, Any]], list[str]]:
    """``n`` inputs (held out: another seed than the community's) and their right labels."""
    items = text_items(n, seed=seed)
    return [{"text": it["text"]} for it in items], [it["label"] for it in items]


def leaves(hub: Hub, kind: str | None = None) -> list[Any]:
    hub.refresh()
    out, size = [], hub.size()
    for start in range(0, size, 1000):
        out.extend(hub.entries(start, min(size, start + 1000)))
    return [lf for lf in out if kind is None or lf.kind == kind]


def billed_calls(hub: Hub) -> int:
    return sum(u["calls"] for lf in leaves(hub, "revenue.record") for u in lf.body["usage"])


def usage_rows(hub: Hub) -> dict[str, tuple[int, int]]:
    """(calls, unbilled) per key hash, summed over days."""
    out: dict[str, tuple[int, int]] = {}
    with hub.read() as conn:
        for kh, _day, calls, unbilled in conn.execute(select(usage)).all():
            c, u = out.get(kh, (0, 0))
            out[kh] = (c + int(calls), u + int(unbilled))
    return out


def treasury_row(hub: Hub) -> dict[str, Any] | None:
    with hub.read() as conn:
        row = conn.execute(select(treasury)).mappings().first()
    return dict(row) if row else None


def call(
    client: HubClient, doc: Any, *, key: str | None, version: str | int = "latest"
) -> httpx.Response:
    """POST a prediction as raw HTTP (no SDK error mapping), with ``key`` as a bearer token."""
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return client._http.post(f"{API}/models/{version}/predict", json=doc, headers=headers)


def error_of(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code, err
    assert err["message"]
    return str(err["message"])


def post_event(
    client: HubClient, key: SigningKey, kind: str, body: dict[str, Any]
) -> httpx.Response:
    return client._http.post(f"{API}/events", json=sign_event(key, kind, body).to_wire())


def wait_for(what: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


# -- predictions ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_consumer_predicts_digits_embedded_and_over_http(
    tmp_path: Path, database_url: str
) -> None:
    with served(tmp_path, database_url, kind="image-classification") as (client, keys):
        hub = client._hub
        secret, ack = client.create_apikey(keys["Grace"], "Corner Shop")
        assert secret.startswith("cw_") and ack["entries"][0]["kind"] == "apikey.create"
        key = hub.state.apikeys[hash_key(secret)]
        assert (key.consumer, key.issued_by, key.status) == (
            "Corner Shop",
            keys["Grace"].key_id,
            "active",
        )
        # The secret is nowhere in the log: only its hash.
        assert all(secret not in lf.data.decode() for lf in leaves(hub))

        easy = digit_items(0, 20)  # digits the members shared: the model knows them
        inputs = [{"image": it["image"]} for it in easy]
        for version in ("latest", 1):
            out = client.predict(inputs, api_key=secret, version=version)
            assert (out["version"], out["calls"], out["credits"]) == (1, 20, 20 * PRICE)
            right = sum(p["label"] == it["label"] for p, it in zip(out["predictions"], easy))
            assert right >= 18, out["predictions"]
            p = out["predictions"][0]
            assert 0 < p["score"] <= 1 and p["top"][0] == {"label": p["label"], "score": p["score"]}
            assert len(p["top"]) == 5
        embedded_calls = 40

        port = free_port()
        server = start_server(tmp_path / "hub", port)
        http_calls = 0
        try:
            with HubClient(f"http://127.0.0.1:{port}") as remote:

                def over_http(n: int, version: str | int = "latest") -> dict[str, Any]:
                    nonlocal http_calls
                    out = remote.predict(inputs[:n], api_key=secret, version=version)
                    http_calls += out["calls"]
                    return out

                assert [m["version"] for m in remote.models()] == [1]
                assert remote.model("latest")["version"] == 1
                out = over_http(10)
                assert (out["version"], out["calls"], out["credits"]) == (1, 10, 10 * PRICE)
                right = sum(p["label"] == it["label"] for p, it in zip(out["predictions"], easy))
                assert right >= 8
                with pytest.raises(Unauthorized, match="not one this community issued"):
                    remote.predict(inputs[:1], api_key="cw_not-a-key")
                # Another process trains version 2: the running server's "latest" follows.
                assert hub.train()["version"] == 2
                assert wait_for(lambda: over_http(1)["version"] == 2)
                assert over_http(2, version=1)["version"] == 1
                assert [m["version"] for m in remote.models()] == [1, 2]
        finally:
            server.terminate()  # a graceful stop: the server's biller bills what it metered
            server.wait(20)
        records = leaves(hub, "revenue.record")
        assert len(records) == 1, "the server did not log its revenue when it stopped"
        body = records[0].body
        assert body["usage"] == [
            {"key_hash": key.key_hash, "calls": http_calls, "credits": http_calls * PRICE}
        ]
        # What the embedded client metered is still in its meter; bill it here.
        record = hub.close_revenue()
        assert record is not None
        assert record["usage"] == [
            {"key_hash": key.key_hash, "calls": embedded_calls, "credits": embedded_calls * PRICE}
        ]
        assert record["start"] >= body["end"]
        assert usage_rows(hub)[key.key_hash] == (embedded_calls + http_calls, 0)
        total = embedded_calls + http_calls
        assert client.treasury()["calls"] == total
        assert client.treasury()["balance"] == total * PRICE
        audit_hub(hub)
