"""The rules for model versions, API keys and revenue, without training anything.

A ``model.version`` event is the hub's claim about which items trained a version; the rules
recompute every manifest from the replayed state, so a claim that is off by one item, one
shard or one number is refused — by the pure ``rules.apply`` a verifier replays with, and by
the hub's write path, which then writes nothing. The same goes for the hub's revenue records
and the members' API keys.

The model tests take their state from one small community per database (module scope, since
every case only reads it); the serving tests build their states from hand-made leaves.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from commonweal.community import rules
from commonweal.community.charter import Charter, Training
from commonweal.community.models import manifest_root, pool, shard_count
from commonweal.community.state import State
from commonweal.errors import (
    CommonwealError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    UnknownMember,
)
from commonweal.hub import Hub
from commonweal.ledger.event import Leaf, SignedEvent, decode_leaf, encode_leaf, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.store.schema import apikeys, models, treasury
from tests.kit import Databases, community, digit_items

T = "2026-01-01T00:00:00.000Z"
SHARDS = 2


@pytest.fixture(autouse=True)
def _signed_at_log_time(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Events the pure-rule tests here log at ``T`` are signed at ``T``, as a member's clock
    in step with the hub's would sign them (the charter bounds the difference); a real hub's
    tests keep the real clock."""
    if "database_url" not in request.fixturenames:
        monkeypatch.setattr("commonweal.ledger.event.now", lambda: T)


def leaf_at(ev: SignedEvent, index: int, log_time: str | None = None) -> Leaf:
    """``ev`` logged at ``index``, at ``log_time`` (default: when it was signed)."""
    when = log_time or ev.event["time"]
    return decode_leaf(encode_leaf(ev.data, index, when, ev.sig))


def apply(state: State, ev: SignedEvent, log_time: str | None = None) -> State:
    """What a verifier replaying the log does with ``ev`` as the next entry."""
    return rules.apply(state, leaf_at(ev, state.size, log_time))


def rows(hub: Hub, table: Any) -> int:
    with hub.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def refused_by_hub(hub: Hub, events: list[SignedEvent], error: type[Exception]) -> Exception:
    """``hub.append`` refuses ``events`` with ``error`` and writes nothing at all."""
    size, checkpoint, state = hub.log.size(), hub.log.checkpoint(), hub.state
    tables = {t.name: rows(hub, t) for t in (models, apikeys, treasury)}
    with pytest.raises(error) as caught:
        hub.append(events)
    assert hub.log.size() == size and hub.log.checkpoint() == checkpoint
    assert hub.state is state
    assert {t.name: rows(hub, t) for t in (models, apikeys, treasury)} == tables
    return caught.value


# -- a community to check versions against --------------------------------------------


@pytest.fixture(scope="module")
def ruled(
    tmp_path_factory: pytest.TempPathFactory, module_databases: Databases
) -> Iterator[tuple[Hub, dict[str, SigningKey], State]]:
    """A community of 100 accepted digits (no version yet), its members' keys, and the
    state a verifier gets by replaying its leaves. Tests must not append to it."""
    directory = tmp_path_factory.mktemp("ruled")
    # Several shards on little data: the charter's floors on rows per shard and per label
    # are lowered explicitly (by default 100 digits train one shard; see
    # test_the_shard_count_...). The first 100 digits hold 8 to 12 of each; labels with ten
    # give five to the evaluation set (its minimum per class), and a 10 % holdout leaves
    # the 8- and 9-item labels at least two training items but for a ~2e-6 chance (25 %
    # failed one CI run in a thousand), so the pool splits into SHARDS whatever the salts.
    extra = {
        "training": {
            "shards": SHARDS,
            "min_rows_per_shard": 1,
            "min_rows_per_class_per_shard": 1,
            "evaluation": {"holdout_pct": 10, "min_items": 1},
        }
    }
    client, keys = community(
        directory / "hub", module_databases.new(), items=digit_items(0, 100), charter_extra=extra
    )
    with client:
        hub = client.embedded_hub
        replayed = rules.replay(decode_leaf(b) for b in hub.log.leaf_bytes(0, hub.log.size()))
        yield hub, keys, replayed


