"""The pure rules: replaying the log gives the same state, whatever was tried."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonweal.community import rules
from commonweal.community.charter import Charter
from commonweal.community.state import State
from commonweal.errors import CommonwealError, Conflict, Forbidden, InvalidInput, Replay
from commonweal.ledger.event import Leaf, decode_leaf, encode_leaf, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.store.projection import state_rows

KEYS = [SigningKey(bytes([i]) * 32) for i in range(6)]
HUB = SigningKey(b"h" * 32)
T = "2026-01-01T00:00:00.000Z"


def leaf_for(ev: object, index: int, log_time: str | None = None) -> Leaf:
    # Logged at the time the event was signed (within any charter's clock skew), unless
    # the test says when.
    signed = getattr(ev, "event", None)
    when = log_time or (signed["time"] if signed is not None else T)
    data = encode_leaf(ev.data, index, when, ev.sig)  # type: ignore[attr-defined]
    return decode_leaf(data)


def founding(policy: str) -> Leaf:
    ev = sign_event(
        KEYS[0],
        "community.found",
        {
            "charter": Charter(name="P", join_policy=policy).to_json(),  # type: ignore[arg-type]
            "hub_key": HUB.key_id,
            "origin": "test/p",
            "founder_name": "k0",
        },
        hub="test/p",
    )
    return leaf_for(ev, 0)


action = st.one_of(
    st.tuples(
        st.just("join"),
        st.integers(0, 5),
        st.sampled_from(["a", "b", "A", "k0", "c"]),
        st.sampled_from([None, "t1", "t2"]),
    ),
    st.tuples(st.just("invite"), st.integers(0, 5), st.sampled_from(["t1", "t2"]), st.none()),
    st.tuples(st.just("approve"), st.integers(0, 5), st.integers(0, 5), st.none()),
    st.tuples(st.just("replay"), st.integers(0, 50), st.none(), st.none()),
)


def event_for(act: tuple[object, ...], accepted: list[Leaf]) -> object:
    kind, who, arg, extra = act
    key = KEYS[int(who) % len(KEYS)]  # type: ignore[call-overload]
    if kind == "join":
        body: dict[str, object] = {"name": arg}
        if extra is not None:
            body["invite"] = extra
        return sign_event(key, "member.join", body, hub="test/p")
    if kind == "invite":
        th = hashlib.sha256(str(arg).encode()).hexdigest()
        return sign_event(key, "invite.create", {"token_hash": th}, hub="test/p")
    if kind == "approve":
        return sign_event(key, "member.approve", {"member": KEYS[int(arg)].key_id}, hub="test/p")  # type: ignore[call-overload]
    # A replay: re-send an event the log already holds.
    old = accepted[int(who) % len(accepted)]  # type: ignore[call-overload]

    class Old:
        data = old.signed_bytes()
        sig = old.sig

    return Old()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["open", "invite", "approval"]), st.lists(action, max_size=25))
def test_replaying_the_accepted_events_gives_the_same_state(policy: str, acts: list) -> None:  # type: ignore[type-arg]
    first = founding(policy)
    state = rules.apply(State(), first)
    accepted = [first]
    for act in acts:
        leaf = leaf_for(event_for(act, accepted), state.size)
        try:
            new = rules.apply(state, leaf)
        except CommonwealError as exc:
            if act[0] == "replay":
                assert isinstance(exc, Replay)
            continue
        assert act[0] != "replay", "a replayed event was accepted"
        state = new
        accepted.append(leaf)
    replayed = rules.replay(accepted)
    assert state_rows(replayed) == state_rows(state)
    assert replayed.size == state.size == len(accepted)
    # Invariants: names are unique (case-insensitively); invite policy admits only invitees.
    names = [m.name.casefold() for m in state.members.values()]
    assert len(names) == len(set(names))
    if policy == "invite":
        used = {i.used_by for i in state.invites.values() if i.used_by}
        assert {k for k in state.members if k != state.founder} == used
    if policy == "open":
        assert all(m.status == "active" for m in state.members.values())


def test_the_first_entry_must_found_the_community() -> None:
    ev = sign_event(KEYS[1], "member.join", {"name": "x"}, hub="test/p")
    with pytest.raises(Conflict, match="first entry"):
        rules.apply(State(), leaf_for(ev, 0))


def test_the_community_is_founded_once() -> None:
    s = rules.apply(State(), founding("open"))
    again = sign_event(
        KEYS[1],
        "community.found",
        {"charter": {"name": "Q"}, "hub_key": HUB.key_id, "origin": "x/y", "founder_name": "z"},
        hub="test/p",
    )
    with pytest.raises(Conflict, match="already exists"):
        rules.apply(s, leaf_for(again, 1))


def test_an_entry_out_of_place_is_refused() -> None:
    s = rules.apply(State(), founding("open"))
    ev = sign_event(KEYS[1], "member.join", {"name": "x"}, hub="test/p")
    with pytest.raises(Conflict, match="cannot follow"):
        rules.apply(s, leaf_for(ev, 5))


@pytest.mark.parametrize(
    "charter",
    [
        {"name": ""},
        {"name": "x", "join_policy": "lottery"},
        {"name": "x", "voting": "yes"},
        {"join_policy": "open"},
    ],
)
def test_a_bad_charter_is_refused_naming_the_field(charter: dict[str, object]) -> None:
    ev = sign_event(
        KEYS[0],
        "community.found",
        {"charter": charter, "hub_key": HUB.key_id, "origin": "x/y", "founder_name": "z"},
        hub="x/y",
    )
    with pytest.raises(InvalidInput, match=r"community\.found\.charter\.\w+"):
        rules.apply(State(), leaf_for(ev, 0))


@pytest.mark.parametrize("name", ["", " padded", "x" * 65, "tab\there", "e\u0301"])
def test_bad_member_names_are_refused(name: str) -> None:
    s = rules.apply(State(), founding("open"))
    with pytest.raises(InvalidInput, match="name"):
        rules.apply(
            s, leaf_for(sign_event(KEYS[1], "member.join", {"name": name}, hub="test/p"), 1)
        )


def test_an_event_signed_for_another_log_is_refused_and_v1_still_replays() -> None:
    """The rules hold a version 2 event to the log's origin (entry 0 declares it, and
    must itself be signed for it), at admission and in every replay alike; version 1
    events, which name no hub, replay as they always did (old logs hold them)."""
    s = rules.apply(State(), founding("open"))
    assert s.origin == "test/p"
    here = sign_event(KEYS[1], "member.join", {"name": "a"}, hub="test/p")
    assert rules.apply(s, leaf_for(here, 1)).members[KEYS[1].key_id].name == "a"
    there = sign_event(KEYS[1], "member.join", {"name": "a"}, hub="test/other")
    with pytest.raises(Forbidden, match="signed for another hub: 'test/other', not this log's"):
        rules.apply(s, leaf_for(there, 1))
    old = sign_event(KEYS[1], "member.join", {"name": "a"}, hub=None)
    assert rules.apply(s, leaf_for(old, 1)).members[KEYS[1].key_id].name == "a"
    body = {
        "charter": Charter(name="P").to_json(),
        "hub_key": HUB.key_id,
        "origin": "test/p",
        "founder_name": "k0",
    }
    lying = sign_event(KEYS[0], "community.found", body, hub="test/q")
    with pytest.raises(Forbidden, match="another hub"):
        rules.apply(State(), leaf_for(lying, 0))
    legacy = sign_event(KEYS[0], "community.found", body, hub=None)
    assert rules.apply(State(), leaf_for(legacy, 0)).origin == "test/p"
