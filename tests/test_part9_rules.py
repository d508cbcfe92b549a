"""Part 9: rules that were too loose — event times, lookalike names, minted voters, claims
roots and epochs that pay twice. Each pure rule is pinned here, each on a hub (SQLite and
PostgreSQL), and replay (``ledger verify``) catches a hub that logged what they forbid."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonweal.community import rules
from commonweal.community.charter import validate_charter
from commonweal.community.governance import at
from commonweal.community.state import State
from commonweal.errors import (
    CharterInvalid,
    Conflict,
    Forbidden,
    InvalidInput,
    VerificationFailed,
)
from commonweal.hub import Hub
from commonweal.ledger.canonical import canonical
from commonweal.ledger.event import Leaf, SignedEvent, decode_leaf, encode_leaf, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import MemoryTree
from commonweal.ledger.note import Checkpoint
from commonweal.verify import verify_log

KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(8)]
HUB = SigningKey(b"h" * 32)
T0 = "2030-01-01T00:00:00.000Z"


def leaf(ev: SignedEvent, index: int, log_time: str) -> Leaf:
    return decode_leaf(encode_leaf(ev.data, index, log_time, ev.sig))


def founded(charter: dict[str, Any]) -> State:
    ev = sign_event(
        KEYS[0],
        "community.found",
        {
            "charter": validate_charter({"name": "P", **charter}).to_json(),
            "hub_key": HUB.key_id,
            "origin": "test/p",
            "founder_name": "Ada",
        },
        time=T0,
        hub="test/p",
    )
    return rules.apply(State(), leaf(ev, 0, T0))


def act(state: State, key: SigningKey, kind: str, body: dict[str, Any], t: str) -> State:
    """``key`` signs ``kind`` at ``t`` and the hub logs it at ``t``."""
    return rules.apply(
        state, leaf(sign_event(key, kind, body, time=t, hub="test/p"), state.size, t)
    )


def invite(state: State, key: SigningKey, token: str, t: str) -> State:
    th = hashlib.sha256(token.encode()).hexdigest()
    return act(state, key, "invite.create", {"token_hash": th}, t)


def signed_at(key: SigningKey, kind: str, body: dict[str, Any], t: str) -> SignedEvent:
    """An event signed with any time at all (``sign_event`` refuses impossible ones)."""
    event = {
        "v": 2,
        "hub": "test/p",
        "kind": kind,
        "actor": key.key_id,
        "time": t,
        "nonce": "n" * 22,
        "body": body,
    }
    data = canonical(event)
    return SignedEvent(event, data, key.sign(data))


# -- 1. event times ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["2024-13-45T99:99:99Z", "2030-02-30T00:00:00Z", "2030-01-01T24:00:00Z"]
)
def test_an_event_time_that_is_no_real_instant_is_refused(bad: str) -> None:
    s = founded({})
    ev = signed_at(KEYS[1], "member.join", {"name": "Grace"}, bad)
    with pytest.raises(InvalidInput, match="not a real RFC 3339 UTC instant"):
        SignedEvent.from_wire(ev.to_wire())  # the hub's door
    # and the rules themselves, which replay runs on leaves it does not re-check so
    trusted = decode_leaf(encode_leaf(ev.data, 1, T0, ev.sig), strict=False)
    with pytest.raises(InvalidInput, match="not a real RFC 3339 UTC instant"):
        rules.apply(s, trusted)


@settings(max_examples=60, deadline=None)
@given(offset=st.integers(-10 * 86400, 10 * 86400), skew=st.integers(1, 3600))
def test_an_event_is_accepted_exactly_when_its_time_is_within_the_skew(
    offset: int, skew: int
) -> None:
    s = founded({"events": {"max_clock_skew_seconds": skew}})
    t = at(T0, offset)
    ev = sign_event(KEYS[1], "member.join", {"name": "Grace"}, time=t, hub="test/p")
    if abs(offset) <= skew:
        assert rules.apply(s, leaf(ev, 1, T0)).is_active(KEYS[1].key_id)
    else:
        with pytest.raises(InvalidInput, match=r"events\.max_clock_skew_seconds"):
            rules.apply(s, leaf(ev, 1, T0))


def test_a_version_2_charter_keeps_its_unbounded_times() -> None:
    """Logs made before part 9 verify as written: a version-2 charter has no skew bound."""
    s = founded({"v": 2})
    ev = sign_event(
        KEYS[1], "member.join", {"name": "Grace"}, time="2099-01-01T00:00:00Z", hub="test/p"
    )
    assert rules.apply(s, leaf(ev, 1, T0)).is_active(KEYS[1].key_id)


# -- 3. one member minting voters ----------------------------------------------------------


def test_a_member_creates_at_most_the_charters_invites_per_period() -> None:
    s = founded({"join_policy": "invite", "membership": {"invites_per_member": 2}})
    s = invite(s, KEYS[0], "t1", T0)
    s = invite(s, KEYS[0], "t2", at(T0, 60))
    with pytest.raises(Forbidden, match="allows 2 per member"):
        invite(s, KEYS[0], "t3", at(T0, 120))
    # Thirty days after the first, one slot is free again; the second still counts.
    later = at(T0, 30 * 86400)
    s = invite(s, KEYS[0], "t3", later)
    with pytest.raises(Forbidden, match="invites_per_member"):
        invite(s, KEYS[0], "t4", at(later, 1))


@settings(max_examples=40, deadline=None)
@given(gaps=st.lists(st.integers(0, 20 * 86400), min_size=1, max_size=12))
def test_no_window_of_the_invite_period_holds_more_than_the_limit(gaps: list[int]) -> None:
    limit, period = 3, 30 * 86400
    s = founded(
        {
            "join_policy": "invite",
            "membership": {"invites_per_member": limit, "invite_period_seconds": period},
        }
    )
    t, accepted = T0, []
    for n, gap in enumerate(gaps):
        t = at(t, gap)
        try:
            s = invite(s, KEYS[0], f"tok-{n}", t)
            accepted.append(t)
        except Forbidden:
            pass
    from commonweal.community.governance import seconds_between

    for i, first in enumerate(accepted):
        inside = [x for x in accepted[i:] if seconds_between(first, x) < period]
        assert len(inside) <= limit


def test_a_newcomer_waits_for_the_charters_number_of_distinct_approvals() -> None:
    s = founded({"membership": {"approvals_required": 2}})
    ada, grace, alan, tim = (k.key_id for k in KEYS[:4])
    s = act(s, KEYS[1], "member.join", {"name": "Grace"}, T0)
    assert s.members[grace].status == "pending"
    # With one active member, one approval is all there can be.
    s = act(s, KEYS[0], "member.approve", {"member": grace}, T0)
    assert s.members[grace].status == "active"
    s = act(s, KEYS[2], "member.join", {"name": "Alan"}, T0)
    s = act(s, KEYS[3], "member.join", {"name": "Tim"}, T0)
    s = act(s, KEYS[0], "member.approve", {"member": alan}, T0)
    assert s.members[alan].status == "pending"  # one of two
    with pytest.raises(Conflict, match="already approved"):
        act(s, KEYS[0], "member.approve", {"member": alan}, T0)
    with pytest.raises(Forbidden, match="pending, not active"):  # a newcomer cannot approve
        act(s, KEYS[3], "member.approve", {"member": alan}, T0)
    with pytest.raises(Forbidden, match="pending, not active"):  # nor act as a member
        act(s, KEYS[2], "invite.create", {"token_hash": "a" * 64}, T0)
    s = act(s, KEYS[1], "member.approve", {"member": alan}, T0)
    assert s.members[alan].status == "active" and alan not in s.approvals
    assert s.members[tim].status == "pending" and ada


def test_a_member_younger_than_probation_at_voting_start_votes_with_weight_zero() -> None:
    day = 86400
    s = founded({"governance": {"probation_seconds": 7 * day, "voting_period_seconds": day}})
    s = act(s, KEYS[1], "member.join", {"name": "Grace"}, T0)
    late = at(T0, 7 * day)
    s = act(s, KEYS[2], "member.join", {"name": "Alan"}, at(late, -60))  # joined a minute ago
    body = {"title": "Say so", "actions": [{"type": "signal", "text": "yes"}]}
    s = act(s, KEYS[1], "proposal.create", body, late)
    number = s.size - 1
    assert dict(s.powers[number]) == {KEYS[0].key_id: 1, KEYS[1].key_id: 1, KEYS[2].key_id: 0}
    assert s.proposals[number].total_power == 2
    s = act(s, KEYS[2], "vote.cast", {"proposal": number, "choice": "against"}, late)
    from commonweal.community.governance import proposal_tally

    counted = proposal_tally(s, number)
    assert KEYS[2].key_id in s.ballots[number]  # the vote is logged and shown
    assert counted.counts.get("against", 0) == 0  # and weighs nothing


# -- 4, 5. charters that pay twice ---------------------------------------------------------


def test_a_version_3_charter_cannot_pay_value_twice() -> None:
    with pytest.raises(CharterInvalid, match="reward_once cannot be false"):
        validate_charter({"name": "P", "rewards": {"reward_once": False}})
    assert not validate_charter({"name": "P", "v": 1}).rewards.reward_once  # old logs replay


# -- hubs, on both databases ------------------------------------------------------------------


def forged(hub: Hub, events: list[tuple[SignedEvent, str]]) -> tuple[list[bytes], str]:
    """The hub's log with ``events`` appended as if the hub had logged them (at the given
    log times), and a checkpoint over it signed with the hub's key."""
    leaves = [lf.data for lf in hub.log.entries(0, None)]
    for ev, t in events:
        leaves.append(encode_leaf(ev.data, len(leaves), t, ev.sig))
    note = Checkpoint(hub.origin, len(leaves), MemoryTree(leaves).root()).sign(hub.signer)
    return leaves, note


