"""The rules for federated members: enrolling nodes, the hub's signed rounds, a federated
model version, its valuation and the compute pool — and every refusal a verifier relies on.

Most cases run the pure rules on states built from hand-made leaves (what ``ledger
verify`` replays); the last ones go through a real hub on SQLite and PostgreSQL, so the
``nodes`` projection, rebuild and the comparison a verifier runs cover them too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from commonweal.community import rules
from commonweal.community.actions import charter_hash
from commonweal.community.charter import Charter, validate_charter, with_federated_app
from commonweal.community.federated import (
    TRAINER,
    dp_body,
    node_status,
    recipe,
    strategy_body,
    valuation_body,
    version_participants,
)
from commonweal.community.federated_math import (
    epsilon_spent,
    needed_coalitions,
    round_shapley,
)
from commonweal.community.models import manifest_root
from commonweal.community.ownership import epoch_body
from commonweal.community.state import ModelVersion, State
from commonweal.community.views import federation, member_node
from commonweal.errors import CharterInvalid, Conflict, Forbidden, InvalidInput
from commonweal.hub import Hub
from commonweal.ledger.canonical import canonical_str
from commonweal.ledger.event import SignedEvent, decode_leaf, encode_leaf, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.store.projection import compare
from commonweal.store.schema import nodes

FOUNDER, HUB = SigningKey.generate(), SigningKey.generate()
ALICE, BOB, CAROL = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
LABELS = [str(d) for d in range(10)]
ROOT = "ab" * 32


def node_key() -> str:
    """A fresh OpenSSH ecdsa-sha2-nistp384 public key, as `commonweal node enroll` makes."""
    pub = ec.generate_private_key(ec.SECP384R1()).public_key()
    raw = pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode()


def fed_charter(**federated: Any) -> dict[str, Any]:
    return {
        "name": "Clinics",
        "task": {"kind": "image-classification", "labels": LABELS},
        "federated": {"enabled": True, "min_clients": 2, **federated},
    }


def apply(state: State, ev: SignedEvent) -> State:
    """What a verifier replaying the log does with ``ev`` as the next entry."""
    leaf = decode_leaf(encode_leaf(ev.data, state.size, ev.event["time"], ev.sig))
    return rules.apply(state, leaf)


def founded(**federated: Any) -> State:
    """Ada founds the community; Alice, Bob and Carol join."""
    found = {
        "charter": validate_charter(fed_charter(**federated)).to_json(),
        "hub_key": HUB.key_id,
        "origin": "test/fed",
        "founder_name": "Ada",
    }
    state = apply(State(), sign_event(FOUNDER, "community.found", found, hub=None))
    for key, name in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")):
        state = apply(state, sign_event(key, "member.join", {"name": name}, hub=None))
    return state


def enroll_body(key: str | None = None, **over: Any) -> dict[str, Any]:
    body = {
        "node_key": key or node_key(),
        "items": 30,
        "labels": {"0": 10, "1": 20},
        "root": ROOT,
        "license": "CC-BY-4.0",
        "consent": ["train", "evaluate"],
    }
    return body | over


def enroll(state: State, who: SigningKey, **over: Any) -> State:
    return apply(state, sign_event(who, "federated.enroll", enroll_body(**over), hub=None))


def enrolled(**federated: Any) -> State:
    state = founded(**federated)
    for who in (ALICE, BOB):
        state = enroll(state, who)
    return state


# Each member's "worth" in a round: a coalition's utility is the sum over its members.
WORTH = {ALICE.key_id: 3, BOB.key_id: 1, CAROL.key_id: 2}


def round_body(
    state: State,
    run: str = "7",
    rnd: int = 1,
    *,
    members: tuple[SigningKey, ...] = (ALICE, BOB),
    rejected: tuple[SigningKey, ...] = (),
    start: int = 0,
) -> dict[str, Any]:
    """The round the rules accept for ``state``: utilities made up, values computed."""
    assert state.charter is not None
    charter = state.charter
    keys = sorted(m.key_id for m in members)
    out = {r.key_id for r in rejected}
    accepted = [k for k in keys if k not in out]
    dp = dp_body(charter)
    participants = []
    for k in keys:
        p: dict[str, Any] = {
            "member": k,
            "node": str(1000 + keys.index(k)),
            "update": hashlib.sha256(f"{run}:{rnd}:{k}".encode()).hexdigest(),
            "examples": 24,
            "status": "rejected" if k in out else "accepted",
            "distance": "0.84",
        }
        if k in out:
            p["reason"] = "distance 9.1 exceeds 3 x median distance 0.84"
        if dp is not None:
            n = state.dp_rounds.get(k, 0) + 1
            p["epsilon"] = epsilon_spent(n, dp["noise_multiplier"], dp["delta"])
        participants.append(p)
    seed = charter.training.seed
    perms = 0 if len(accepted) <= charter.federated.max_exact_players else 200
    utilities = {
        str(m): str(sum(WORTH[accepted[i]] for i in range(len(accepted)) if m >> i & 1) / 10)
        for m in needed_coalitions(len(accepted), perms, seed)
    }
    body: dict[str, Any] = {
        "run": run,
        "round": rnd,
        "start": start,
        "strategy": strategy_body(charter),
        "participants": participants,
        "aggregate": hashlib.sha256(f"agg:{run}:{rnd}".encode()).hexdigest(),
        "metrics": {"accuracy": "0.953"},
        "node_metrics": {k: {"accuracy": "0.94", "examples": 6} for k in keys},
        "valuation": {
            "method": "round-shapley",
            "players": accepted,
            "utilities": utilities,
            "permutations": perms,
            "seed": seed,
            "values": round_shapley(accepted, utilities, perms, seed),
        },
    }
    if dp is not None:
        body["dp"] = dp
    return body


def hub_event(kind: str, body: dict[str, Any]) -> SignedEvent:
    return sign_event(HUB, kind, body, hub=None)


def run_rounds(state: State, run: str = "7", rounds: int = 2, **kw: Any) -> State:
    for r in range(1, rounds + 1):
        state = apply(state, hub_event("federated.round", round_body(state, run, r, **kw)))
    return state


def version_body(state: State, run: str = "7", start: int = 0) -> dict[str, Any]:
    assert state.charter is not None
    entries = sorted(
        (r.round, e) for e, r in state.fl_rounds.items() if r.run == run
    )  # the run's round entries, in order
    manifest = (
        {"root": manifest_root([]), "count": 0}
        if start == 0
        else {"root": state.models[start].manifest_root, "count": state.models[start].items}
    )
    return {
        "version": len(state.models) + 1,
        "trainer": TRAINER,
        "params": recipe(state.charter),
        "seed": 0,
        "manifest": manifest,
        "evaluation": {"root": manifest_root([]), "count": 0},
        "shards": [{**manifest, "sha256": "cd" * 32, "bytes": 900}],
        "artifact": {"format": "commonweal-sisa-skops/1", "sha256": "ef" * 32, "bytes": 1000},
        "metrics": {"accuracy": "0.95"},
        "libraries": {"python": "3.12"},
        "federated": {
            "run": run,
            "rounds": [e for _, e in entries],
            "start": start,
            "participants": version_participants(state, run),
        },
    }


# -- the charter --------------------------------------------------------------------------


def test_a_charter_without_a_federated_section_hashes_as_it_was_logged() -> None:
    doc = {"name": "Old Co-op", "task": {"kind": "text-classification", "labels": ["a", "b"]}}
    charter = validate_charter(doc)
    assert "federated" not in charter.to_json()
    before_part_10 = Charter.model_validate(doc).model_dump(mode="json", exclude={"federated"})
    assert (
        charter_hash(charter) == hashlib.sha256(canonical_str(before_part_10).encode()).hexdigest()
    )
    assert charter.to_full_json()["federated"]["enabled"] is False
    # A charter that names the section keeps it, so an amendment that adds it changes it.
    assert "federated" in validate_charter(fed_charter()).to_json()


def test_federation_needs_an_image_or_tabular_classification_task() -> None:
    text = {"kind": "text-classification", "labels": ["a", "b"]}
    with pytest.raises(CharterInvalid, match="image- or tabular-classification"):
        validate_charter({**fed_charter(), "task": text})
    with pytest.raises(CharterInvalid, match="min_clients 5 exceeds clients_per_round 3"):
        validate_charter(fed_charter(min_clients=5, clients_per_round=3))
    with pytest.raises(CharterInvalid, match="app_sha256"):
        validate_charter(fed_charter(app_sha256="ABC"))
    with pytest.raises(CharterInvalid, match="delta"):
        validate_charter(fed_charter(delta="1.5"))


def test_init_fills_in_the_app_hash_unless_the_founder_named_one() -> None:
    charter = validate_charter(fed_charter())
    filled = with_federated_app(charter, "12" * 32)
    assert filled.federated.app_sha256 == "12" * 32
    assert with_federated_app(filled, "34" * 32).federated.app_sha256 == "12" * 32


# -- enrolling ----------------------------------------------------------------------------


def test_an_enrolled_member_has_a_node_and_may_enroll_again_with_the_same_key() -> None:
    state = enrolled()
    node = state.nodes[ALICE.key_id]
    assert node.status == "enrolled" and node.items == 30 and node.consent == "train,evaluate"
    again = enroll(state, ALICE, key=node.node_key, items=40, labels={"0": 40})
    assert again.nodes[ALICE.key_id].items == 40
    assert member_node(again, ALICE.key_id)["labels"] == {"0": 40}  # type: ignore[index]


def test_a_node_key_serves_one_enrollment_ever() -> None:
    state = enrolled()
    alices = state.nodes[ALICE.key_id].node_key
    with pytest.raises(Conflict, match="already enrolled"):
        enroll(state, CAROL, key=alices)
    # Alice moves to a new key; her old one is not hers to take back.
    moved = enroll(state, ALICE)
    with pytest.raises(Conflict, match="already enrolled"):
        enroll(moved, ALICE, key=alices)
    # Nor after she withdraws: Flower never registers an unregistered key again.
    gone = apply(state, sign_event(ALICE, "federated.withdraw", {}, hub=None))
    with pytest.raises(Conflict, match="already enrolled"):
        enroll(gone, ALICE, key=alices)


@pytest.mark.parametrize(
    ("over", "error", "match"),
    [
        ({"labels": {"0": 10, "cat": 20}}, InvalidInput, "not the charter's"),
        ({"labels": {"0": 10, "1": 19}}, InvalidInput, "add up to 29"),
        ({"key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA=="}, InvalidInput, "nistp384"),
        ({"root": "xyz"}, InvalidInput, "root"),
        ({"license": "Proprietary"}, InvalidInput, "license"),
        ({"consent": ["evaluate"]}, InvalidInput, "requires consent"),
    ],
)
def test_an_enrollment_that_does_not_fit_the_charter_is_refused(
    over: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        enroll(founded(), ALICE, **over)


def test_no_one_enrolls_where_the_charter_does_not_enable_federation() -> None:
    with pytest.raises(Forbidden, match="does not enable"):
        enroll(founded(enabled=False), ALICE)


# -- rounds -------------------------------------------------------------------------------


def test_rounds_credit_accepted_members_and_log_their_values() -> None:
    state = enroll(enrolled(), CAROL)
    state = run_rounds(state, members=(ALICE, BOB, CAROL), rejected=(CAROL,))
    assert state.fl_runs["7"] == 2
    assert dict(state.compute_credit) == {ALICE.key_id: 2, BOB.key_id: 2}
    assert state.nodes[ALICE.key_id].rounds == 2 and state.nodes[CAROL.key_id].rounds == 0
    values = dict(next(iter(state.fl_rounds.values())).values)
    assert values == {ALICE.key_id: "0.300000000000", BOB.key_id: "0.100000000000"}
    assert CAROL.key_id not in values  # rejected: earns nothing that round
    view = federation(state)
    assert view["enabled"]
    assert {n["member"]: n["rounds"] for n in view["nodes"]} == {
        ALICE.key_id: 2,
        BOB.key_id: 2,
        CAROL.key_id: 0,
    }


def refused(state: State, body: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        apply(state, hub_event("federated.round", body))


def test_only_enrolled_active_members_take_part() -> None:
    state = enrolled()
    refused(state, round_body(state, members=(ALICE, CAROL)), Forbidden, "theirs is none")
    gone = apply(state, sign_event(BOB, "federated.withdraw", {}, hub=None))
    refused(gone, round_body(gone), Forbidden, "theirs is withdrawn")
    left = apply(state, sign_event(BOB, "member.leave", {}, hub=None))
    assert node_status(left, BOB.key_id) == "left"
    refused(left, round_body(left), Forbidden, "theirs is left")


def test_a_round_is_signed_by_the_hub() -> None:
    state = enrolled()
    ev = sign_event(ALICE, "federated.round", round_body(state), hub=None)
    with pytest.raises(Forbidden, match="only the hub"):
        apply(state, ev)


def test_values_must_be_the_shapley_values_of_the_logged_utilities() -> None:
    state = enrolled()
    body = round_body(state)
    body["valuation"]["values"][ALICE.key_id] = "0.400000000000"
    refused(state, body, InvalidInput, "not the Shapley values")
    body = round_body(state)
    body["valuation"]["utilities"].pop("3")
    refused(state, body, InvalidInput, "exactly the 4 coalitions")


def test_players_are_exactly_the_accepted_participants() -> None:
    state = enroll(enrolled(), CAROL)
    body = round_body(state, members=(ALICE, BOB, CAROL), rejected=(CAROL,))
    body["valuation"]["players"] = sorted([ALICE.key_id, BOB.key_id, CAROL.key_id])
    refused(state, body, InvalidInput, "exactly the accepted participants")


def test_rounds_of_a_run_are_consecutive() -> None:
    state = run_rounds(enrolled(), rounds=1)
    refused(state, round_body(state, rnd=3), Conflict, "next round is 2, not 3")
    refused(state, round_body(state, run="8", rnd=2), Conflict, "starts at round 1")
    refused(state, round_body(state, rnd=2, start=1), InvalidInput, "started from version 0")


def test_a_round_holds_the_charters_minimum_of_replies_and_strategy() -> None:
    state = enrolled()
    refused(state, round_body(state, members=(ALICE,)), Conflict, "participants, not 1")
    body = round_body(state)
    body["strategy"] = {"aggregation": "median", "params": {}}
    refused(state, body, InvalidInput, "strategy must be the charter's")


def test_each_members_epsilon_is_the_rules_and_within_the_budget() -> None:
    state = enrolled(dp="server-fixed", noise_multiplier="1.0", epsilon_budget="11")
    body = round_body(state)
    assert body["participants"][0]["epsilon"] == epsilon_spent(1, "1.0", "0.00001")
    body["participants"][0]["epsilon"] = "0.1"
    refused(state, body, InvalidInput, "epsilon after 1 DP round")
    state = run_rounds(state, rounds=3)
    assert state.dp_rounds[ALICE.key_id] == 3
    # A fourth round would take each past epsilon 11.
    assert (
        float(epsilon_spent(3, "1.0", "0.00001")) < 11 < float(epsilon_spent(4, "1.0", "0.00001"))
    )
    refused(state, round_body(state, rnd=4), Forbidden, "past the charter's budget")


# -- the federated version, its valuation, the epoch --------------------------------------


def test_a_federated_version_is_valued_and_paid_from_the_data_and_compute_pools() -> None:
    state = run_rounds(enrolled(), rounds=2)
    state = apply(state, hub_event("model.version", version_body(state)))
    assert state.models[1].trainer == TRAINER and 1 in state.fl_versions
    want = valuation_body(state, 1)
    assert [r["value"] for r in want["members"]] == sorted(
        ["0.600000000000", "0.200000000000"], reverse=ALICE.key_id < BOB.key_id
    )
    wrong = {**want, "total": "9.0"}
    with pytest.raises(InvalidInput, match="total"):
        apply(state, hub_event("valuation.record", wrong))
    state = apply(state, hub_event("valuation.record", want))
    epoch = epoch_body(state)
    compute = epoch["pools"]["compute"]
    assert compute["weights"] == sorted([[ALICE.key_id, 2], [BOB.key_id, 2]])
    assert sum(s for _, s in compute["awards"]) == compute["amount"] > 0
    data = dict(map(tuple, epoch["pools"]["data"]["awards"]))
    assert data[ALICE.key_id] == 3 * data[BOB.key_id]
    state = apply(state, hub_event("rewards.epoch", epoch))
    assert dict(state.compute_credit) == {} and state.holdings[ALICE.key_id].compute > 0


def test_a_federated_version_names_all_of_its_runs_rounds() -> None:
    state = run_rounds(enrolled(), rounds=2)
    body = version_body(state)
    body["federated"]["rounds"] = body["federated"]["rounds"][:1]
    with pytest.raises(InvalidInput, match="all of run 7's rounds"):
        apply(state, hub_event("model.version", body))
    body = version_body(state)
    body["trainer"] = "pixels-logreg"
    with pytest.raises(InvalidInput, match="federated-softmax"):
        apply(state, hub_event("model.version", body))
    body = version_body(state)
    body["federated"]["participants"][0]["rounds"] = 1
    with pytest.raises(InvalidInput, match="participants"):
        apply(state, hub_event("model.version", body))
    done = apply(state, hub_event("model.version", version_body(state)))
    with pytest.raises(Conflict, match="already made a model version"):
        apply(done, hub_event("model.version", version_body(done)))


def test_a_run_starts_from_the_latest_central_version_trained_on_the_current_pool() -> None:
    state = enrolled()
    # A central version 1 whose manifest is not the current (empty) pool: it is stale.
    stale = ModelVersion(
        1, 0, "", "pixels-logreg", 1, 0, 5, "12" * 32, 0, "", "{}", "ab" * 32, None
    )
    state = state.evolve({"models": state.models.set(1, stale)})
    state = run_rounds(state, rounds=1, start=1)
    with pytest.raises(Conflict, match="train the central model first"):
        apply(state, hub_event("model.version", version_body(state, start=1)))
    # From zeros, while the charter says to start from the latest central version: refused.
    zeros = run_rounds(state, run="9", rounds=1)
    with pytest.raises(Conflict, match="must start from version 1"):
        apply(zeros, hub_event("model.version", version_body(zeros, run="9")))


# -- through a real hub: projections, rebuild, verify's comparison ------------------------


def test_nodes_are_projected_rebuilt_and_compared(tmp_path: Path, database_url: str) -> None:
    hub, _ = Hub.init(
        tmp_path / "hub",
        charter=validate_charter(fed_charter()),
        founder_name="Ada",
        database=database_url,
    )
    try:
        alice, bob = SigningKey.generate(), SigningKey.generate()
        for key, name in ((alice, "Alice"), (bob, "Bob")):
            hub.append([sign_event(key, "member.join", {"name": name}, hub=hub.origin)])
        hub.append([sign_event(alice, "federated.enroll", enroll_body(), hub=hub.origin)])
        hub.append([sign_event(bob, "federated.enroll", enroll_body(), hub=hub.origin)])
        hub.append([sign_event(bob, "federated.withdraw", {}, hub=hub.origin)])
        with hub.read() as conn:
            rows = {r.member: r.status for r in conn.execute(select(nodes))}
            assert rows == {alice.key_id: "enrolled", bob.key_id: "withdrawn"}
            assert compare(conn, hub.state) is None
        assert hub.rebuild()["nodes"] == 2
        with hub.read() as conn:
            assert compare(conn, hub.state) is None
        # A refused enrollment writes nothing: Bob's old key is spent.
        bobs = hub.state.nodes[bob.key_id].node_key
        with pytest.raises(Conflict):
            hub.append([sign_event(bob, "federated.enroll", enroll_body(bobs), hub=hub.origin)])
        assert hub.state.nodes[bob.key_id].status == "withdrawn"
    finally:
        hub.close()