def summary(ids: Any) -> dict[str, Any]:
    return {"root": manifest_root(ids), "count": len(ids)}


def valid_body(state: State) -> dict[str, Any]:
    """A ``model.version`` body the rules accept for ``state``: every manifest right. (The
    hashes and metrics are made up: the rules cannot check them without the data.)"""
    p = pool(state)
    return {
        "version": len(state.models) + 1,
        "trainer": "pixels-logreg",
        "params": {"C": "1.0", "max_iter": 2000},
        "seed": 0,
        "manifest": summary(p.training),
        "evaluation": summary(p.evaluation),
        "shards": [{**summary(ids), "sha256": "ab" * 32, "bytes": 10} for ids in p.shards],
        "artifact": {"format": "commonweal-sisa-skops/1", "sha256": "cd" * 32, "bytes": 20},
        "metrics": {"accuracy": "0.912500", "macro_f1": "-0.5"},
        "libraries": {"python": "3.11"},
    }


def test_the_replayed_state_accepts_a_right_version(ruled: Any) -> None:
    hub, _, state = ruled
    assert state.size == hub.state.size and state.contributions == hub.state.contributions
    p = pool(state)
    assert all(p.shards) and p.evaluation
    body = valid_body(state)
    after = apply(state, hub.sign("model.version", body))
    mv = after.models[1]
    assert (mv.version, mv.entry, mv.trainer, mv.shards, mv.seed) == (
        1,
        state.size,
        "pixels-logreg",
        SHARDS,
        0,
    )
    assert (mv.items, mv.manifest_root) == (len(p.training), manifest_root(p.training))
    assert (mv.eval_items, mv.eval_root) == (len(p.evaluation), manifest_root(p.evaluation))
    assert mv.artifact_sha256 == "cd" * 32 and mv.previous is None
    assert mv.metrics == '{"accuracy":"0.912500","macro_f1":"-0.5"}'
    # The next version must follow it and may name it as its previous one.
    nxt = {**valid_body(after), "previous": 1}
    assert nxt["version"] == 2
    assert apply(after, hub.sign("model.version", nxt)).models[2].previous == 1


def test_the_shard_count_follows_the_pool_and_the_rule_holds_the_hub_to_it(ruled: Any) -> None:
    """Shards = the charter's most, while each keeps ``min_rows_per_shard`` rows and, on
    average, ``min_rows_per_class_per_shard`` of each label; at least one. The rule
    recomputes the count, so a version that logs another is refused."""
    hub, _, state = ruled
    defaults = Training()
    assert (defaults.shards, defaults.min_rows_per_shard) == (8, 300)
    assert defaults.min_rows_per_class_per_shard == 10
    ten = [str(d) for d in range(10)]
    assert shard_count(defaults, ten * 17) == 1  # 170 rows: one model, not eight tiny ones
    assert shard_count(defaults, ten * 60) == 2  # 600 rows
    assert shard_count(defaults, ten * 1000) == 8  # no more than the charter's most
    assert shard_count(defaults, ten * 150 + ["0"] * 400) == 6  # 1,900 rows, 150 per label
    assert shard_count(defaults, ["0"] * 1990 + ["1"] * 25) == 2  # a rare label limits it
    assert shard_count(defaults, []) == 1
    assert shard_count(Training(min_rows_per_shard=1, min_rows_per_class_per_shard=1), ten * 3) == 3
    unlabelled: list[str | None] = [None] * 650  # a regression: rows alone count
    assert shard_count(defaults, unlabelled) == 2

    # The community here lowered the floors: its 100 digits train SHARDS shards. The same
    # log under the default floors implies one shard, and the rule holds the hub to it.
    assert len(pool(state).shards) == SHARDS
    charter = state.charter
    assert charter is not None
    adaptive = state._replace(
        charter=charter.model_copy(
            update={"training": charter.training.model_copy(update={"min_rows_per_shard": 300})}
        )
    )
    one = pool(adaptive)
    assert len(one.shards) == 1 and one.training == pool(state).training
    with pytest.raises(InvalidInput, match="splits this pool into 1 shards, not 2"):
        apply(adaptive, hub.sign("model.version", valid_body(state)))
    assert apply(adaptive, hub.sign("model.version", valid_body(adaptive))).models[1].shards == 1
    with pytest.raises(InvalidInput, match=f"splits this pool into {SHARDS} shards, not 1"):
        apply(state, hub.sign("model.version", valid_body(adaptive)))


