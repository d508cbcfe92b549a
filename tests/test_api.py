"""The HTTP API, through the SDK's in-process transport (the real app, no socket)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from commonweal.api import MAX_BODY_BYTES
from commonweal.client import HubClient
from commonweal.errors import BadSignature, NotFound, Replay, TooLarge, UnknownMember
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from commonweal.ledger.note import parse_checkpoint
from commonweal.wire import AUTH_HEADER, auth_header
from tests.kit import make_hub


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[tuple[HubClient, Hub, SigningKey]]:
    hub, founder = make_hub(tmp_path / "hub", database_url)
    hub.close()
    with HubClient(str(tmp_path / "hub")) as c:
        yield c, c.embedded_hub, founder


def raw(c: HubClient) -> httpx.Client:
    return c._http


def test_join_and_list_members_over_http(client: tuple[HubClient, Hub, SigningKey]) -> None:
    c, _, _ = client
    k = SigningKey.generate()
    res = c.join(k, "Grace")
    assert res["size"] == 2 and res["entries"][0]["index"] == 1
    assert {m["name"] for m in c.members()} == {"Ada", "Grace"}
    assert c.community()["charter"]["name"] == "Test Co-op"


def test_batch_appends_in_order_and_returns_a_signed_checkpoint(
    client: tuple[HubClient, Hub, SigningKey],
) -> None:
    c, hub, _ = client
    events = [
        sign_event(SigningKey.generate(), "member.join", {"name": f"m{i}"}, hub=client[1].origin)
        for i in range(25)
    ]
    res = c.submit(events)
    assert [e["index"] for e in res["entries"]] == list(range(1, 26))
    cp = parse_checkpoint(res["checkpoint"], c.verifier())
    assert cp.size == 26 and cp.origin == hub.origin


def test_every_error_has_one_json_shape(client: tuple[HubClient, Hub, SigningKey]) -> None:
    c, _, _ = client
    http = raw(c)
    ev = sign_event(SigningKey.generate(), "member.join", {"name": "Grace"}, hub=client[1].origin)
    assert http.post("/api/v1/events", json=ev.to_wire()).status_code == 201
    bad_sig = ev.to_wire()
    bad_sig["sig"] = base64.b64encode(bytes(64)).decode()
    stranger = sign_event(
        SigningKey.generate(), "invite.create", {"token_hash": "2" * 64}, hub=client[1].origin
    )
    cases = [
        (http.post("/api/v1/events", content=b"{not json"), 400, "invalid_input", "malformed"),
        (http.post("/api/v1/events", content=b'{"a":1,"a":2}'), 400, "invalid_input", "duplicate"),
        (http.post("/api/v1/events", content=b'{"x":1.5}'), 400, "invalid_input", "floating"),
        (http.post("/api/v1/events", content=b""), 400, "invalid_input", "empty"),
        (http.post("/api/v1/events", json=bad_sig), 401, "bad_signature", "does not verify"),
        (http.post("/api/v1/events", json=ev.to_wire()), 409, "replay", "nonce"),
        (
            http.post("/api/v1/events", json=stranger.to_wire()),
            403,
            "unknown_member",
            "not a member",
        ),
        (
            http.post("/api/v1/events", content=b"x" * (MAX_BODY_BYTES + 1)),
            413,
            "too_large",
            "limit",
        ),
        (http.post("/api/v1/events", json={"events": []}), 400, "invalid_input", "non-empty"),
        (
            http.get("/api/v1/ledger/proof/inclusion", params={"index": 99}),
            404,
            "not_found",
            "not in a tree",
        ),
        (
            http.get("/api/v1/ledger/proof/inclusion", params={"index": "x"}),
            400,
            "invalid_input",
            "index",
        ),
        (
            http.get("/api/v1/ledger/entries", params={"start": 99}),
            404,
            "not_found",
            "past the log",
        ),
        (
            http.get("/api/v1/ledger/entries", params={"start": -1}),
            400,
            "invalid_input",
            "start",
        ),
        (http.get("/api/v1/nope"), 404, "not_found", "no such endpoint"),
    ]
    for resp, status, code, words in cases:
        assert resp.status_code == status, resp.text
        body = resp.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "detail"}
        assert body["error"]["code"] == code
        assert words in body["error"]["message"], body["error"]["message"]
    assert c.entries()["size"] == 2  # none of the bad requests appended anything


def test_sdk_raises_the_same_error_classes(client: tuple[HubClient, Hub, SigningKey]) -> None:
    c, _, _ = client
    ev = sign_event(SigningKey.generate(), "member.join", {"name": "Grace"}, hub=client[1].origin)
    c.submit([ev])
    with pytest.raises(Replay):
        c.submit([ev])
    tampered = sign_event(
        SigningKey.generate(), "member.join", {"name": "Alan"}, hub=client[1].origin
    )
    object.__setattr__(tampered, "sig", bytes(64))
    with pytest.raises(BadSignature):
        c.submit([tampered])
    with pytest.raises(UnknownMember):
        c.submit(
            [
                sign_event(
                    SigningKey.generate(),
                    "invite.create",
                    {"token_hash": "3" * 64},
                    hub=client[1].origin,
                )
            ]
        )
    with pytest.raises(NotFound):
        c.inclusion(50)
    big = [
        sign_event(SigningKey.generate(), "member.join", {"name": f"m{i}"}, hub=client[1].origin)
        for i in range(1001)
    ]
    with pytest.raises(TooLarge, match="at most 1000"):
        c.submit(big)


def test_entries_and_proofs_over_http_verify(client: tuple[HubClient, Hub, SigningKey]) -> None:
    c, _, _ = client
    first = parse_checkpoint(c.checkpoint(), c.verifier())
    c.submit(
        [
            sign_event(
                SigningKey.generate(), "member.join", {"name": f"m{i}"}, hub=client[1].origin
            )
            for i in range(40)
        ]
    )
    cp = parse_checkpoint(c.checkpoint(), c.verifier())
    entries = list(c.iter_entries())
    assert [e["index"] for e in entries] == list(range(cp.size))
    for e in entries[::7]:
        p = c.inclusion(e["index"])
        lh = leaf_hash(base64.b64decode(e["leaf"]))
        assert p["leaf_hash"] == lh.hex()
        verify_inclusion(lh, e["index"], cp.size, [bytes.fromhex(h) for h in p["proof"]], cp.root)
    con = c.consistency(first.size)
    verify_consistency(
        first.size, cp.size, first.root, cp.root, [bytes.fromhex(h) for h in con["proof"]]
    )


def test_openapi_describes_the_ledger_routes(client: tuple[HubClient, Hub, SigningKey]) -> None:
    c, _, _ = client
    spec = raw(c).get("/openapi.json").json()
    for path in (
        "/api/v1/events",
        "/api/v1/ledger/checkpoint",
        "/api/v1/ledger/entries",
        "/api/v1/ledger/proof/inclusion",
        "/api/v1/ledger/proof/consistency",
        "/api/v1/members",
    ):
        assert path in spec["paths"], path
    assert json.dumps(spec)  # serializable


def test_checkpoint_is_a_plain_text_signed_note(client: tuple[HubClient, Hub, SigningKey]) -> None:
    c, hub, _ = client
    resp = raw(c).get("/api/v1/ledger/checkpoint")
    assert resp.headers["content-type"].startswith("text/plain")
    lines = resp.text.split("\n")
    assert lines[0] == hub.origin and lines[1] == "1" and lines[3] == ""
    assert lines[4].startswith("\u2014 " + hub.origin + " ")


# -- paging -------------------------------------------------------------------------------


def test_the_client_pages_through_a_log_of_more_than_two_thousand_entries(
    client: tuple[HubClient, Hub, SigningKey],
) -> None:
    c, hub, _ = client
    for start in (0, 1000, 2000):  # the API takes at most 1,000 events a batch
        c.submit(
            [
                sign_event(
                    SigningKey.generate(), "member.join", {"name": f"m{i}"}, hub=client[1].origin
                )
                for i in range(start, start + 1000 if start < 2000 else 2050)
            ]
        )
    size = hub.log.size()
    assert size == 2051
    entries = list(c.iter_entries())  # three pages: 1,000, 1,000 and 51
    assert [e["index"] for e in entries] == list(range(size))
    stored = hub.log.leaf_bytes(0, size)
    assert [base64.b64decode(e["leaf"]) for e in entries] == stored
    # A window that starts and ends inside pages.
    middle = list(c.iter_entries(999, 2001))
    assert [e["index"] for e in middle] == list(range(999, 2001))


# -- request signatures (X-Commonweal-Auth) -----------------------------------------------


def signed(key: SigningKey, target: str, *, at: float | None = None, method: str = "GET") -> str:
    """The ``X-Commonweal-Auth`` value ``key`` makes for ``method target`` at time ``at``."""
    return auth_header(key, method, target, now=time.time() if at is None else at)


def test_a_members_signed_request_reads_and_an_unsigned_one_is_refused(
    client: tuple[HubClient, Hub, SigningKey],
) -> None:
    c, _, _ = client
    grace = SigningKey.generate()
    c.join(grace, "Grace")
    path = f"/api/v1/members/{grace.key_id}/export"
    ok = raw(c).get(path, headers={AUTH_HEADER: signed(grace, path)})
    assert ok.status_code == 200, ok.text
    # Four minutes either side of the server's time is inside the five-minute window.
    for skew in (-240, 240):
        at = time.time() + skew
        assert raw(c).get(path, headers={AUTH_HEADER: signed(grace, path, at=at)}).is_success
    msg = error_of(raw(c).get(path), 401, "unauthorized")
    assert AUTH_HEADER in msg and "--key" in msg


def test_stale_early_forged_and_misdirected_request_signatures_are_refused(
    client: tuple[HubClient, Hub, SigningKey],
) -> None:
    c, _, _ = client
    grace, mallory = SigningKey.generate(), SigningKey.generate()
    c.join(grace, "Grace")
    path = f"/api/v1/members/{grace.key_id}/export"
    now = time.time()
    by_mallory = signed(mallory, path)
    forged = by_mallory.replace(mallory.key_id, grace.key_id)  # Grace's id, Mallory's signature
    _, _, stamp, nonce, sig = signed(grace, path).split(".")
    form = "must be v2.KEYID.UNIXMILLISECONDS.NONCE.BASE64SIGNATURE"
    cases = [
        (path, signed(grace, path, at=now - 301), "more than five minutes old or early"),
        (path, signed(grace, path, at=now - 86400), "more than five minutes old or early"),
        (path, signed(grace, path, at=now + 301), "more than five minutes old or early"),
        (path, forged, "does not verify for that key"),
        # Signed for another path, another query, another method: not for this request.
        (path, signed(grace, f"/api/v1/members/{mallory.key_id}/export"), "does not verify"),
        (f"{path}?limit=5", signed(grace, path), "does not verify"),
        (path, signed(grace, f"{path}?limit=5"), "does not verify"),
        (path, signed(grace, path, method="POST"), "does not verify"),
        # Malformed: not five parts, a stamp or nonce out of shape, a signature not base64.
        (path, "not-a-signature", form),
        (path, f"v2.{grace.key_id}.yesterday.{nonce}.{sig}", form),
        (path, f"v2.{grace.key_id}.{stamp}.short.{sig}", form),
        (path, f"v2.{grace.key_id}.{stamp}.{nonce}.***", form),
        (path, f"v2.{grace.key_id}.{stamp}.{nonce}", form),
        (path, f"v2.not-a-key.{stamp}.{nonce}.{sig}", "does not verify"),
        # The form before signatures covered the body and a nonce: refused, saying why.
        (path, f"{grace.key_id}.{int(now)}.{sig}", "signs requests in an older form; update it"),
    ]
    for target, header, words in cases:
        msg = error_of(raw(c).get(target, headers={AUTH_HEADER: header}), 401, "unauthorized")
        assert words in msg, (header, msg)


def test_a_valid_signature_by_someone_who_is_not_a_member_is_forbidden(
    client: tuple[HubClient, Hub, SigningKey],
) -> None:
    c, _, _ = client
    stranger = SigningKey.generate()
    path = "/api/v1/reviews/next"
    msg = error_of(
        raw(c).get(path, headers={AUTH_HEADER: signed(stranger, path)}), 403, "forbidden"
    )
    assert "only active members" in msg


def error_of(resp: httpx.Response, status: int, code: str) -> str:
    """Check an error answer's status and code; return its message."""
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code, err
    return str(err["message"])
