"""The review's attacks on the log, kept as tests over HTTP against real ``commonweal
serve`` processes, on SQLite and PostgreSQL: forged, altered and replayed events (each
refused with a 4xx and nothing logged), and two servers appending to one hub at once (one
log, no fork). The kill -9 loop is in ``test_crash.py``."""

from __future__ import annotations

import base64
import copy
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from commonweal.client import HubClient
from commonweal.hub import Hub
from commonweal.ledger.canonical import canonical
from commonweal.ledger.event import SignedEvent, sign_event
from commonweal.ledger.keys import SigningKey
from tests.kit import Databases
from tests.kit.attacks import (
    Writers,
    attack_hub,
    free_port,
    log_entries,
    lost_acks,
    serve,
    verify_cli,
)

pytestmark = pytest.mark.slow

# Ed25519's group order: S + L verifies under a lax check, so a hub that accepted it
# would take a second valid-looking signature (a second leaf) for one signed event.
_L = 2**252 + 27742317777372353535851937790883648493
_FAST_VOTES = {"voting_delay_seconds": 0, "voting_period_seconds": 1, "timelock_seconds": 0}


@dataclass
class Target:
    """A hub served twice (``a`` and ``b``: two processes on one database) with members
    Ada (founder), Grace, and Mallory, whom a vote removed; and Sam's join, signed for
    another hub (another origin) where Grace is a member too."""

    hub_dir: Path
    a: str
    b: str
    ada: SigningKey
    grace: SigningKey
    mallory: SigningKey
    proposal: int  # an open proposal every member may vote on
    item: str  # an item in review, Ada's
    elsewhere: dict[str, SignedEvent]  # events signed for the other hub
    origin: str  # the origin of the attacked hub's log, which its events name

    def size(self) -> int:
        return int(httpx.get(f"{self.a}/api/v1/ledger/entries?start=0&end=0").json()["size"])


def _act(client: HubClient, key: SigningKey, kind: str, body: dict[str, Any]) -> int:
    return int(client.submit([client.sign(key, kind, body)])["entries"][0]["index"])


def _log_time(seconds_ago: float) -> str:
    t = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _remove(client: HubClient, ada: SigningKey, grace: SigningKey, member: str) -> None:
    """Remove ``member`` by a vote that passes, executed once its one-second voting period
    is over. The hub's clock is set a few seconds back for the proposal and votes and moved
    on for the execution, so no vote can miss the period on a slow machine and no later
    (real-time) entry is older than these."""
    now = [_log_time(5)]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(Hub, "clock", staticmethod(lambda: now[0]))
        action = {"type": "member.remove", "member": member}
        n = _act(client, ada, "proposal.create", {"title": "Remove Mallory", "actions": [action]})
        for key in (ada, grace):
            _act(client, key, "vote.cast", {"proposal": n, "choice": "for"})
        now[0] = _log_time(2)
        client.embedded_hub.governance.execute(n)