def _set(path: str, value: Any) -> Callable[[dict[str, Any], Any], None]:
    def mutate(body: dict[str, Any], p: Any) -> None:
        *parents, last = path.split(".")
        node = body
        for k in parents:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[int(last) if isinstance(node, list) else last] = value(p) if callable(value) else value

    return mutate


def _drop(name: str) -> Callable[[dict[str, Any], Any], None]:
    def mutate(body: dict[str, Any], p: Any) -> None:
        del body[name]

    return mutate


OTHER_ROOT = "ee" * 32
# (case, how the body is wrong, the error, words the message must hold)
BAD_VERSIONS: list[tuple[str, Callable[[dict[str, Any], Any], None], type[Exception], str]] = [
    ("manifest root", _set("manifest.root", OTHER_ROOT), InvalidInput, "manifest"),
    (
        "manifest count",
        _set("manifest.count", lambda p: len(p.training) + 1),
        InvalidInput,
        "manifest",
    ),
    (
        "manifest leaves an item out",
        _set("manifest", lambda p: summary(p.training[1:])),
        InvalidInput,
        "training pool",
    ),
    (
        "manifest adds an unknown item",
        _set("manifest", lambda p: summary([*p.training, "00" * 16])),
        InvalidInput,
        "training pool",
    ),
    (
        "manifest trains on a held-out item",
        _set("manifest", lambda p: summary([*p.training, p.evaluation[0]])),
        InvalidInput,
        "training pool",
    ),
    (
        "shard root",
        _set("shards.1.root", lambda p: manifest_root(p.shards[0])),
        InvalidInput,
        "shard 1",
    ),
    (
        "shard count",
        _set("shards.0.count", lambda p: len(p.shards[0]) - 1),
        InvalidInput,
        "shard 0",
    ),
    (
        "shards swapped",
        _set(
            "shards",
            lambda p: [{**summary(ids), "sha256": "", "bytes": 0} for ids in reversed(p.shards)],
        ),
        InvalidInput,
        "shard 0",
    ),
    (
        "too few shards",
        _set("shards", lambda p: [{**summary(p.training), "sha256": "", "bytes": 0}]),
        InvalidInput,
        "2 shards",
    ),
    ("shard not an object", _set("shards.0", "everything"), InvalidInput, "shard 0"),
    ("evaluation root", _set("evaluation.root", OTHER_ROOT), InvalidInput, "evaluation set"),
    (
        "evaluation leaves an item out",
        _set("evaluation", lambda p: summary(p.evaluation[1:])),
        InvalidInput,
        "evaluation set",
    ),
    (
        "evaluation holds a training item",
        _set("evaluation", lambda p: summary([*p.evaluation, p.training[0]])),
        InvalidInput,
        "evaluation set",
    ),
    ("version skips one", _set("version", 2), Conflict, "next version is 1"),
    ("version zero", _set("version", 0), Conflict, "next version is 1"),
    ("version as text", _set("version", "1"), InvalidInput, "version"),
    ("wrong seed", _set("seed", 7), InvalidInput, "seed is 0"),
    ("wrong trainer", _set("trainer", "linear"), InvalidInput, "pixels-logreg"),
    ("another task's trainer", _set("trainer", "hashing-logreg"), InvalidInput, "pixels-logreg"),
    ("metric in exponent form", _set("metrics.accuracy", "9.1e-1"), InvalidInput, "decimal string"),
    ("metric NaN", _set("metrics.accuracy", "NaN"), InvalidInput, "decimal string"),
    (
        "metric without a leading digit",
        _set("metrics.accuracy", ".9"),
        InvalidInput,
        "decimal string",
    ),
    (
        "metric with a trailing point",
        _set("metrics.accuracy", "1."),
        InvalidInput,
        "decimal string",
    ),
    ("metric empty", _set("metrics.accuracy", ""), InvalidInput, "decimal string"),
    ("metric as an integer", _set("metrics.accuracy", 1), InvalidInput, "decimal string"),
    (
        "metric as an object",
        _set("metrics.accuracy", {"value": "0.9"}),
        InvalidInput,
        "decimal string",
    ),
    ("previous that does not exist", _set("previous", 1), InvalidInput, "previous version 1"),
    ("artifact hash not hex", _set("artifact.sha256", "XY" * 32), InvalidInput, "artifact"),
    ("artifact hash too short", _set("artifact.sha256", "cd" * 31), InvalidInput, "artifact"),
    ("artifact with more fields", _set("artifact.url", "https://x"), InvalidInput, "artifact"),
    ("no libraries", _drop("libraries"), InvalidInput, "'libraries' is missing"),
    ("no shards", _drop("shards"), InvalidInput, "'shards' is missing"),
    ("shards as an object", _set("shards", {}), InvalidInput, "'shards' must be a list"),
    ("a field the kind lacks", _set("note", "trust me"), InvalidInput, "unexpected"),
]