def refused_on_replay(hub: Hub, events: list[tuple[SignedEvent, str]], words: str) -> None:
    leaves, note = forged(hub, events)
    with pytest.raises(VerificationFailed, match="the rules refuse it") as caught:
        verify_log(leaves, checkpoint_note=note, verifier=hub.verifier, workers=1)
    assert words in str(caught.value), caught.value


def _hub(tmp_path: Path, database_url: str, charter: dict[str, Any]) -> tuple[Hub, SigningKey]:
    return Hub.init(
        tmp_path / "hub",
        charter=validate_charter({"name": "Part 9", **charter}),
        founder_name="Ada",
        database=database_url,
    )


def test_hub_refuses_a_skewed_event_and_replay_catches_one_logged(
    tmp_path: Path, database_url: str
) -> None:
    hub, _ = _hub(tmp_path, database_url, {})
    grace = SigningKey.generate()
    far = sign_event(
        grace, "member.join", {"name": "Grace"}, time="2031-06-01T00:00:00Z", hub=hub.origin
    )
    with pytest.raises(InvalidInput, match=r"events\.max_clock_skew_seconds"):
        hub.append([far])
    assert hub.log.size() == 1
    refused_on_replay(hub, [(far, hub.clock())], "events.max_clock_skew_seconds")
    hub.close()


