"""Serving the community's model: API keys, predictions, metering and revenue.

A member issues a key; a consumer predicts with it, in-process and over a real socket; every
input predicted is one metered call; the hub bills the calls into signed ``revenue.record``
events exactly once, even while predictions and billing run at the same time; and every way
a consumer can get a call wrong is one clear error with its HTTP status.
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from commonweal.api import create_app
from commonweal.client import HubClient
from commonweal.errors import QuotaExceeded, Unauthorized
from commonweal.hub import Hub
from commonweal.hub.serving import Biller
from commonweal.ledger.event import now, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.store.database import is_sqlite, write_connection
from commonweal.store.schema import treasury, usage
from commonweal.store.usage import add_usage
from commonweal.verify import verify_hub
from commonweal.wire import hash_api_key as hash_key
from commonweal.wire import new_api_key
from tests.kit import Clock, community, digit_items, free_port, start_server, text_items

PRICE = 3
API = "/api/v1"
# Small communities train fast: 200 items, a small evaluation set (and one shard: the
# charter's floor on rows per shard keeps a pool this small in one model).
TRAINING = {"shards": 2, "evaluation": {"holdout_pct": 15, "min_items": 5}}


@contextmanager
def served(
    tmp_path: Path,
    database_url: str,
    *,
    kind: str = "image-classification",
    items: int = 200,
    serving: dict[str, Any] | None = None,
    train: bool = True,
) -> Iterator[tuple[HubClient, dict[str, SigningKey]]]:
    """A community of ``items`` digits (or texts), at PRICE credits a call, with version 1
    trained unless not ``train``. Yields the embedded client and the members' keys."""
    data = digit_items(0, items) if kind == "image-classification" else text_items(items)
    client, keys = community(
        tmp_path / "hub",
        database_url,
        kind=kind,
        items=data,
        charter_extra={
            "training": TRAINING,
            "serving": {"price_per_call": PRICE, **(serving or {})},
        },
    )
    try:
        if train:
            assert client.embedded_hub.models.train()["version"] == 1
        yield client, keys
    finally:
        client.close()


def change_the_pool(client: HubClient, keys: dict[str, SigningKey]) -> None:
    """Grace withdraws her last accepted item: the pool changes, so a new version may be
    trained (training with nothing changed is refused)."""
    mine = client.contributions(member=keys["Grace"].key_id, status="accepted")
    client.withdraw(keys["Grace"], [max(c["id"] for c in mine)])


def digits(n: int) -> tuple[list[dict[str, Any]], list[str]]:
    """``n`` digits the members shared (easy for the model) as inputs, and their labels."""
    items = digit_items(0, n)
    return [{"image": it["image"]} for it in items], [it["label"] for it in items]


def texts(n: int, seed: int = 1) -> tuple[list[dict[str, Any]], list[str]]:
    """``n`` new texts (another seed than the community's) as inputs, and their labels."""
    items = text_items(n, seed=seed)
    return [{"text": it["text"]} for it in items], [it["label"] for it in items]


def correct(out: dict[str, Any], labels: list[str]) -> int:
    return sum(p["label"] == want for p, want in zip(out["predictions"], labels, strict=True))


def leaves(hub: Hub, kind: str | None = None) -> list[Any]:
    hub.refresh()
    out, size = [], hub.log.size()
    for start in range(0, size, 1000):
        out.extend(hub.log.entries(start, min(size, start + 1000)))
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
    """Check an error answer's status and code; return its message."""
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code, err
    assert err["message"]
    return str(err["message"])