@pytest.mark.parametrize(
    ("case", "mutate", "error", "words"), BAD_VERSIONS, ids=[c[0] for c in BAD_VERSIONS]
)
def test_a_wrong_version_is_refused_and_nothing_is_written(
    ruled: Any,
    case: str,
    mutate: Callable[[dict[str, Any], Any], None],
    error: type[Exception],
    words: str,
) -> None:
    hub, _, state = ruled
    body = valid_body(state)
    mutate(body, pool(state))
    ev = hub.sign("model.version", body)
    with pytest.raises(error, match=r"^model\.version: ") as pure:
        apply(state, ev)
    assert words in pure.value.args[0]
    got = refused_by_hub(hub, [ev], error)
    assert type(got) is type(pure.value) and str(got) == str(pure.value)
    assert not hub.state.models


@pytest.mark.parametrize("signer", ["Ada", "Grace", "stranger"])
def test_only_the_hub_registers_versions(ruled: Any, signer: str) -> None:
    """The founder, a member, a key nobody knows: the body is right, the signer is not."""
    hub, keys, state = ruled
    key = keys.get(signer) or SigningKey(b"s" * 32)
    ev = sign_event(key, "model.version", valid_body(state), hub=hub.origin)
    with pytest.raises(Forbidden, match="only the hub"):
        apply(state, ev)
    refused_by_hub(hub, [ev], Forbidden)
    # One bad event spoils its batch: the right version before it is not written either.
    good = hub.sign("model.version", valid_body(state))
    refused_by_hub(hub, [good, ev], CommonwealError)


def test_floats_never_reach_the_log(ruled: Any) -> None:
    hub, _, state = ruled
    for metrics in ({"accuracy": 0.9125}, {"accuracy": float("nan")}):
        with pytest.raises(InvalidInput, match="floating-point"):
            hub.sign("model.version", {**valid_body(state), "metrics": metrics})
    with pytest.raises(InvalidInput):
        hub.sign("model.version", {**valid_body(state), "seed": 0.0})
    # Nor through the wire: a float in a submitted event is refused before the rules.
    wire = hub.sign("model.version", valid_body(state)).to_wire()
    wire = copy.deepcopy(wire)
    wire["event"]["body"]["metrics"]["accuracy"] = 0.9125
    size = hub.log.size()
    with pytest.raises(InvalidInput):
        hub.submit(wire)
    assert hub.log.size() == size