@pytest.fixture(scope="module")
def target(
    module_databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("attacked")
    ada = attack_hub(root / "hub", module_databases.new(), governance=_FAST_VOTES)
    grace, mallory, sam = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    with HubClient(str(root / "hub")) as c:
        c.join(grace, "Grace")
        c.join(mallory, "Mallory")
        _remove(c, ada, grace, mallory.key_id)
        signal = [{"type": "signal", "text": "Plant more trees by the canal"}]
        proposal = _act(c, ada, "proposal.create", {"title": "Trees", "actions": signal})
        receipt = c.contribute(ada, [{"text": "The mill by the canal flooded", "label": "river"}])
        item = receipt["items"][0]["id"]
    # Another community, with its own origin, where Grace is a member and Sam joined.
    attack_hub(root / "other", module_databases.new())
    with HubClient(str(root / "hub")) as c:
        origin = c.origin
    with HubClient(str(root / "other")) as c:
        assert c.origin != origin
        elsewhere = {
            "join": c.sign(sam, "member.join", {"name": "Sam"}),
            "grace join": c.sign(grace, "member.join", {"name": "Grace"}),
        }
        c.submit([elsewhere["join"]])
        c.submit([elsewhere["grace join"]])
        elsewhere["proposal"] = c.sign(
            grace, "proposal.create", {"title": "Trees", "actions": signal}
        )
        c.submit([elsewhere["proposal"]])
    pa, pb = free_port(), free_port()
    servers = [serve(root / "hub", pa), serve(root / "hub", pb)]
    try:
        yield Target(
            root / "hub",
            f"http://127.0.0.1:{pa}",
            f"http://127.0.0.1:{pb}",
            ada,
            grace,
            mallory,
            proposal,
            item,
            elsewhere,
            origin,
        )
    finally:
        for s in servers:
            s.kill()
            s.wait(10)


def _wire(ev: SignedEvent) -> dict[str, Any]:
    return copy.deepcopy(ev.to_wire())


def _resigned(doc: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """``doc``'s event as it stands, signed by ``key`` (whoever its actor says)."""
    return {
        "event": doc["event"],
        "sig": base64.b64encode(key.sign(canonical(doc["event"]))).decode(),
    }


def _altered(doc: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    change(out["event"])
    return out


def _vote(t: Target, key: SigningKey, choice: str = "for") -> SignedEvent:
    return sign_event(key, "vote.cast", {"proposal": t.proposal, "choice": choice}, hub=t.origin)


def _invite(t: Target, key: SigningKey) -> SignedEvent:
    """An act that stays allowed whenever it is sent: registering a fresh invite."""
    return sign_event(key, "invite.create", {"token_hash": secrets.token_hex(32)}, hub=t.origin)


def _malleated(ev: SignedEvent) -> dict[str, Any]:
    """The same event with its signature's S replaced by S + L."""
    s = int.from_bytes(ev.sig[32:], "little") + _L
    sig = ev.sig[:32] + s.to_bytes(32, "little")
    return {"event": ev.event, "sig": base64.b64encode(sig).decode()}


# Each case: (name, route, the document to send given the target). The route is "events"
# or "reviews"/"contributions" where the event kind has its own.
Forgery = Callable[[Target], dict[str, Any]]
FORGERIES: dict[str, Forgery] = {
    # A key that is not the actor's: Mallory signs an event that says Grace acts.
    "signed by another key": lambda t: _resigned(_wire(_vote(t, t.grace)), t.mallory),
    # Grace's own event, re-signed by Mallory claiming Grace's key as the actor.
    "re-signed claiming another actor": lambda t: _resigned(
        _altered(
            _wire(_vote(t, t.grace)), lambda e: e.update(body={**e["body"], "choice": "against"})
        ),
        t.mallory,
    ),
    # An event that claims to be the hub's own (a review decision), signed by a member.
    "member signs as the hub": lambda t: _resigned(
        {
            "event": {
                **_vote(t, t.grace).event,
                "kind": "review.decide",
                "actor": httpx.get(f"{t.a}/api/v1/community").json()["hub_key"],
                "body": {"decisions": []},
            },
            "sig": "",
        },
        t.grace,
    ),
    # A hub-only kind signed by a member as themselves.
    "member logs a hub-only kind": lambda t: _wire(
        sign_event(t.grace, "contribution.screen", {"batch": 1, "results": []}, hub=t.origin)
    ),
    "body altered after signing": lambda t: _altered(
        _wire(_vote(t, t.grace)), lambda e: e.update(body={**e["body"], "choice": "against"})
    ),
    "kind altered after signing": lambda t: _altered(
        _wire(sign_event(t.grace, "proposal.cancel", {"proposal": t.proposal}, hub=t.origin)),
        lambda e: e.update(kind="vote.cast"),
    ),
    "time altered after signing": lambda t: _altered(
        _wire(_vote(t, t.grace)), lambda e: e.update(time="2020-01-01T00:00:00Z")
    ),
    "hub altered after signing": lambda t: _altered(
        _wire(_vote(t, t.grace)), lambda e: e.update(hub=t.origin + "-elsewhere")
    ),
    "nonce altered after signing": lambda t: _altered(
        _wire(_vote(t, t.grace)), lambda e: e.update(nonce="A" * 22)
    ),
    "actor altered after signing": lambda t: _altered(
        _wire(_vote(t, t.grace)), lambda e: e.update(actor=t.ada.key_id)
    ),
    "malleated signature (S + L)": lambda t: _malleated(_vote(t, t.grace)),
    "removed member proposes": lambda t: _wire(
        sign_event(
            t.mallory,
            "proposal.create",
            {"title": "Let me back", "actions": [{"type": "signal", "text": "Let me back"}]},
            hub=t.origin,
        )
    ),
    "removed member reviews": lambda t: _wire(
        sign_event(t.mallory, "review.submit", {"item": t.item, "verdict": "accept"}, hub=t.origin)
    ),
    "removed member invites": lambda t: _wire(
        sign_event(t.mallory, "invite.create", {"token_hash": "ab" * 32}, hub=t.origin)
    ),
    "removed member joins again": lambda t: _wire(
        sign_event(t.mallory, "member.join", {"name": "Mallory"}, hub=t.origin)
    ),
}

# Why each is refused: a signature that does not verify under the actor's key, a kind
# only the hub records, or a member the rules no longer count as active.
REFUSED_AS = {
    "member logs a hub-only kind": "forbidden",
    **{name: "forbidden" for name in FORGERIES if name.startswith("removed member")},
    "removed member joins again": "conflict",  # a key joins once: no way back in by rejoining
}


CROSS_ORIGIN: dict[str, Forgery] = {
    # Sam joined the other community; his join, replayed here, would make him a member of
    # a community he never asked to join.
    "a join signed for another hub": lambda t: _wire(t.elsewhere["join"]),
    # Grace's proposal on the other hub, replayed here in her name.
    "a proposal signed for another hub": lambda t: _wire(t.elsewhere["proposal"]),
}


def _refused(
    t: Target, doc: dict[str, Any], base: str, *, logged: int = 0
) -> tuple[int, dict[str, Any]]:
    """Send ``doc``; the log must not grow, and must hold its signature ``logged`` times
    (a replay's original once; a forgery never). Returns the status and error body."""
    before = t.size()
    r = httpx.post(f"{base}/api/v1/events", json=doc)
    assert t.size() == before, f"the hub logged it: {r.status_code} {r.text[:300]}"
    sigs = [e["sig"] for e in log_entries(t.a).values()]
    for sent in doc.get("events", [doc]):
        assert sigs.count(sent["sig"]) <= logged
    return r.status_code, r.json()


@pytest.mark.parametrize("case", FORGERIES)
def test_forged_events_are_refused_and_not_logged(target: Target, case: str) -> None:
    doc = FORGERIES[case](target)
    for base in (target.a, target.b):
        status, body = _refused(target, doc, base)
        assert 400 <= status < 500, (case, status, body)
        assert set(body) == {"error"} and body["error"]["message"], body
        assert body["error"]["code"] == REFUSED_AS.get(case, "bad_signature"), body
        if REFUSED_AS.get(case) == "forbidden" and case.startswith("removed member"):
            assert "is removed, not active" in body["error"]["message"], body


@pytest.mark.parametrize("case", CROSS_ORIGIN)
def test_events_signed_for_another_hub_are_refused(target: Target, case: str) -> None:
    """An event lifted from another community's public log names that community's hub:
    refused here on every server, and not logged."""
    doc = CROSS_ORIGIN[case](target)
    for base in (target.a, target.b):
        status, body = _refused(target, doc, base)
        assert status == 403 and body["error"]["code"] == "forbidden", (case, body)
        assert "signed for another hub" in body["error"]["message"], body
        assert target.origin in body["error"]["message"], body


def test_an_event_that_names_no_hub_is_refused_at_admission(target: Target) -> None:
    """A version 1 event (from a client that predates the hub field) names no hub, so it
    would be valid on every hub: a hub admits it from nobody, alone or in a batch."""
    old = sign_event(target.grace, "invite.create", {"token_hash": secrets.token_hex(32)}, hub=None)
    assert "hub" not in old.event and old.event["v"] == 1
    for doc in (old.to_wire(), {"events": [_invite(target, target.ada).to_wire(), old.to_wire()]}):
        for base in (target.a, target.b):
            status, body = _refused(target, doc, base)
            assert status == 400 and body["error"]["code"] == "invalid_input", body
            assert "older form" in body["error"]["message"], body
            assert "update it" in body["error"]["message"], body


def test_a_replayed_event_is_refused_on_every_server_and_route(target: Target) -> None:
    """A valid event, acknowledged once, sent again (alone, inside a batch, through the
    other server) is a 409 and logs nothing; the batch it rides in is refused whole."""
    ev = _invite(target, target.grace)
    first = httpx.post(f"{target.a}/api/v1/events", json=ev.to_wire())
    assert first.status_code == 201, first.text
    fresh = _invite(target, target.ada)
    for base in (target.a, target.b):
        status, body = _refused(target, ev.to_wire(), base, logged=1)
        assert status == 409 and body["error"]["code"] == "replay", body
        batch = {"events": [fresh.to_wire(), ev.to_wire()]}
        status, body = _refused(target, batch, base, logged=1)
        assert status == 409, body
    # The fresh event the refused batch carried was not logged either: it still goes in.
    r = httpx.post(f"{target.b}/api/v1/events", json=fresh.to_wire())
    assert r.status_code == 201, r.text
    ok, _, message = verify_cli(target.hub_dir, target.hub_dir.parent / "verifier")
    assert ok, message


def test_a_removed_member_cannot_contribute(target: Target) -> None:
    with HubClient(target.b) as c, pytest.raises(Exception) as caught:
        c.contribute(target.mallory, [{"text": "let me back in", "label": "river"}])
    assert getattr(caught.value, "status", 0) == 403, caught.value


# -- two servers on one hub ---------------------------------------------------------------


def test_two_servers_on_one_hub_keep_one_log(tmp_path: Path, database_url: str) -> None:
    """Members spread over two ``commonweal serve`` processes on one database append at
    once: every acknowledged event is where its server said, no index is acknowledged
    twice (no fork), both servers then show the same signed head, and verify passes."""
    attack_hub(tmp_path / "hub", database_url)
    ports = [free_port(), free_port()]
    servers = [serve(tmp_path / "hub", p) for p in ports]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        writers = Writers(bases, 6, "two").start()
        deadline = time.monotonic() + 60
        while writers.acked() < 200 and time.monotonic() < deadline and writers.alive():
            time.sleep(0.05)
        acks, errors, _ = writers.stop()
        assert not errors, errors[:5]
        assert len(acks) >= 200, f"only {len(acks)} appends acknowledged"
        assert {a.via for a in acks} == set(bases)  # both servers appended
        indexes = [a.index for a in acks]
        assert len(indexes) == len(set(indexes)), "one index acknowledged twice: a fork"
        entries = log_entries(bases[0])
        assert not lost_acks(acks, entries)
        heads = [httpx.get(f"{b}/api/v1/ledger/checkpoint").text.split("\n")[:3] for b in bases]
        assert heads[0] == heads[1] and int(heads[0][1]) == len(entries)
        assert log_entries(bases[1]) == entries
    finally:
        for s in servers:
            s.kill()
            s.wait(10)
    ok, size, message = verify_cli(tmp_path / "hub", tmp_path / "verifier")
    assert ok and size == len(entries), message