def post_event(
    client: HubClient, key: SigningKey, kind: str, body: dict[str, Any]
) -> httpx.Response:
    return client._http.post(
        f"{API}/events", json=sign_event(key, kind, body, hub=client.origin).to_wire()
    )


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
    with served(tmp_path, database_url) as (client, keys):
        hub = client.embedded_hub
        secret, ack = client.create_apikey(keys["Grace"], "Corner Shop")
        assert secret.startswith("cw_") and ack["entries"][0]["kind"] == "apikey.create"
        key = hub.state.apikeys[hash_key(secret)]
        assert (key.consumer, key.issued_by, key.status) == (
            "Corner Shop",
            keys["Grace"].key_id,
            "active",
        )
        assert key.quota_per_day == 100_000  # the charter's default
        # The log holds the key's hash, never its secret.
        assert all(secret.encode() not in lf.data for lf in leaves(hub))

        inputs, labels = digits(20)
        for version in ("latest", 1, "1"):
            out = client.predict(inputs, api_key=secret, version=version)
            assert (out["version"], out["calls"], out["credits"]) == (1, 20, 20 * PRICE)
            assert correct(out, labels) >= 15, out["predictions"]
            p = out["predictions"][0]
            assert 0 < p["score"] <= 1 and len(p["top"]) == 5
            assert p["top"][0] == {"label": p["label"], "score": p["score"]}
        embedded_calls = 60

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
                out = over_http(20)
                assert (out["version"], out["calls"], out["credits"]) == (1, 20, 20 * PRICE)
                assert correct(out, labels) >= 15
                with pytest.raises(Unauthorized, match="not one this community issued"):
                    remote.predict(inputs[:1], api_key="cw_not-a-key")
                # Another process trains version 2: the running server's "latest" follows.
                change_the_pool(client, keys)
                assert hub.models.train()["version"] == 2
                assert wait_for(lambda: over_http(1)["version"] == 2)
                assert over_http(2, version=1)["version"] == 1
                assert [m["version"] for m in remote.models()] == [1, 2]
        finally:
            server.terminate()  # a graceful stop: the server's biller bills what it metered
            server.wait(20)
        records = leaves(hub, "revenue.record")
        assert len(records) == 1, "the server logged no revenue when it stopped"
        # Every call was stored as it was served, whichever process served it: the server's
        # last record bills the embedded client's calls too.
        assert records[0].body["usage"] == [
            {
                "key_hash": key.key_hash,
                "calls": embedded_calls + http_calls,
                "credits": (embedded_calls + http_calls) * PRICE,
            }
        ]
        assert hub.models.close_revenue() is None
        total = embedded_calls + http_calls
        assert usage_rows(hub)[key.key_hash] == (total, 0)
        got = client.treasury()
        assert (got["calls"], got["balance"]) == (total, total * PRICE)
        verify_hub(hub)


def test_latest_follows_a_version_another_hub_trained(tmp_path: Path, database_url: str) -> None:
    with served(tmp_path, database_url) as (client, keys):
        secret, _ = client.create_apikey(keys["Alan"], "Post Office")
        inputs, labels = digits(10)
        out = client.predict(inputs, api_key=secret)
        assert (out["version"], out["calls"], out["credits"]) == (1, 10, 10 * PRICE)
        assert client.model("latest")["version"] == 1

        # A second Hub on the same database (the CLI, another server) trains version 2.
        change_the_pool(client, keys)
        other = Hub.open(tmp_path / "hub")
        try:
            assert other.models.train()["version"] == 2
        finally:
            other.close()
        # This hub looks at the log's head at most once a second, then catches up.
        assert wait_for(lambda: client.predict(inputs[:1], api_key=secret)["version"] == 2)
        assert client.model("latest")["version"] == 2
        assert [m["version"] for m in client.models()] == [1, 2]
        for version, want in ((1, 1), ("1", 1), (2, 2), ("latest", 2)):
            got = client.predict(inputs, api_key=secret, version=version)
            assert got["version"] == want
            assert correct(got, labels) >= 7  # chance is 1 in 10
        lineage = client.model_lineage("latest")
        assert lineage["version"] == 2
        assert lineage["manifest_root"] == client.model(2)["manifest_root"]


def test_lineage_proof_and_card_see_a_version_another_hub_trained(
    tmp_path: Path, database_url: str
) -> None:
    with served(tmp_path, database_url) as (client, keys):
        item = client.model_lineage(1)["items"][0]
        change_the_pool(client, keys)
        other = Hub.open(tmp_path / "hub")
        try:
            assert other.models.train()["version"] == 2
        finally:
            other.close()

        def answers(path: str, **params: Any) -> bool:
            return bool(client._http.get(f"{API}{path}", params=params).status_code == 200)

        # No prediction or model listing in between: these routes must look for themselves.
        assert wait_for(lambda: answers("/models/2/lineage"), timeout=2.5)
        assert answers("/models/latest/proof", item=item)
        if importlib.util.find_spec("commonweal.cards") is not None:
            assert answers("/models/2/card")