def test_a_version_needs_an_evaluation_set_as_large_as_the_charter_says(ruled: Any) -> None:
    hub, _, state = ruled
    assert state.charter is not None
    training = state.charter.training
    strict = training.model_copy(
        update={"evaluation": training.evaluation.model_copy(update={"min_items": 1000})}
    )
    tighter = state._replace(charter=state.charter.model_copy(update={"training": strict}))
    with pytest.raises(Conflict, match="needs 1000"):
        apply(tighter, hub.sign("model.version", valid_body(state)))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_other_manifest_is_refused(ruled: Any, data: st.DataObject) -> None:
    """Drop some items of the training pool, add some others (held out, unknown): unless
    the set is the pool again, the rules refuse the version."""
    hub, _, state = ruled
    p = pool(state)
    dropped = data.draw(st.sets(st.sampled_from(p.training), max_size=3), label="dropped")
    added = data.draw(
        st.sets(
            st.one_of(
                st.sampled_from(p.evaluation),
                st.binary(min_size=16, max_size=16).map(bytes.hex),
            ),
            max_size=3,
        ),
        label="added",
    )
    claimed = sorted((set(p.training) - dropped) | added)
    body = valid_body(state)
    body["manifest"] = summary(claimed)
    ev = hub.sign("model.version", body)
    if claimed == p.training:
        assert apply(state, ev).models[1].manifest_root == manifest_root(p.training)
    else:
        with pytest.raises(InvalidInput, match="training pool"):
            apply(state, ev)


@pytest.mark.parametrize(
    "shard",
    [
        {"from_version": 7},
        {"from_version": 1},
        {"sha256": "not a hash"},
        {"bytes": -5},
    ],
    ids=["future version", "itself", "sha256", "bytes"],
)
def test_shard_claims_are_checked(ruled: Any, shard: dict[str, Any]) -> None:
    hub, _, state = ruled
    body = valid_body(state)
    body["shards"][0].update(shard)
    with pytest.raises(InvalidInput):
        apply(state, hub.sign("model.version", body))


# -- API keys and revenue -------------------------------------------------------------------

HUB = SigningKey(b"h" * 32)
FOUNDER, ALICE, BOB, CAROL = (SigningKey(bytes([i]) * 32) for i in range(1, 5))
PRICE = 3


def key_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def serving_state(apikeys: str = "member", *, founder_revokes_keys: bool = False) -> State:
    """A community (by hand-made leaves, no database): the founder and Alice, Bob and
    Carol as members; Alice issued key "a", Bob issued key "b"."""
    charter = Charter(
        name="Serve Co-op",
        serving={  # type: ignore[arg-type]
            "apikeys": apikeys,
            "price_per_call": PRICE,
            "quota_per_key_per_day": 1000,
            "founder_revokes_keys": founder_revokes_keys,
        },
    )
    found = sign_event(
        FOUNDER,
        "community.found",
        {
            "charter": charter.to_json(),
            "hub_key": HUB.key_id,
            "origin": "test/serve",
            "founder_name": "Ada",
        },
        hub=None,
    )
    state = apply(State(), found)
    for key, name in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")):
        state = apply(state, sign_event(key, "member.join", {"name": name}, hub=None))
    if apikeys == "member":
        for key, name in ((ALICE, "a"), (BOB, "b")):
            body = {"key_hash": key_hash(name), "consumer": f"consumer {name}"}
            state = apply(state, sign_event(key, "apikey.create", body, hub=None))
    return state


def revenue(
    usage: list[tuple[str, int]] | None = None,
    *,
    in_order: bool = True,
    raw: list[dict[str, Any]] | None = None,
    start: str = "2025-12-01T00:00:00.000Z",
    end: str = "2025-12-01T01:00:00.000Z",
    price: int = PRICE,
    signer: SigningKey = HUB,
    **override: Any,
) -> SignedEvent:
    """A revenue record billing ``usage`` ((key name, calls)), by default 5 calls with key
    "a" and 2 with "b"; lines in key hash order unless ``in_order`` is false. ``raw``
    gives the usage lines as they are."""
    lines: list[dict[str, Any]] = [
        {"key_hash": key_hash(name), "calls": calls, "credits": calls * PRICE}
        for name, calls in (usage if usage is not None else [("a", 5), ("b", 2)])
    ]
    lines.sort(key=lambda u: u["key_hash"], reverse=not in_order)
    if raw is not None:
        lines = raw
    body: dict[str, Any] = {
        "start": start,
        "end": end,
        "price_per_call": price,
        "usage": lines,
        "credits": sum(u["credits"] for u in lines),
    }
    body.update(override)
    return sign_event(signer, "revenue.record", body, hub=None)