def test_hub_refuses_a_lookalike_name_and_names_the_member_it_resembles(
    tmp_path: Path, database_url: str
) -> None:
    hub, _ = _hub(tmp_path, database_url, {})
    hub.append(
        [sign_event(SigningKey.generate(), "member.join", {"name": "Grace Hopper"}, hub=hub.origin)]
    )
    lookalikes = [
        "Gгace Hopper",  # Cyrillic г
        "Ｇｒａｃｅ Ｈｏｐｐｅｒ",  # fullwidth
        "GRACE HOPPER",  # case
        "Grace Hopp\u00e9r",  # an accent (combining marks are dropped)
        "Ada",  # the founder's own name, exactly (the log's rule)
    ]
    for name in lookalikes:
        with pytest.raises(Conflict) as caught:
            hub.append(
                [sign_event(SigningKey.generate(), "member.join", {"name": name}, hub=hub.origin)]
            )
        said = str(caught.value)
        assert "'Grace Hopper'" in said or "'Ada'" in said, said
    with pytest.raises(InvalidInput, match="holds control or invisible"):
        hub.append(
            [
                sign_event(
                    SigningKey.generate(), "member.join", {"name": "Gr\u200bace"}, hub=hub.origin
                )
            ]
        )
    with pytest.raises(InvalidInput, match="mixes scripts"):
        hub.append(
            [sign_event(SigningKey.generate(), "member.join", {"name": "Alαn"}, hub=hub.origin)]
        )
    hub.append(
        [sign_event(SigningKey.generate(), "member.join", {"name": "Алан"}, hub=hub.origin)]
    )  # one script
    assert hub.log.size() == 3
    hub.close()