def test_model_card_names_the_manifest_root_and_the_entry(
    tmp_path: Path, database_url: str
) -> None:
    pytest.importorskip("commonweal.cards")
    with served(tmp_path, database_url) as (client, _):
        model = client.model("latest")
        root, entry = model["manifest_root"], model["entry"]
        card = client.card("latest")
        assert isinstance(card, str) and card == client.card(1)
        assert root in card
        assert re.search(rf"entry:?\**:? {entry}\b", card), card
        resp = client._http.get(f"{API}/models/1/card", params={"format": "markdown"})
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/markdown")
        doc = client.card(1, "croissant")
        assert doc["@type"] == "sc:Dataset"
        assert root in str(doc)
        bad = client._http.get(f"{API}/models/1/card", params={"format": "pdf"})
        assert "'pdf'" in (msg := error_of(bad, 400, "invalid_input"))
        assert "'markdown' or 'croissant'" in msg
        error_of(client._http.get(f"{API}/models/9/card"), 404, "not_found")


# -- metering and revenue -------------------------------------------------------------------


def test_calls_are_metered_and_billed_into_the_treasury(tmp_path: Path, database_url: str) -> None:
    with served(tmp_path, database_url, kind="text-classification") as (client, keys):
        hub = client.embedded_hub
        shop, _ = client.create_apikey(keys["Grace"], "Shop")
        news, _ = client.create_apikey(keys["Tim"], "News")
        inputs, labels = texts(7)
        for n in (1, 2, 3):
            out = client.predict(inputs[:n], api_key=shop)
            assert (out["version"], out["calls"], out["credits"]) == (1, n, n * PRICE)
        out = client.predict(inputs, api_key=news)
        assert correct(out, labels) == 7
        client.predict(inputs[:4], api_key=news, version=1)
        calls = {hash_key(shop): 6, hash_key(news): 11}
        # Nothing is billed yet: each call was counted in the usage table as it was served.
        assert usage_rows(hub) == {kh: (n, n) for kh, n in calls.items()}
        assert client.treasury()["balance"] == 0
        size = hub.log.size()

        record = hub.models.close_revenue()
        assert record is not None
        assert hub.log.size() == size + 1
        [leaf] = leaves(hub, "revenue.record")
        assert leaf.index == size == record["entry"]
        assert leaf.actor == hub.state.hub_key
        body = leaf.body
        assert body["usage"] == [
            {"key_hash": kh, "calls": n, "credits": n * PRICE} for kh, n in sorted(calls.items())
        ]
        assert body["price_per_call"] == PRICE
        assert body["credits"] == 17 * PRICE == record["credits"] == record["balance"]
        assert body["start"] <= body["end"] <= leaf.log_time
        assert usage_rows(hub) == {kh: (n, 0) for kh, n in calls.items()}
        expected = {"balance": 17 * PRICE, "revenue": 17 * PRICE, "calls": 17}
        assert {k: client.treasury()[k] for k in expected} == expected
        row = treasury_row(hub)
        assert row is not None and {k: row[k] for k in expected} == expected
        assert row["updated_index"] == leaf.index

        # Nothing new: no event, nothing written.
        assert hub.models.close_revenue() is None
        assert hub.log.size() == size + 1

        # The next period starts where the last one ended.
        client.predict(inputs[:2], api_key=shop)
        again = hub.models.close_revenue()
        assert again is not None and again["start"] >= body["end"]
        assert again["usage"] == [{"key_hash": hash_key(shop), "calls": 2, "credits": 2 * PRICE}]
        assert client.treasury()["balance"] == 19 * PRICE
        report = verify_hub(hub)
        assert report.size == hub.log.size()
        assert "projections equal the replayed state" in report.checks