@pytest.mark.parametrize("founder_revokes_keys", [False, True])
def test_api_keys_are_issued_and_revoked_by_the_right_members(founder_revokes_keys: bool) -> None:
    state = serving_state(founder_revokes_keys=founder_revokes_keys)
    a = state.apikeys[key_hash("a")]
    assert (a.issued_by, a.status, a.quota_per_day) == (ALICE.key_id, "active", 1000)

    def revoke(key: SigningKey, name: str) -> SignedEvent:
        return sign_event(key, "apikey.revoke", {"key_hash": key_hash(name)}, hub=None)

    # Neither another member nor the hub may revoke Alice's key...
    said = "(or the founder)" if founder_revokes_keys else "the members can revoke it by a vote"
    for who in (BOB, CAROL):
        with pytest.raises(Forbidden, match="only the key's issuer may revoke it") as caught:
            apply(state, revoke(who, "a"))
        assert said in str(caught.value)
    with pytest.raises(UnknownMember):
        apply(state, revoke(HUB, "a"))
    # ... its issuer may, once; the founder may revoke anyone's only where the charter
    # says so (by default, since part 7, the members decide by an apikey.revoke vote).
    revoked = apply(state, revoke(ALICE, "a"))
    assert revoked.apikeys[key_hash("a")].status == "revoked"
    assert revoked.apikeys[key_hash("a")].updated_index == state.size
    with pytest.raises(Conflict, match="already revoked"):
        apply(revoked, revoke(ALICE, "a"))
    if founder_revokes_keys:
        assert apply(state, revoke(FOUNDER, "b")).apikeys[key_hash("b")].status == "revoked"
    else:
        with pytest.raises(Forbidden, match="by a vote"):
            apply(state, revoke(FOUNDER, "b"))
    with pytest.raises(NotFound):
        apply(state, revoke(ALICE, "nobody's"))

    def create(key: SigningKey, **body: Any) -> SignedEvent:
        return sign_event(
            key, "apikey.create", {"key_hash": key_hash("c"), "consumer": "C", **body}, hub=None
        )

    assert apply(state, create(CAROL)).apikeys[key_hash("c")].quota_per_day == 1000
    assert apply(state, create(CAROL, quota_per_day=10)).apikeys[key_hash("c")].quota_per_day == 10
    for ev, error in [
        (create(SigningKey(b"x" * 32)), UnknownMember),
        (create(HUB), UnknownMember),
        (
            sign_event(
                CAROL, "apikey.create", {"key_hash": key_hash("a"), "consumer": "C"}, hub=None
            ),
            Conflict,
        ),
        (
            sign_event(CAROL, "apikey.create", {"key_hash": "AB" * 32, "consumer": "C"}, hub=None),
            InvalidInput,
        ),
        (
            sign_event(CAROL, "apikey.create", {"key_hash": "secret", "consumer": "C"}, hub=None),
            InvalidInput,
        ),
        (create(CAROL, consumer=""), InvalidInput),
        (create(CAROL, consumer="tab\there"), InvalidInput),
        (create(CAROL, quota_per_day=1001), InvalidInput),
        (create(CAROL, quota_per_day=0), InvalidInput),
    ]:
        with pytest.raises(error):
            apply(state, ev)


def test_a_founder_only_charter_refuses_members_keys() -> None:
    state = serving_state("founder")
    body = {"key_hash": key_hash("c"), "consumer": "C"}
    with pytest.raises(Forbidden, match="only the founder"):
        apply(state, sign_event(ALICE, "apikey.create", body, hub=None))
    assert (
        key_hash("c") in apply(state, sign_event(FOUNDER, "apikey.create", body, hub=None)).apikeys
    )