def test_hub_limits_invites_and_replay_catches_one_too_many(
    tmp_path: Path, database_url: str
) -> None:
    hub, ada = _hub(
        tmp_path, database_url, {"join_policy": "invite", "membership": {"invites_per_member": 2}}
    )
    made = []
    for n in range(2):
        th = hashlib.sha256(f"tok-{n}".encode()).hexdigest()
        hub.append([sign_event(ada, "invite.create", {"token_hash": th}, hub=hub.origin)])
    third = sign_event(
        ada, "invite.create", {"token_hash": hashlib.sha256(b"x").hexdigest()}, hub=hub.origin
    )
    with pytest.raises(Forbidden, match=r"membership\.invites_per_member"):
        hub.append([third])
    made.append((third, hub.clock()))
    refused_on_replay(hub, made, "invites_per_member")
    hub.close()


def test_hub_keeps_a_newcomer_pending_until_enough_approvals_and_replay_agrees(
    tmp_path: Path, database_url: str
) -> None:
    hub, ada = _hub(tmp_path, database_url, {"membership": {"approvals_required": 2}})
    grace, alan = SigningKey.generate(), SigningKey.generate()
    hub.append([sign_event(grace, "member.join", {"name": "Grace"}, hub=hub.origin)])
    hub.append([sign_event(ada, "member.approve", {"member": grace.key_id}, hub=hub.origin)])
    hub.append([sign_event(alan, "member.join", {"name": "Alan"}, hub=hub.origin)])
    hub.append([sign_event(ada, "member.approve", {"member": alan.key_id}, hub=hub.origin)])
    assert hub.state.members[alan.key_id].status == "pending"
    early = sign_event(alan, "invite.create", {"token_hash": "a" * 64}, hub=hub.origin)
    with pytest.raises(Forbidden, match="pending, not active"):
        hub.append([early])
    refused_on_replay(hub, [(early, hub.clock())], "pending, not active")
    hub.append([sign_event(grace, "member.approve", {"member": alan.key_id}, hub=hub.origin)])
    assert hub.state.members[alan.key_id].status == "active"
    hub.close()


def test_one_claims_root_per_epoch_and_value_paid_once_on_a_hub(
    tmp_path: Path, database_url: str
) -> None:
    """After claims are exported, an address change does not make a second root for the
    epoch (it applies to later epochs), and a second epoch on the same valuation — or on
    the same version valued again — mints nothing; replay refuses a hub that did either."""
    from commonweal.community.ownership import epoch_body
    from tests.test_ownership import ALAN_ADDRESS, GRACE_ADDRESS, build, refused

    client, keys = build(tmp_path / "hub", database_url, mislabelled=False)
    try:
        hub = client.embedded_hub
        hub.ownership.value()
        hub.ownership.close_epoch()
        refused(hub, hub.ownership.close_epoch, Conflict, "there is no valuation since epoch 1")
        hub.ownership.value(version=1)  # the same version, no new work
        refused(hub, hub.ownership.close_epoch, Conflict, "there is nothing new to reward")

        client.register_address(keys["Grace"], GRACE_ADDRESS)
        first = hub.ownership.export_claims(1)
        assert first["entry"] is not None
        client.register_address(keys["Grace"], ALAN_ADDRESS)  # her address changes
        again = hub.ownership.export_claims(1)
        assert again["entry"] is None and again["document"] == first["document"]

        state = hub.state
        assert state.charter is not None
        changed = {**state.claimed[1]}
        changed[ALAN_ADDRESS] = changed.pop(GRACE_ADDRESS)
        from commonweal.community.claims import distributor

        doc = distributor(changed)
        second = hub.sign(
            "rewards.claims",
            {
                "epoch": 1,
                "format": "merkle-distributor",
                "root": doc["merkleRoot"],
                "token_total": doc["tokenTotal"],
                "claims": len(doc["claims"]),
            },
        )
        refused(hub, lambda: hub.append([second]), Conflict, "one claims root")
        refused_on_replay(hub, [(second, hub.clock())], "one claims root")

        # A hub that paid the whole pool again on the unchanged valuation (as version-1
        # charters may) is refused, and replay catches it.
        rewards = state.charter.rewards.model_copy(update={"reward_once": False})
        twice = epoch_body(
            state._replace(charter=state.charter.model_copy(update={"rewards": rewards}))
        )
        assert twice["shares"] > 0
        paid_twice = hub.sign("rewards.epoch", twice)
        refused(hub, lambda: hub.append([paid_twice]), Conflict, "there is nothing new to reward")
        refused_on_replay(hub, [(paid_twice, hub.clock())], "there is nothing new to reward")
    finally:
        client.close()