def hammer(
    hubs: list[Hub], secrets: list[str], *, calls: int = 120, closers: bool = False
) -> tuple[int, list[BaseException]]:
    """Predict from a thread per key (round robin over ``hubs``, each charging the usage
    table as it serves) while one thread closes revenue on the first hub over and over
    and, with ``closers``, the other hubs do too (as other servers' billers would), until
    ``calls`` calls were made and revenue was closed at least twice meanwhile (or a thread
    failed, or a minute passed); then bill the rest. Returns the calls made and what the
    threads raised."""
    inputs, _ = digits(3)
    made = [0] * len(secrets)
    closed: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def close() -> None:
        record = hubs[0].models.close_revenue()
        if record is not None:
            closed.append(record)

    def loop(fn: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            try:
                while not stop.is_set():
                    fn()
            except BaseException as exc:
                errors.append(exc)

        return threading.Thread(target=run)

    def predictor(n: int) -> Callable[[], None]:
        hub = hubs[n % len(hubs)]

        def once() -> None:
            out = hub.models.predict("latest", inputs[: 1 + made[n] % 3], api_key=secrets[n])
            made[n] += out["calls"]

        return once

    threads = [loop(predictor(n)) for n in range(len(secrets))]
    threads.append(loop(close))
    if closers:
        threads += [loop(h.models.close_revenue) for h in hubs[1:]]
    for t in threads:
        t.start()
    # Enough work done, counted rather than timed (a slow machine just takes longer).
    wait_for(lambda: errors or (sum(made) >= calls and len(closed) >= 2), timeout=60)
    stop.set()
    for t in threads:
        t.join(30)
    hubs[0].models.close_revenue()
    return sum(made), errors


def test_every_call_is_billed_exactly_once_under_concurrency(
    tmp_path: Path, database_url: str
) -> None:
    with served(tmp_path, database_url) as (client, keys):
        hub = client.embedded_hub
        secrets = [client.create_apikey(keys[name], name)[0] for name in ("Grace", "Alan", "Tim")]
        made, errors = hammer([hub], secrets)
        assert not errors, errors
        assert made > 30
        assert len(leaves(hub, "revenue.record")) > 1
        assert billed_calls(hub) == made
        rows = usage_rows(hub)
        assert sum(c for c, _ in rows.values()) == made
        assert all(u == 0 for _, u in rows.values())
        got = client.treasury()
        assert (got["calls"], got["balance"]) == (made, made * PRICE)
        verify_hub(hub)


def waits_for(hub: Hub, xid: str) -> bool:
    """Whether some PostgreSQL transaction waits for transaction ``xid`` (for its rows)."""
    with hub.read() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' "
                "AND NOT granted AND transactionid::text = :xid"
            ),
            {"xid": xid},
        ).scalar()
    return bool(waiting)