def test_revenue_is_calls_times_price_in_disjoint_periods() -> None:
    state = serving_state()
    first = apply(state, revenue())
    assert first.treasury.balance == first.treasury.revenue == 7 * PRICE
    assert first.treasury.calls == 7 and first.treasury.updated_index == state.size
    assert first.revenue_until == "2025-12-01T01:00:00.000Z"
    # The next period may start where the last one ended, not before.
    later = apply(
        first,
        revenue([("b", 1)], start="2025-12-01T01:00:00.000Z", end="2025-12-01T02:00:00.000Z"),
    )
    assert later.treasury.balance == 8 * PRICE and later.treasury.calls == 8
    with pytest.raises(Conflict, match="overlaps"):
        apply(first, revenue(start="2025-12-01T00:59:59.999Z", end="2025-12-01T02:00:00.000Z"))
    # A revoked key's calls before its revocation are still billed.
    revoked = apply(
        state, sign_event(ALICE, "apikey.revoke", {"key_hash": key_hash("a")}, hub=None)
    )
    assert apply(revoked, revenue()).treasury.revenue == 7 * PRICE


def _usage(**line: Any) -> list[dict[str, Any]]:
    return [{"key_hash": key_hash("a"), "calls": 2, "credits": 2 * PRICE, **line}]


BAD_REVENUE: list[tuple[str, Callable[[], SignedEvent], type[Exception], str]] = [
    ("signed by a member", lambda: revenue(signer=ALICE), Forbidden, "only the hub"),
    ("signed by the founder", lambda: revenue(signer=FOUNDER), Forbidden, "only the hub"),
    (
        "credits not calls × price",
        lambda: revenue(raw=_usage(credits=2 * PRICE + 1), credits=2 * PRICE + 1),
        InvalidInput,
        "calls × 3",
    ),
    (
        "credits at another price",
        lambda: revenue(raw=_usage(credits=2), credits=2),
        InvalidInput,
        "calls × 3",
    ),
    (
        "total not the sum",
        lambda: revenue(credits=7 * PRICE - 1),
        InvalidInput,
        "sum over keys, 21",
    ),
    (
        "another price per call",
        lambda: revenue(price=PRICE + 1),
        InvalidInput,
        "price per call is 3",
    ),
    ("keys unsorted", lambda: revenue(in_order=False), InvalidInput, "sorted and distinct"),
    ("a key twice", lambda: revenue([("a", 1), ("a", 1)]), InvalidInput, "sorted and distinct"),
    ("a key nobody issued", lambda: revenue([("zz", 1)]), InvalidInput, "no API key"),
    ("no keys", lambda: revenue([]), InvalidInput, "at least one key"),
    ("no calls", lambda: revenue([("a", 0)]), InvalidInput, "positive integer"),
    (
        "calls as a boolean",
        lambda: revenue(raw=_usage(calls=True, credits=PRICE), credits=PRICE),
        InvalidInput,
        "positive integer",
    ),
    (
        "a usage line with more fields",
        lambda: revenue(raw=_usage(note="x"), credits=2 * PRICE),
        InvalidInput,
        "key_hash, calls, credits",
    ),
    (
        "ends after it was logged",
        lambda: revenue(end="2026-01-01T00:00:00.001Z"),
        InvalidInput,
        "start <= end <= log time",
    ),
    (
        "ends before it starts",
        lambda: revenue(start="2025-12-02T00:00:00.000Z"),
        InvalidInput,
        "start <= end",
    ),
    ("not a UTC time", lambda: revenue(start="2025-12-01 00:00:00"), InvalidInput, "UTC times"),
    (
        "a local time",
        lambda: revenue(end="2025-12-01T01:00:00.000+01:00"),
        InvalidInput,
        "UTC times",
    ),
]


@pytest.mark.parametrize(
    ("case", "make", "error", "words"), BAD_REVENUE, ids=[c[0] for c in BAD_REVENUE]
)
def test_a_wrong_revenue_record_is_refused(
    case: str, make: Callable[[], SignedEvent], error: type[Exception], words: str
) -> None:
    state = serving_state()
    with pytest.raises(error) as caught:
        apply(state, make())
    assert type(caught.value) is error and words in caught.value.args[0]


def test_an_overlap_hidden_by_another_precision_is_refused() -> None:
    first = apply(serving_state(), revenue(end="2025-12-01T01:00:00.500Z"))
    with pytest.raises(Conflict, match="overlaps"):
        apply(first, revenue(start="2025-12-01T01:00:00Z", end="2025-12-01T02:00:00Z"))