def test_the_api_lists_pending_newcomers_and_approval_goes_through_events(
    tmp_path: Path, database_url: str
) -> None:
    from commonweal.client import HubClient

    hub, ada = _hub(tmp_path, database_url, {"membership": {"approvals_required": 2}})
    hub.close()
    grace, alan = SigningKey.generate(), SigningKey.generate()
    with HubClient(str(tmp_path / "hub")) as client:
        client.join(grace, "Grace")
        client.approve(ada, grace.key_id)
        client.join(alan, "Alan")
        client.approve(ada, alan.key_id)
        http = client.embedded_hub  # the API over the same hub, in process
        from fastapi.testclient import TestClient

        from commonweal.api import create_app

        with TestClient(create_app(http)) as api:
            pending = api.get("/api/v1/members/pending").json()["pending"]
            assert [(p["name"], p["approved_by"], p["approvals_needed"]) for p in pending] == [
                ("Alan", [ada.key_id], 2)
            ]
            ok = api.post(
                "/api/v1/events",
                json=sign_event(
                    grace, "member.approve", {"member": alan.key_id}, hub=client.origin
                ).to_wire(),
            )
            assert ok.status_code == 201, ok.text
            assert api.get("/api/v1/members/pending").json()["pending"] == []


def test_the_name_index_admits_thousands_in_linear_time_and_forgets_a_failed_batch(
    tmp_path: Path,
) -> None:
    from commonweal.hub.names import NameIndex

    hub, _ = Hub.init(
        tmp_path / "hub", charter=validate_charter({"name": "Many"}), founder_name="Ada"
    )
    keys = [SigningKey(n.to_bytes(32, "big")) for n in range(1, 2001)]
    hub.append(
        [
            sign_event(k, "member.join", {"name": f"member {n}"}, hub=hub.origin)
            for n, k in enumerate(keys)
        ]
    )
    assert len(hub.state.members) == 2001
    # A batch refused after one join was checked leaves that name free again.
    late, clash = SigningKey.generate(), SigningKey.generate()
    with pytest.raises(Conflict, match="looks like 'member 7'"):
        hub.append(
            [
                sign_event(late, "member.join", {"name": "Late"}, hub=hub.origin),
                sign_event(
                    clash, "member.join", {"name": "\uff4dember 7"}, hub=hub.origin
                ),  # fullwidth m
            ]
        )
    hub.append([sign_event(late, "member.join", {"name": "Late"}, hub=hub.origin)])
    index = NameIndex()
    with pytest.raises(Conflict, match="looks like 'Late'"):
        index.check(hub.state, SigningKey.generate().key_id, "ＬＡＴＥ")
    hub.close()


@settings(max_examples=300, deadline=None)
@given(
    t=st.from_regex(
        r"\A[0-9]{4}-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\.[0-9]{1,3})?Z\Z"
    )
)
def test_the_api_spec_admits_exactly_the_times_the_rules_do(t: str) -> None:
    """schemathesis sends what the spec's pattern admits: it must be a time the hub takes."""
    import re

    from commonweal.api.spec import TIME
    from commonweal.ledger.event import instant

    assert bool(re.match(TIME, t)) == (instant(t) is not None), t