def test_a_charge_committing_during_a_close_is_billed(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process charges calls while this hub closes revenue: they are billed now
    or in the next record, never zeroed unbilled."""
    clock = Clock("2030-01-01T12:00:00.000Z")  # one day for the meter, whenever this runs
    monkeypatch.setattr(Hub, "clock", staticmethod(clock))
    monkeypatch.setattr("commonweal.ledger.event.now", clock)  # members sign on it too
    with served(tmp_path, database_url) as (client, keys):
        hub = client.embedded_hub
        secret, _ = client.create_apikey(keys["Grace"], "Shop")
        inputs, _ = digits(5)
        client.predict(inputs, api_key=secret)
        assert usage_rows(hub)[hash_key(secret)] == (5, 5)  # stored as it was served
        kh, day = hash_key(secret), clock()[:10]
        other = Hub.open(tmp_path / "hub")
        try:
            # The other process's charge, held open while this hub closes revenue.
            with write_connection(other.engine) as conn:
                add_usage(conn, kh, day, 7)
                closer = threading.Thread(target=hub.models.close_revenue)
                if is_sqlite(other.engine):
                    closer.start()  # it waits for the write lock; any order is right there
                    # SQLite shows no lock waits to poll for: give the closer time to
                    # reach the lock before this charge commits (either order must pass).
                    time.sleep(0.2)
                else:
                    xid = conn.execute(text("SELECT pg_current_xact_id()::text")).scalar()
                    closer.start()
                    assert wait_for(lambda: waits_for(other, xid)), "the close never waited"
            closer.join(30)
        finally:
            other.close()
        hub.models.close_revenue()
        assert usage_rows(hub)[kh] == (12, 0)
        assert billed_calls(hub) == 12


def test_two_hubs_metering_one_database_bill_every_call_once(
    tmp_path: Path, database_url: str
) -> None:
    """Two servers on one database (PostgreSQL's scale-out): both charge calls and both
    close revenue while the other's charges commit."""
    with served(tmp_path, database_url) as (client, keys):
        secrets = [client.create_apikey(keys[name], name)[0] for name in ("Grace", "Alan", "Tim")]
        other = Hub.open(tmp_path / "hub")
        try:
            made, errors = hammer([client.embedded_hub, other], secrets, closers=True)
        finally:
            other.close()
        assert not errors, errors
        assert billed_calls(client.embedded_hub) == made
        assert all(u == 0 for _, u in usage_rows(client.embedded_hub).values())
        verify_hub(client.embedded_hub)


def test_a_close_that_computed_its_period_before_another_closed_still_bills(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hubs (two servers' billers) close revenue at once: the one that read the clock
    first but got the log's lock second must not end its period before the record that
    was just logged."""
    clock = Clock("2030-01-01T12:00:00.000Z")
    monkeypatch.setattr(Hub, "clock", staticmethod(clock))
    monkeypatch.setattr("commonweal.ledger.event.now", clock)  # members sign on it too
    with served(tmp_path, database_url) as (client, keys):
        hub = client.embedded_hub
        secret, _ = client.create_apikey(keys["Grace"], "Shop")
        inputs, _ = digits(4)
        client.predict(inputs[:2], api_key=secret)
        early = clock()  # the clock as the slower closer read it
        clock.advance(1)
        other = Hub.open(tmp_path / "hub")
        try:
            first = other.models.close_revenue()  # the faster closer
        finally:
            other.close()
        assert first is not None and first["end"] > early
        client.predict(inputs[2:], api_key=secret)
        # The slower closer read its period end from the clock before the faster one
        # closed; the log stamps its entry later, as it would.
        readings = [early]
        with monkeypatch.context() as m:
            m.setattr(hub, "clock", lambda: readings.pop(0) if readings else clock())
            second = hub.models.close_revenue()
        assert second is not None and second["start"] >= first["end"]
        assert second["start"] <= second["end"]
        assert billed_calls(hub) == 4
        verify_hub(hub)


def test_the_biller_logs_revenue_by_itself_and_when_it_stops(
    tmp_path: Path, database_url: str
) -> None:
    with served(tmp_path, database_url, serving={"revenue_period_seconds": 1}) as (client, keys):
        hub = client.embedded_hub
        secret, _ = client.create_apikey(keys["Grace"], "Shop")
        inputs, _ = digits(5)

        biller = Biller(hub, check_every=0.05)
        biller.start()
        try:
            hub.models.predict("latest", inputs, api_key=secret)
            assert wait_for(lambda: billed_calls(hub) == 5), "no revenue within a period"
            hub.models.predict("latest", inputs[:2], api_key=secret)
        finally:
            biller.stop()
        assert biller._thread is not None and not biller._thread.is_alive()
        assert billed_calls(hub) == 7  # the last calls, billed by the period or the stop
        assert usage_rows(hub) == {hash_key(secret): (7, 0)}

        # What `commonweal serve` runs: the app's lifespan starts and stops a biller.
        headers = {"Authorization": f"Bearer {secret}"}
        with TestClient(create_app(hub, billing=True)) as http:
            r = http.post(f"{API}/models/latest/predict", json={"inputs": inputs}, headers=headers)
            assert r.status_code == 200 and r.json()["calls"] == 5
            assert wait_for(lambda: billed_calls(hub) == 12), "the app's biller billed nothing"
            r = http.post(f"{API}/models/1/predict", json={"inputs": inputs[:3]}, headers=headers)
            assert r.status_code == 200
        assert billed_calls(hub) == 15
        records = leaves(hub, "revenue.record")
        assert len(records) >= 3
        for before, after in itertools.pairwise(records):
            assert before.body["end"] <= after.body["start"] <= after.body["end"]
        assert client.treasury()["balance"] == 15 * PRICE
        verify_hub(hub)


# -- bad calls ------------------------------------------------------------------------------


def test_bad_calls_are_clear_errors_and_cost_nothing(tmp_path: Path, database_url: str) -> None:
    with served(tmp_path, database_url, train=False) as (client, keys):
        hub = client.embedded_hub
        secret, _ = client.create_apikey(keys["Grace"], "Shop")
        inputs, _ = digits(2)
        doc = {"inputs": inputs}

        # No model yet: say so, and how to get one.
        msg = error_of(call(client, doc, key=secret), 404, "not_found")
        assert "no model" in msg and "train" in msg
        assert "train" in error_of(client._http.get(f"{API}/models/latest"), 404, "not_found")
        hub.models.train()
        assert call(client, doc, key=secret).status_code == 200
        charged = 2

        # Credentials.
        assert "API key" in error_of(call(client, doc, key=None), 401, "unauthorized")
        basic = {"Authorization": "Basic dXNlcjpwYXNz"}
        r = client._http.post(f"{API}/models/latest/predict", json=doc, headers=basic)
        error_of(r, 401, "unauthorized")
        unknown = "cw_" + "A" * 43
        msg = error_of(call(client, doc, key=unknown), 401, "unauthorized")
        assert "not one this community issued" in msg
        old, _ = client.create_apikey(keys["Alan"], "Old Shop")
        assert call(client, doc, key=old).status_code == 200
        client.revoke_apikey(keys["Alan"], hash_key(old))
        assert "revoked" in error_of(call(client, doc, key=old), 401, "unauthorized")
        with pytest.raises(Unauthorized, match="revoked"):
            client.predict(inputs, api_key=old)

        # Versions.
        msg = error_of(call(client, doc, key=secret, version=9), 404, "not_found")
        assert "9" in msg and "1-1" in msg
        assert "'abc'" in error_of(
            call(client, doc, key=secret, version="abc"), 400, "invalid_input"
        )
        error_of(client._http.get(f"{API}/models/9"), 404, "not_found")
        error_of(client._http.get(f"{API}/models/abc/lineage"), 400, "invalid_input")

        # What is sent.
        image = inputs[0]["image"]
        gif = base64.b64encode(b"GIF89a" + bytes(40)).decode()
        bad: dict[str, tuple[Any, str]] = {
            "label included": ({"inputs": [{"image": image, "label": "0"}]}, "exactly the fields"),
            "wrong field": ({"inputs": [{"picture": image}]}, "exactly the fields"),
            "bad base64": ({"inputs": [{"image": "not base64!"}]}, "inputs[0].image"),
            "not an image": ({"inputs": [{"image": gif}]}, "inputs[0].image"),
            "image not a string": ({"inputs": [{"image": 7}]}, "inputs[0].image"),
            "second input bad": ({"inputs": [{"image": image}, {}]}, "inputs[1]"),
            "input not a dict": ({"inputs": [image]}, "inputs[0] must be an object"),
            "empty inputs": ({"inputs": []}, "non-empty list"),
            "inputs not a list": ({"inputs": {"image": image}}, "non-empty list"),
            "no inputs": ({}, "inputs"),
            "more than inputs": ({"inputs": inputs, "version": 1}, "inputs"),
            "body not a dict": (inputs, "inputs"),
        }
        for what, (body, says) in bad.items():
            msg = error_of(call(client, body, key=secret), 400, "invalid_input")
            assert says in msg, (what, msg)
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        for raw in (b"", b"{", b'{"inputs": [}'):
            r = client._http.post(f"{API}/models/latest/predict", content=raw, headers=headers)
            error_of(r, 400, "invalid_input")
        msg = error_of(call(client, {"inputs": inputs[:1] * 1001}, key=secret), 413, "too_large")
        assert "1000" in msg and "1001" in msg
        assert call(client, {"inputs": inputs[:1] * 1000}, key=secret).status_code == 200
        charged += 1000

        # Quota: a refused call is not counted against it, nor charged.
        small, _ = client.create_apikey(keys["Tim"], "Small Shop", quota_per_day=3)
        four, _ = digits(4)
        msg = error_of(call(client, {"inputs": four}, key=small), 429, "quota_exceeded")
        assert "0 of its 3" in msg
        assert call(client, {"inputs": four[:3]}, key=small).status_code == 200
        assert "3 of its 3" in error_of(call(client, doc, key=small), 429, "quota_exceeded")
        with pytest.raises(QuotaExceeded):
            client.predict(four[:1], api_key=small)
        assert usage_rows(hub) == {
            hash_key(secret): (charged, charged),
            hash_key(old): (2, 2),
            hash_key(small): (3, 3),
        }
        # Another hub (a restarted server) counts the calls stored for today.
        other = Hub.open(tmp_path / "hub")
        try:
            with pytest.raises(QuotaExceeded, match="3 of its 3"):
                other.models.predict("latest", four[:1], api_key=small)
        finally:
            other.close()
        record = hub.models.close_revenue()
        assert record is not None
        assert record["credits"] == (charged + 2 + 3) * PRICE
        verify_hub(hub)


# -- API key rules --------------------------------------------------------------------------


def test_only_the_founder_issues_keys_when_the_charter_says_so(
    tmp_path: Path, database_url: str
) -> None:
    charter = {"serving": {"apikeys": "founder", "quota_per_key_per_day": 1000}}
    client, keys = community(tmp_path / "hub", database_url, items=[], charter_extra=charter)
    with client:
        hub = client.embedded_hub
        secret, key_hash = new_api_key()
        assert key_hash == hash_key(secret) and len(key_hash) == 64
        body = {"key_hash": key_hash, "consumer": "Shop"}
        msg = error_of(post_event(client, keys["Grace"], "apikey.create", body), 403, "forbidden")
        assert "only the founder" in msg
        msg = error_of(
            post_event(client, keys["Ada"], "apikey.create", {**body, "quota_per_day": 1001}),
            400,
            "invalid_input",
        )
        assert "1-1000" in msg and "1001" in msg
        for bad in ({"quota_per_day": 0}, {"key_hash": secret}, {"consumer": ""}, {"extra": 1}):
            r = post_event(client, keys["Ada"], "apikey.create", {**body, **bad})
            error_of(r, 400, "invalid_input")
        stranger = SigningKey.generate()
        r = post_event(client, stranger, "apikey.create", body)
        assert r.status_code == 403, r.text
        assert post_event(client, keys["Ada"], "apikey.create", body).status_code == 201
        assert hub.state.apikeys[key_hash].quota_per_day == 1000  # the charter's limit
        again = post_event(client, keys["Ada"], "apikey.create", {**body, "consumer": "Other"})
        error_of(again, 409, "conflict")

        # Revoking: the issuer (here the founder), nobody else; the members by a vote.
        msg = error_of(
            post_event(client, keys["Alan"], "apikey.revoke", {"key_hash": key_hash}),
            403,
            "forbidden",
        )
        assert "only the key's issuer may revoke it" in msg and "by a vote" in msg
        error_of(
            post_event(client, keys["Ada"], "apikey.revoke", {"key_hash": "0" * 64}),
            404,
            "not_found",
        )
        client.revoke_apikey(keys["Ada"], key_hash)
        assert hub.state.apikeys[key_hash].status == "revoked"
        error_of(
            post_event(client, keys["Ada"], "apikey.revoke", {"key_hash": key_hash}),
            409,
            "conflict",
        )
        verify_hub(hub)


def test_members_issue_keys_and_only_the_issuer_revokes(tmp_path: Path, database_url: str) -> None:
    client, keys = community(tmp_path / "hub", database_url, items=[])
    with client:
        hub = client.embedded_hub
        grace, _ = client.create_apikey(keys["Grace"], "Shop", quota_per_day=5)
        alan, _ = client.create_apikey(keys["Alan"], "Press")
        assert hub.state.apikeys[hash_key(grace)].issued_by == keys["Grace"].key_id
        r = post_event(client, keys["Tim"], "apikey.revoke", {"key_hash": hash_key(grace)})
        error_of(r, 403, "forbidden")
        client.revoke_apikey(keys["Grace"], hash_key(grace))  # its issuer
        # Since part 7 the founder holds no such lever (unless the charter grants it,
        # serving.founder_revokes_keys): the members revoke another's key by a vote.
        r = post_event(client, keys["Ada"], "apikey.revoke", {"key_hash": hash_key(alan)})
        assert "by a vote" in error_of(r, 403, "forbidden")
        assert hub.state.apikeys[hash_key(alan)].status == "active"
        client.revoke_apikey(keys["Alan"], hash_key(alan))  # its issuer
        assert {k.status for k in hub.state.apikeys.values()} == {"revoked"}

        # Revenue is the hub's to record: a member cannot credit the treasury.
        forged = {
            "start": now(),
            "end": now(),
            "price_per_call": PRICE,
            "usage": [{"key_hash": hash_key(alan), "calls": 1, "credits": PRICE}],
            "credits": PRICE,
        }
        msg = error_of(post_event(client, keys["Ada"], "revenue.record", forged), 403, "forbidden")
        assert "only the hub" in msg
        assert client.treasury()["balance"] == 0
        verify_hub(hub)