def test_a_period_with_an_impossible_date_is_refused() -> None:
    with pytest.raises(InvalidInput, match="UTC times"):
        apply(serving_state(), revenue(start="2025-02-30T00:00:00Z", end="2025-12-01T01:00:00Z"))


# -- the same rules on the hub's write path (both databases) -----------------------------


def test_the_hub_refuses_bad_keys_and_revenue_and_writes_nothing(
    hub: tuple[Hub, SigningKey],
) -> None:
    h, founder = hub
    alice, bob = SigningKey(b"A" * 32), SigningKey(b"B" * 32)
    h.append([sign_event(alice, "member.join", {"name": "Alice"}, hub=h.origin)])
    h.append([sign_event(bob, "member.join", {"name": "Bob"}, hub=h.origin)])
    price = h.state.charter.serving.price_per_call  # type: ignore[union-attr]
    ka, kb = sorted([key_hash("a"), key_hash("b")])
    h.append([sign_event(alice, "apikey.create", {"key_hash": ka, "consumer": "A"}, hub=h.origin)])
    h.append([sign_event(bob, "apikey.create", {"key_hash": kb, "consumer": "B"}, hub=h.origin)])
    assert [r["key_hash"] for r in h.projections()["apikeys"]] == [ka, kb]

    # Revocation by someone who did not issue the key.
    refused_by_hub(h, [sign_event(bob, "apikey.revoke", {"key_hash": ka}, hub=h.origin)], Forbidden)

    def record(lines: list[tuple[str, int, int]], **body: Any) -> SignedEvent:
        usage = [{"key_hash": k, "calls": c, "credits": cr} for k, c, cr in lines]
        return h.sign(
            "revenue.record",
            {
                "start": "2025-12-01T00:00:00.000Z",
                "end": "2025-12-01T01:00:00.000Z",
                "price_per_call": price,
                "usage": usage,
                "credits": sum(u["credits"] for u in usage),
                **body,
            },
        )

    refused_by_hub(h, [record([(ka, 4, 4 * price + 1)])], InvalidInput)
    refused_by_hub(h, [record([(kb, 1, price), (ka, 1, price)])], InvalidInput)
    not_hub = sign_event(founder, "revenue.record", record([(ka, 1, price)]).body, hub=h.origin)
    refused_by_hub(h, [not_hub], Forbidden)

    # A right record moves the treasury; the next may not overlap it.
    h.append([record([(ka, 4, 4 * price), (kb, 1, price)])])
    assert h.projections()["treasury"][0]["balance"] == 5 * price
    assert h.projections()["treasury"][0]["calls"] == 5
    overlapping = record(
        [(ka, 1, price)], start="2025-12-01T00:30:00.000Z", end="2025-12-01T02:00:00.000Z"
    )
    refused_by_hub(h, [overlapping], Conflict)
    # The issuer revokes; the projection follows.
    h.append([sign_event(alice, "apikey.revoke", {"key_hash": ka}, hub=h.origin)])
    assert {r["key_hash"]: r["status"] for r in h.projections()["apikeys"]} == {
        ka: "revoked",
        kb: "active",
    }


def test_the_hub_refuses_members_keys_under_a_founder_only_charter(
    tmp_path: Path, database_url: str
) -> None:
    charter = Charter(name="Founders", serving={"apikeys": "founder"})  # type: ignore[arg-type]
    h, founder = Hub.init(
        tmp_path / "hub", charter=charter, founder_name="Ada", database=database_url
    )
    try:
        alice = SigningKey(b"A" * 32)
        h.append([sign_event(alice, "member.join", {"name": "Alice"}, hub=h.origin)])
        body = {"key_hash": key_hash("a"), "consumer": "A"}
        refused_by_hub(h, [sign_event(alice, "apikey.create", body, hub=h.origin)], Forbidden)
        h.append([sign_event(founder, "apikey.create", body, hub=h.origin)])
        assert [r["issued_by"] for r in h.projections()["apikeys"]] == [founder.key_id]
    finally:
        h.close()
