"""Ownership (part 4): valuations, reward epochs, payouts, share transfers and claims.

Every share minted and every credit paid is a pure function of the log: the tests check
that the integers are conserved exactly (by Hypothesis on hand-built states, and on a real
community on SQLite and PostgreSQL), that the review pool pays the information in
reviewers' verdicts (and, under the pre-part-7 option, verdicts that matched the consensus)
and pays each one once, that every refusal writes nothing, that a hub which logs
a split other than the rules' is refused on its write path and caught by ``ledger verify``
when it bypasses them, and that the operator's commands do all of it from the shell.

Communities are built once per module and database, and copied (``copied_hub``: the
directory and its SQLite file or PostgreSQL schema) for the tests that append to them.
"""

from __future__ import annotations

import csv
import io
import json
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from immutables import Map
from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    SmallInteger,
    Table,
    func,
    select,
    update,
)

from commonweal.client import HubClient
from commonweal.community import claims, ownership, rules
from commonweal.community.charter import validate_charter
from commonweal.community.contributions import matched_consensus
from commonweal.community.ownership import POOLS, epoch_body, payout_body
from commonweal.community.split import largest_remainder
from commonweal.community.state import (
    Contribution,
    State,
    Treasury,
    ValuationRecord,
    Verdict,
)
from commonweal.community.valuations import weight
from commonweal.community.views import cap_table, statement
from commonweal.errors import (
    CommonwealError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    UnknownMember,
    VerificationFailed,
)
from commonweal.hub import Hub
from commonweal.ledger.canonical import canonical_str
from commonweal.ledger.event import Leaf, SignedEvent, decode_leaf, encode_leaf, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.store.database import write_connection
from commonweal.store.schema import (
    SCHEMA_VERSION,
    epochs,
    holdings,
    item_values,
    payouts,
    schema_info,
    treasury,
    valuations,
)
from commonweal.verify import verify_hub
from tests.kit import Databases, community, copied_hub, cw, cwj, digit_items

PRICE = 3
CALLS = 37  # 111 credits: a payout of them never splits evenly
EXTRA: dict[str, Any] = {
    "training": {"shards": 2, "evaluation": {"holdout_pct": 15, "min_items": 5}},
    "serving": {"price_per_call": PRICE},
}
# EIP-55's own test vectors, as their owners would type them (lower and upper case).
GRACE_ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
ALAN_ADDRESS = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
ADA_ADDRESS = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"

Keys = dict[str, SigningKey]


# -- helpers ------------------------------------------------------------------------------


def leaf_at(ev: SignedEvent, index: int, log_time: str | None = None) -> Leaf:
    """``ev`` logged at ``index``, at ``log_time`` (default: when it was signed)."""
    when = log_time or ev.event["time"]
    return decode_leaf(encode_leaf(ev.data, index, when, ev.sig))


def apply(state: State, ev: SignedEvent) -> State:
    """What a verifier replaying the log does with ``ev`` as the next entry."""
    return rules.apply(state, leaf_at(ev, state.size))


def value_rows(hub: Hub) -> int:
    with hub.read() as conn:
        return int(conn.execute(select(func.count()).select_from(item_values)).scalar_one())


def refused(hub: Hub, act: Callable[[], Any], error: type[Exception], words: str) -> str:
    """``act`` raises exactly ``error`` with ``words`` in its message, and writes nothing:
    not an entry, not a checkpoint, not a projection row, not a stored value."""
    hub.refresh()
    size, checkpoint, state = hub.log.size(), hub.log.checkpoint(), hub.state
    tables, values = hub.projections(), value_rows(hub)
    with pytest.raises(CommonwealError) as caught:
        act()
    assert type(caught.value) is error, caught.value
    message = str(caught.value)
    assert words in message, message
    hub.refresh()
    assert hub.log.size() == size and hub.log.checkpoint() == checkpoint
    assert hub.state is state
    assert hub.projections() == tables and value_rows(hub) == values
    return message


# The reward options before part 7 (charter choices up to version 2): the review pool by
# verdicts that matched the consensus, and an epoch on every valuation, new work or not.
LEGACY_REWARDS: dict[str, Any] = {
    "v": 2,
    "rewards": {"review_weight": "matched", "reward_once": False},
}
MISLABELLED = 10


def build(
    directory: Path, url: str, extra: dict[str, Any] | None = None, *, mislabelled: bool = True
) -> tuple[HubClient, Keys]:
    """200 digits accepted by review (Ada gave the first 100, Grace the next; Alan and
    Grace or Ada reviewed them), and version 1 trained on them. With ``mislabelled``, Tim
    also sent 10 digits labelled wrong, which Grace and Alan rejected: their reviews told
    the community something, Ada's (she only accepted good items) nothing."""
    client, keys = community(
        directory, url, items=digit_items(0, 200), charter_extra={**EXTRA, **(extra or {})}
    )
    if mislabelled:
        wrong = [
            {**it, "label": str((int(it["label"]) + 3) % 10)}
            for it in digit_items(300, MISLABELLED)
        ]
        for it in client.contribute(keys["Tim"], wrong)["items"]:
            client.review(keys["Grace"], it["id"], "reject")
            client.review(keys["Alan"], it["id"], "reject")
        assert len(client.contributions(status="rejected")) == MISLABELLED
    assert client.embedded_hub.models.train()["version"] == 1
    return client, keys


def earn(client: HubClient, keys: Keys, calls: int = CALLS) -> int:
    """A consumer predicts ``calls`` digits on Tim's key; the hub bills them."""
    secret, _ = client.create_apikey(keys["Tim"], "Corner Shop")
    inputs = [{"image": it["image"]} for it in digit_items(0, calls)]
    assert client.predict(inputs, api_key=secret)["credits"] == calls * PRICE
    record = client.embedded_hub.models.close_revenue()
    assert record is not None
    return int(record["credits"])


def awarded(state: State, epoch: int) -> dict[str, int]:
    """Shares each member got in ``epoch``, over every pool."""
    out: Counter[str] = Counter()
    for pool in json.loads(state.epochs[epoch].awards).values():
        for member, shares in pool:
            out[member] += shares
    return dict(out)


# -- the pure arithmetic ------------------------------------------------------------------

HUB = SigningKey(b"h" * 32)


def hand_state(
    pcts: tuple[int, int, int], shares: int, values: dict[str, str], credit: dict[str, int]
) -> State:
    """A state ready for its first epoch: one valuation with ``values`` by member, and
    ``credit`` matched verdicts by reviewer. No database, no members needed."""
    charter = validate_charter(
        {
            "v": 1,  # review paid by matched verdicts, as ``credit`` gives them
            "name": "Pure Co-op",
            "rewards": {
                "shares_per_epoch": shares,
                "data_pct": pcts[0],
                "review_pct": pcts[1],
                "compute_pct": pcts[2],
                # The arithmetic of the split, on the pre-part-7 options: review weights
                # are the matched-verdict credit, and an epoch with nothing to pay is still
                # an epoch (test_part7_ownership checks the version-2 rules' arithmetic).
                **LEGACY_REWARDS["rewards"],
            },
        }
    )
    record = ValuationRecord(1, 3, 1, "knn-shapley", "{}", "", "", 0, 0, "0", canonical_str(values))
    return State(
        size=5,
        charter=charter,
        hub_key=HUB.key_id,
        valuations=Map({1: record}),
        review_credit=Map(credit),
    )


@st.composite
def epoch_inputs(draw: st.DrawFn) -> State:
    data_pct = draw(st.integers(0, 100))
    review_pct = draw(st.integers(0, 100 - data_pct))
    shares = draw(st.one_of(st.integers(1, 12), st.integers(1, 10**12)))
    members = [f"{n:02x}" * 32 for n in range(8)]
    value_text = st.one_of(
        st.floats(-1, 1, allow_nan=False).map(repr),
        st.sampled_from(["0", "-0.0", "1e-13", "5e-324", "0.25"]),
    )
    values = draw(st.dictionaries(st.sampled_from(members), value_text, max_size=6))
    credit = draw(st.dictionaries(st.sampled_from(members), st.integers(1, 500), max_size=6))
    return hand_state((data_pct, review_pct, 100 - data_pct - review_pct), shares, values, credit)


def within_one(part: int, total: int, w: int, whole: int) -> bool:
    exact = Fraction(total * w, whole)
    return exact - 1 < part < exact + 1


@settings(max_examples=150, deadline=None)
@given(state=epoch_inputs(), data=st.data())
def test_epochs_and_payouts_conserve_every_share_and_credit(
    state: State, data: st.DataObject
) -> None:
    assert state.charter is not None
    cfg = state.charter.rewards
    body = epoch_body(state)
    values = json.loads(state.valuations[1].members)
    weights = {
        "data": sorted((m, weight(v)) for m, v in values.items() if weight(v) > 0),
        "review": sorted(state.review_credit.items()),
        "compute": [],
    }
    sizes = largest_remainder(cfg.shares_per_epoch, [cfg.data_pct, cfg.review_pct, cfg.compute_pct])
    for name, size in zip(POOLS, sizes, strict=True):
        pool, w = body["pools"][name], weights[name]
        assert pool["weights"] == [list(x) for x in w]
        assert pool["amount"] == (size if w else 0)  # a pool with no one to pay is not minted
        assert sum(s for _, s in pool["awards"]) == pool["amount"]
        whole = sum(x for _, x in w)
        by_member = dict(w)
        for member, shares in pool["awards"]:
            assert shares > 0 and within_one(shares, pool["amount"], by_member[member], whole)
    minted = sum(p["amount"] for p in body["pools"].values())
    assert body["shares"] == minted and (body["epoch"], body["valuation"]) == (1, 1)

    after = apply(state, sign_event(HUB, "rewards.epoch", body, hub=None))
    assert sum(h.shares for h in after.holdings.values()) == minted
    for name in POOLS:
        assert {
            h.member: getattr(h, name) for h in after.holdings.values() if getattr(h, name)
        } == {m: s for m, s in body["pools"][name]["awards"]}
    assert not after.review_credit and after.rewarded_valuation == 1
    with pytest.raises(Conflict, match="no valuation since epoch 1"):
        epoch_body(after)

    balance = data.draw(st.integers(1, 10**9), label="balance")
    funded = after._replace(treasury=Treasury(balance=balance, revenue=balance, calls=1))
    if not minted:
        with pytest.raises(Conflict, match="no one holds shares"):
            payout_body(funded)
        return
    amount = data.draw(st.integers(1, balance), label="amount")
    paid = payout_body(funded, amount)
    assert sum(c for _, _, c in paid["parts"]) == amount and paid["shares_total"] == minted
    for member, shares, credits in paid["parts"]:
        assert shares == after.holdings[member].shares
        assert within_one(credits, amount, shares, minted)
    settled = apply(funded, sign_event(HUB, "payout.record", paid, hub=None))
    assert settled.treasury.balance == balance - amount and settled.treasury.paid == amount
    assert settled.treasury.revenue == balance
    assert sum(h.credits for h in settled.holdings.values()) == amount
    assert {m: settled.holdings[m].credits for m, _, _ in paid["parts"]} == {
        m: c for m, _, c in paid["parts"]
    }
    with pytest.raises(InvalidInput, match="1 to"):
        payout_body(funded, balance + 1)


@settings(max_examples=100, deadline=None)
@given(state=epoch_inputs(), data=st.data())
def test_moving_one_unit_between_members_is_refused(state: State, data: st.DataObject) -> None:
    """The hub's totals still add up, but one member got a unit more than the rules give."""
    body = epoch_body(state)
    paid_pools = [p for p in POOLS if len(body["pools"][p]["awards"]) >= 2]
    if paid_pools:
        forged = json.loads(json.dumps(body))
        awards = forged["pools"][data.draw(st.sampled_from(paid_pools))]["awards"]
        i, j = data.draw(st.permutations(range(len(awards))))[:2]
        awards[i][1] += 1
        awards[j][1] -= 1
        with pytest.raises(InvalidInput, match="differs from the rules' split in 'pools'"):
            apply(state, sign_event(HUB, "rewards.epoch", forged, hub=None))
    after = apply(state, sign_event(HUB, "rewards.epoch", body, hub=None))
    funded = after._replace(treasury=Treasury(balance=1000, revenue=1000, calls=1))
    if len(after.holdings) < 2:
        return
    paid = payout_body(funded, data.draw(st.integers(2, 1000)))
    forged = json.loads(json.dumps(paid))
    i, j = data.draw(st.permutations(range(len(forged["parts"]))))[:2]
    forged["parts"][i][2] += 1
    forged["parts"][j][2] -= 1
    with pytest.raises(InvalidInput, match="differs from the rules' split in 'parts'"):
        apply(funded, sign_event(HUB, "payout.record", forged, hub=None))


ITEM = Contribution("i", "m", 0, "c", "3", "CC0-1.0", "train", "in_review", "", "", 2, 2, None, 0)


@pytest.mark.parametrize(
    ("verdict", "label", "outcome", "decided", "matched"),
    [
        ("accept", None, "accepted", "3", True),
        ("accept", None, "accepted", "5", False),  # the consensus relabelled it
        ("relabel", "5", "accepted", "5", True),
        ("relabel", "7", "accepted", "5", False),
        ("relabel", "5", "rejected", None, False),
        ("reject", None, "rejected", None, True),
        ("flag", None, "rejected", None, True),
        ("reject", None, "accepted", "3", False),
        ("flag", None, "accepted", "3", False),
        ("accept", None, "rejected", None, False),
    ],
)
def test_a_verdict_matches_consensus_only_when_it_agrees_with_the_decision(
    verdict: str, label: str | None, outcome: str, decided: str | None, matched: bool
) -> None:
    v = Verdict("r", verdict, label)
    assert matched_consensus(v, ITEM, outcome, decided) is matched


# -- a whole flow, on SQLite and PostgreSQL -----------------------------------------------


@dataclass
class Flow:
    """value → epoch → revenue → two payouts → addresses → claims, with the state after
    each step (states are immutable, so holding them is free)."""

    client: HubClient
    hub: Hub
    keys: Keys
    directory: Path
    valued: dict[str, Any]
    before_epoch: State
    epoch: dict[str, Any]
    after_epoch: State
    revenue: int
    payouts: list[tuple[State, dict[str, Any], State]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory, module_databases: Databases) -> Iterator[Flow]:
    directory = tmp_path_factory.mktemp("flow")
    client, keys = build(directory / "hub", module_databases.new())
    try:
        hub = client.embedded_hub
        valued = hub.ownership.value()
        before = hub.state
        epoch = hub.ownership.close_epoch()
        f = Flow(client, hub, keys, directory / "hub", valued, before, epoch, hub.state, 0)
        f.revenue = earn(client, keys)
        for amount in (50, None):
            was = hub.state
            f.payouts.append((was, hub.ownership.pay_out(amount), hub.state))
        client.register_address(keys["Grace"], GRACE_ADDRESS.lower())
        client.register_address(keys["Alan"], ALAN_ADDRESS.upper().replace("0X", "0x"))
        f.claims.append(hub.ownership.export_claims(1))
        f.claims.append(hub.ownership.export_claims(1))  # unchanged: nothing to log
        yield f
    finally:
        client.close()


def test_shares_minted_equal_awards_and_holdings_and_payouts_split_exactly(flow: Flow) -> None:
    state, epoch = flow.after_epoch, flow.epoch
    assert flow.before_epoch.charter is not None
    cfg = flow.before_epoch.charter.rewards
    sizes = dict(zip(POOLS, largest_remainder(cfg.shares_per_epoch, [70, 20, 10]), strict=True))
    assert sizes == {"data": 700_000, "review": 200_000, "compute": 100_000}
    # The data pool pays each member's positive value in the valuation, pro rata.
    data_weights = [
        [m["member"], weight(m["value"])]
        for m in sorted(flow.valued["members"], key=lambda m: m["member"])
        if weight(m["value"]) > 0
    ]
    pools = epoch["pools"]
    assert pools["data"]["weights"] == data_weights and len(data_weights) == 2
    assert [a["shares"] for a in pools["data"]["awards"]] == largest_remainder(
        700_000, [w for _, w in data_weights]
    )
    # The review pool pays information: n x (agreement above chance) x kappa, x 10^6.
    # Grace: 100 accepts of kept items and 10 rejects of rejected ones (n=110, kappa 1,
    # chance (100^2+10^2)/110^2): 110 x 2000/12100. Alan: 200 and 10: 210 x 4000/44100.
    # Ada only accepted items that were kept: her verdicts told the community nothing.
    k = flow.keys
    review_weights = sorted([[k["Grace"].key_id, 18_181_818], [k["Alan"].key_id, 19_047_619]])
    assert pools["review"]["weights"] == review_weights
    assert {r.reviewer for r in flow.before_epoch.reviews.values()} == {
        k[n].key_id for n in ("Ada", "Grace", "Alan")
    }
    assert [a["shares"] for a in pools["review"]["awards"]] == largest_remainder(
        200_000, [w for _, w in review_weights]
    )
    # Nothing validated training work yet: the compute pool is not minted.
    assert pools["compute"] == {"amount": 0, "weights": [], "awards": []}
    assert [pools[p]["amount"] for p in POOLS] == [700_000, 200_000, 0]
    every_award = [a["shares"] for p in POOLS for a in pools[p]["awards"]]
    assert epoch["shares"] == sum(every_award) == 900_000
    assert sum(h.shares for h in state.holdings.values()) == 900_000
    for h in state.holdings.values():
        assert h.shares == h.data + h.review + h.compute == awarded(state, 1)[h.member]
    table = cap_table(state)
    assert table["total_shares"] == 900_000 and table["epochs"] == 1
    assert round(sum(r["percent"] for r in table["holders"]), 2) == 100.0

    assert flow.revenue == CALLS * PRICE
    assert [p[1]["amount"] for p in flow.payouts] == [50, flow.revenue - 50]
    for before, paid, after in flow.payouts:
        amount = paid["amount"]
        holders = sorted((h.member, h.shares) for h in before.holdings.values() if h.shares)
        assert [(p["member"], p["shares"]) for p in paid["parts"]] == holders
        assert [p["credits"] for p in paid["parts"]] == largest_remainder(
            amount, [s for _, s in holders]
        )
        assert sum(p["credits"] for p in paid["parts"]) == amount == paid["amount"]
        assert after.treasury.balance == before.treasury.balance - amount == paid["balance"]
        assert after.treasury.paid == before.treasury.paid + amount
        for p in paid["parts"]:
            m = p["member"]
            assert after.holdings[m].credits == before.holdings[m].credits + p["credits"]
    final = flow.payouts[-1][2]
    assert final.treasury.balance == 0 and final.treasury.paid == final.treasury.revenue
    assert sum(h.credits for h in final.holdings.values()) == flow.revenue
    # What the database shows is the same.
    rows = flow.hub.projections()
    assert rows["treasury"][0]["paid"] == flow.revenue and rows["treasury"][0]["balance"] == 0
    assert {r["member"]: r["credits"] for r in rows["holdings"] if r["credits"]} == {
        h.member: h.credits for h in final.holdings.values() if h.credits
    }
    grace = statement(flow.hub.state, flow.keys["Grace"].key_id)
    assert grace["shares"] == final.holdings[flow.keys["Grace"].key_id].shares
    assert sum(p["credits"] for p in grace["payouts"]) == grace["credits"] > 0
    assert [e["epoch"] for e in grace["epochs"]] == [1]


def test_claims_cover_members_with_an_address_and_every_proof_verifies(flow: Flow) -> None:
    state = flow.hub.state
    first, again = flow.claims
    doc = first["document"]
    grace, alan = (flow.keys[n].key_id for n in ("Grace", "Alan"))
    shares = awarded(state, 1)
    # Ada was awarded shares too, but registered no address: she has no claim.
    assert flow.keys["Ada"].key_id in shares
    assert doc["claims"].keys() == {GRACE_ADDRESS, ALAN_ADDRESS}
    assert int(doc["claims"][GRACE_ADDRESS]["amount"], 16) == shares[grace]
    assert int(doc["claims"][ALAN_ADDRESS]["amount"], 16) == shares[alan]
    assert int(doc["tokenTotal"], 16) == shares[grace] + shares[alan]
    for account, c in doc["claims"].items():
        amount = int(c["amount"], 16)
        assert claims.verify_proof(doc["merkleRoot"], c["index"], account, amount, c["proof"])
        assert not claims.verify_proof(
            doc["merkleRoot"], c["index"], account, amount + 1, c["proof"]
        )
    # The root is logged once; exporting the same claims again logs nothing.
    assert first["entry"] is not None and again["entry"] is None
    assert again["document"] == doc
    logged = flow.hub.log.entries(first["entry"], first["entry"] + 1)[0]
    assert logged.kind == "rewards.claims" and logged.body == {
        "epoch": 1,
        "format": "merkle-distributor",
        "root": doc["merkleRoot"],
        "token_total": doc["tokenTotal"],
        "claims": 2,
    }
    assert state.epochs[1].claims_root == doc["merkleRoot"]
    assert [e["claims_root"] for e in flow.client.epochs()] == [doc["merkleRoot"]]
    kinds = [lf.kind for lf in flow.hub.log.entries(first["entry"], None)]
    assert kinds == ["rewards.claims"]


def test_verify_passes_and_names_the_valuation_whose_stored_value_was_altered(
    flow: Flow,
) -> None:
    hub = flow.hub
    report = verify_hub(hub)
    assert any("stored values of 1 valuation(s) match" in c for c in report.checks)
    record = hub.state.valuations[1]
    with hub.read() as conn:
        item, was = conn.execute(
            select(item_values.c.item, item_values.c.value).order_by(item_values.c.item).limit(1)
        ).one()
    try:
        with write_connection(hub.engine) as conn:
            conn.execute(update(item_values).where(item_values.c.item == item).values(value="0.5"))
        with pytest.raises(VerificationFailed, match="stored values of valuation 1") as caught:
            verify_hub(hub)
        assert caught.value.index == record.entry
    finally:
        with write_connection(hub.engine) as conn:
            conn.execute(update(item_values).where(item_values.c.item == item).values(value=was))
    assert verify_hub(hub).size == hub.log.size()


# The treasury as schema 2 made it (before payouts added ``paid``).
V2 = MetaData()
TREASURY_V2 = Table(
    "treasury",
    V2,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("balance", BigInteger, nullable=False),
    Column("revenue", BigInteger, nullable=False),
    Column("calls", BigInteger, nullable=False),
    Column("updated_index", BigInteger, nullable=False),
)


def test_a_version_2_hub_is_upgraded_and_its_ownership_rebuilt_from_the_log(flow: Flow) -> None:
    """Schema 3 (part 4) added the ownership projections and ``treasury.paid``; the stored
    values (not derivable from the log) are kept. Opening the hub recreates and refills."""
    hub = flow.hub
    before = hub.projections()
    with write_connection(hub.engine) as conn:
        for table in (valuations, holdings, epochs, payouts, treasury):
            table.drop(conn)
        TREASURY_V2.create(conn)
        conn.execute(
            TREASURY_V2.insert().values(id=1, balance=0, revenue=0, calls=0, updated_index=0)
        )
        conn.execute(update(schema_info).values(version=2))
    again = Hub.open(flow.directory)
    try:
        with again.read() as conn:
            assert conn.execute(select(schema_info.c.version)).scalar_one() == SCHEMA_VERSION == 6
        after = again.projections()
        for name in ("valuations", "holdings", "epochs", "payouts", "treasury"):
            assert after[name] == before[name] and after[name], name
        assert after["treasury"][0]["paid"] == flow.revenue
        report = verify_hub(again)
        assert any("stored values of 1 valuation(s)" in c for c in report.checks)
    finally:
        again.close()


# -- one community, copied for each test that appends -------------------------------------


@pytest.fixture(scope="module")
def base(
    tmp_path_factory: pytest.TempPathFactory, module_databases: Databases
) -> tuple[Path, Keys]:
    directory = tmp_path_factory.mktemp("base") / "hub"
    client, keys = build(directory, module_databases.new())
    client.close()
    return directory, keys


@pytest.fixture
def fresh(base: tuple[Path, Keys], tmp_path: Path) -> Iterator[tuple[HubClient, Keys]]:
    """A copy of the base community (version 1 trained, nothing valued) to append to."""
    with copied_hub(base[0], tmp_path / "hub") as directory, HubClient(str(directory)) as client:
        yield client, base[1]


def test_review_credit_counts_matched_verdicts_and_each_epoch_pays_them_once(
    tmp_path: Path, database_url: str
) -> None:
    # Matched-verdict credit and an epoch per valuation are the pre-part-7 options, still
    # charter choices: this community chooses them (test_part7_ownership: the defaults).
    client, keys = build(tmp_path / "hub", database_url, LEGACY_REWARDS, mislabelled=False)
    try:
        _matched_verdicts_are_paid_once(client, keys)
    finally:
        client.close()


def _matched_verdicts_are_paid_once(client: HubClient, keys: Keys) -> None:
    hub = client.embedded_hub
    ada, grace, alan = (keys[n] for n in ("Ada", "Grace", "Alan"))
    new = client.contribute(keys["Tim"], digit_items(200, 7))["items"]
    assert [c["status"] for c in new] == ["in_review"] * 7
    a, b, c, d, e, f, g = (it["id"] for it in new)
    label = {it: hub.state.contributions[it].label for it in (a, b, c, d, e, f, g)}

    def other(item: str) -> str:
        return str((int(label[item]) + 1) % 10)

    # Before the epoch: one review of F (it waits for its second), one of G, withdrawn.
    client.review(ada, f, "accept")
    client.review(ada, g, "accept")
    client.withdraw(keys["Tim"], [g])
    # Every decided review so far accepted an accepted item: each one is credited.
    decided = Counter(
        r.reviewer
        for r in hub.state.reviews.values()
        if hub.state.contributions[r.item].status == "accepted"
    )
    assert dict(hub.state.review_credit) == dict(decided)
    hub.ownership.value()
    first = hub.ownership.close_epoch()
    assert first["pools"]["review"]["weights"] == [[m, n] for m, n in sorted(decided.items())]
    assert not hub.state.review_credit

    client.review(ada, a, "accept")
    client.review(grace, a, "accept")  # accepted as given: both match
    client.review(ada, b, "relabel", label=other(b))
    client.review(grace, b, "relabel", label=other(b))  # accepted relabelled: both match
    client.review(ada, c, "reject")
    client.review(grace, c, "accept")  # a tie rejects: only the reject matches
    client.review(ada, d, "flag", reason="not a digit")
    client.review(alan, d, "reject")  # rejected: a flag matches like a reject
    client.review(ada, e, "accept")
    client.review(alan, e, "relabel", label=other(e))  # rejected: neither matches
    client.review(grace, f, "accept")  # F's first review came before the epoch: still paid
    s = hub.state.contributions
    assert (s[a].status, s[a].decided_label) == ("accepted", label[a])
    assert (s[b].status, s[b].decided_label) == ("accepted", other(b))
    assert [s[x].status for x in (c, d, e, f, g)] == [
        "rejected",
        "rejected",
        "rejected",
        "accepted",
        "withdrawn",
    ]
    credit = {ada.key_id: 5, grace.key_id: 3, alan.key_id: 1}  # A B C D F / A B F / D
    assert dict(hub.state.review_credit) == credit
    refused(
        hub, lambda: hub.ownership.close_epoch(), Conflict, "value the latest model version first"
    )

    hub.ownership.value(version=1)  # a second valuation of the same version
    second = hub.ownership.close_epoch()
    review = second["pools"]["review"]
    assert review["weights"] == [[m, n] for m, n in sorted(credit.items())]
    assert [a["shares"] for a in review["awards"]] == largest_remainder(
        200_000, [n for _, n in sorted(credit.items())]
    )
    # knn-shapley is exact: the same version's data pool pays the same again.
    assert second["pools"]["data"] == first["pools"]["data"]
    total = sum(h.shares for h in hub.state.holdings.values())
    assert total == first["shares"] + second["shares"] == 1_800_000
    assert verify_hub(hub).size == hub.log.size()


def test_what_cannot_be_done_yet_is_refused_and_writes_nothing(
    fresh: tuple[HubClient, Keys],
) -> None:
    client, keys = fresh
    hub = client.embedded_hub
    refused(hub, lambda: hub.ownership.close_epoch(), Conflict, "run `commonweal value` first")
    refused(hub, lambda: hub.ownership.pay_out(), Conflict, "the treasury is empty")
    refused(hub, lambda: hub.ownership.export_claims(1), NotFound, "there is no reward epoch 1")
    balance = earn(client, keys)
    refused(hub, lambda: hub.ownership.pay_out(), Conflict, "close a reward epoch first")

    hub.ownership.value()
    hub.ownership.close_epoch()
    refused(hub, lambda: hub.ownership.close_epoch(), Conflict, "no valuation since epoch 1")
    refused(hub, lambda: hub.ownership.export_claims(2), NotFound, "there is no reward epoch 2")
    refused(hub, lambda: hub.ownership.export_claims(1), Conflict, "commonweal member address")
    refused(
        hub, lambda: hub.ownership.pay_out(balance + 1), InvalidInput, f"1 to {balance} credits"
    )
    refused(hub, lambda: hub.ownership.pay_out(0), InvalidInput, f"1 to {balance} credits")
    assert hub.ownership.pay_out(balance)["balance"] == 0
    refused(hub, lambda: hub.ownership.pay_out(), Conflict, "the treasury is empty")

    # Ada withdraws an item version 1 trained on: its content is erased, so version 1
    # can no longer be valued (the values would need the data).
    ada = keys["Ada"].key_id
    gone = next(i for i in hub.models.manifest_ids(1) if hub.state.contributions[i].member == ada)
    client.withdraw(keys["Ada"], [gone])
    message = refused(hub, lambda: hub.ownership.value(version=1), Conflict, "withdrawn")
    assert "version 1 cannot be valued" in message and gone in message
    assert "commonweal train --incremental" in message
    # Doing what it says works: version 2 leaves the item out and is valued.
    assert hub.models.train(incremental=True)["version"] == 2
    assert hub.ownership.value()["model"] == 2


def _shift(pairs: list[list[Any]], at: int) -> None:
    """One more unit to the first, one less to the second: the total is unchanged."""
    pairs[0][at] += 1
    pairs[1][at] -= 1


def test_a_split_other_than_the_rules_is_refused_on_the_hubs_write_path(
    fresh: tuple[HubClient, Keys],
) -> None:
    client, keys = fresh
    hub = client.embedded_hub
    hub.ownership.value()

    state = hub.state
    body = epoch_body(state)
    forged = json.loads(json.dumps(body))
    _shift(forged["pools"]["data"]["awards"], 1)
    ev = hub.sign("rewards.epoch", forged)
    with pytest.raises(InvalidInput, match=r"^rewards\.epoch: the epoch differs .* in 'pools'"):
        apply(state, ev)
    refused(hub, lambda: hub.append([ev]), InvalidInput, "differs from the rules' split")
    by_founder = sign_event(keys["Ada"], "rewards.epoch", body, hub=hub.origin)
    refused(hub, lambda: hub.append([by_founder]), Forbidden, "only the hub")
    assert apply(state, hub.sign("rewards.epoch", body)).epochs[1].minted == body["shares"]
    hub.ownership.close_epoch()

    earn(client, keys)
    state = hub.state
    paid = payout_body(state, 100)
    forged = json.loads(json.dumps(paid))
    _shift(forged["parts"], 2)
    ev = hub.sign("payout.record", forged)
    with pytest.raises(InvalidInput, match=r"^payout\.record: the payout differs .* in 'parts'"):
        apply(state, ev)
    refused(hub, lambda: hub.append([ev]), InvalidInput, "differs from the rules' split")
    more = {**paid, "shares_total": paid["shares_total"] + 1}
    refused(hub, lambda: hub.append([hub.sign("payout.record", more)]), InvalidInput, "differs")

    client.register_address(keys["Grace"], GRACE_ADDRESS)
    client.register_address(keys["Alan"], ALAN_ADDRESS)
    state = hub.state
    balances = ownership.claim_balances(state, 1)
    honest = claims.distributor(balances)
    grace, alan = balances[GRACE_ADDRESS], balances[ALAN_ADDRESS]
    other = claims.distributor({GRACE_ADDRESS: grace + 1, ALAN_ADDRESS: alan - 1})
    assert other["tokenTotal"] == honest["tokenTotal"]
    forged_claims = {
        "epoch": 1,
        "format": "merkle-distributor",
        "root": other["merkleRoot"],
        "token_total": honest["tokenTotal"],
        "claims": 2,
    }
    ev = hub.sign("rewards.claims", forged_claims)
    with pytest.raises(InvalidInput, match=r"^rewards\.claims: the claims differ .* in 'root'"):
        apply(state, ev)
    refused(hub, lambda: hub.append([ev]), InvalidInput, "the claims differ")
    good = {**forged_claims, "root": honest["merkleRoot"]}
    assert apply(state, hub.sign("rewards.claims", good)).epochs[1].claims_root == good["root"]


VALUATION_LIES: list[tuple[str, Callable[[dict[str, Any]], None], type[Exception], str]] = [
    (
        "another evaluation set",
        lambda b: b["evaluation"].update(root="ee" * 32),
        InvalidInput,
        "evaluation set",
    ),
    (
        "fewer values",
        lambda b: b["values"].update(count=b["values"]["count"] - 1),
        InvalidInput,
        "values must be",
    ),
    ("other parameters", lambda b: b["params"].update(k=7), InvalidInput, "parameters"),
    ("another method", lambda b: b.update(method="tmc-shapley"), InvalidInput, "method"),
    (
        "an item more",
        lambda b: b["members"][0].update(items=b["members"][0]["items"] + 1),
        InvalidInput,
        "add up",
    ),
    ("members unsorted", lambda b: b["members"].reverse(), InvalidInput, "sorted"),
    (
        "a stranger",
        lambda b: b["members"][0].update(member="ab" * 32),
        InvalidInput,
        "not a member",
    ),
    (
        "negatives miscounted",
        lambda b: b.update(negative=b["negative"] + 1),
        InvalidInput,
        "negative",
    ),
    ("a number skipped", lambda b: b.update(valuation=3), Conflict, "next valuation is 2"),
    ("no such version", lambda b: b.update(model=9), NotFound, "no model version 9"),
]


def test_a_valuation_the_rules_can_check_is_refused_when_it_lies(
    fresh: tuple[HubClient, Keys],
) -> None:
    client, keys = fresh
    hub = client.embedded_hub
    done = hub.ownership.value()
    logged = hub.log.entries(done["entry"], done["entry"] + 1)[0].body
    again = {**logged, "valuation": 2}  # the same values logged again: the rules allow it
    state = hub.state
    assert apply(state, hub.sign("valuation.record", again)).valuations[2].model == 1
    for case, lie, error, words in VALUATION_LIES:
        body = json.loads(json.dumps(again))
        lie(body)
        ev = hub.sign("valuation.record", body)
        with pytest.raises(error, match=r"^valuation\.record: ") as caught:
            apply(state, ev)
        assert words in str(caught.value), case
        refused(hub, partial(hub.append, [ev]), error, words)
    by_member = sign_event(keys["Grace"], "valuation.record", again, hub=hub.origin)
    refused(hub, lambda: hub.append([by_member]), Forbidden, "only the hub")


# How a dishonest hub logs what the rules do not give: it patches the rules it runs
# (and its own builders), so its write path accepts its lie. A verifier replays the log
# with the real rules.


def _dishonest_epoch(real: Callable[[State], dict[str, Any]]) -> Any:
    def lie(state: State) -> dict[str, Any]:
        body = real(state)
        _shift(body["pools"]["data"]["awards"], 1)
        return body

    return lie


def _dishonest_payout(real: Callable[[State, int | None], dict[str, Any]]) -> Any:
    def lie(state: State, amount: int | None = None) -> dict[str, Any]:
        body = real(state, amount)
        _shift(body["parts"], 2)
        return body

    return lie


def _dishonest_claims(real: Callable[[dict[str, int]], dict[str, Any]]) -> Any:
    def lie(balances: dict[str, int]) -> dict[str, Any]:
        first, second = sorted(balances)[:2]
        return real({**balances, first: balances[first] + 1, second: balances[second] - 1})

    return lie


def _lie(kind: str, hub: Hub, m: pytest.MonkeyPatch) -> None:
    import commonweal.hub.rewards as shell

    if kind == "rewards.epoch":
        lie = _dishonest_epoch(ownership.epoch_body)
        m.setattr(ownership, "epoch_body", lie)
        m.setattr(shell, "epoch_body", lie)
    elif kind == "payout.record":
        lie = _dishonest_payout(ownership.payout_body)
        m.setattr(ownership, "payout_body", lie)
        m.setattr(shell, "payout_body", lie)
    elif kind == "rewards.claims":
        lie = _dishonest_claims(claims.distributor)
        m.setattr(claims, "distributor", lie)
        m.setattr(shell, "distributor", lie)
    else:  # valuation.record: a tenth of Ada's value is logged as Grace's
        sign = hub.sign

        def signed(what: str, body: dict[str, Any]) -> SignedEvent:
            if what == kind:
                body = json.loads(json.dumps(body))
                first, second = body["members"][:2]
                first["value"] = repr(float(first["value"]) - 0.1)
                second["value"] = repr(float(second["value"]) + 0.1)
            return sign(what, body)

        m.setattr(hub, "sign", signed)


@pytest.mark.parametrize(
    "kind", ["rewards.epoch", "payout.record", "rewards.claims", "valuation.record"]
)
def test_a_hub_that_bypasses_the_rules_is_caught_by_verify(
    fresh: tuple[HubClient, Keys], kind: str
) -> None:
    client, keys = fresh
    hub = client.embedded_hub
    client.register_address(keys["Ada"], ADA_ADDRESS)
    client.register_address(keys["Grace"], GRACE_ADDRESS)
    entries: dict[str, int] = {}
    with pytest.MonkeyPatch.context() as m:
        _lie(kind, hub, m)
        entries["valuation.record"] = hub.ownership.value()["entry"]
        entries["rewards.epoch"] = hub.ownership.close_epoch()["entry"]
        earn(client, keys)
        entries["payout.record"] = hub.ownership.pay_out()["entry"]
        entries["rewards.claims"] = hub.ownership.export_claims(1)["entry"]
    leaves = [decode_leaf(b) for b in hub.log.leaf_bytes(0, hub.log.size())]
    entry = entries[kind]
    assert leaves[entry].kind == kind
    if kind == "valuation.record":
        # The rules cannot see values; the stored ones do not add up to the logged totals.
        rules.replay(leaves)
        with pytest.raises(VerificationFailed, match="valuation 1 do not add up") as caught:
            verify_hub(hub)
    else:
        with pytest.raises(InvalidInput, match="differ"):
            rules.replay(leaves)
        with pytest.raises(
            VerificationFailed, match=rf"entry {entry}: the rules refuse it: {kind}: .* differ"
        ) as caught:
            verify_hub(hub)
    assert caught.value.index == entry


@pytest.mark.parametrize("lie", ["total", "items", "negative"])
def test_a_valuation_whose_counts_or_total_differ_from_the_stored_values_fails_verify(
    fresh: tuple[HubClient, Keys], lie: str
) -> None:
    client, _ = fresh
    hub = client.embedded_hub
    sign = hub.sign

    def signed(what: str, body: dict[str, Any]) -> SignedEvent:
        if what == "valuation.record":
            body = json.loads(json.dumps(body))
            # Take from the member with the most, so the count stays a valid one.
            # (for items: one that keeps at least one, and no fewer than its negative ones)
            can_give = [
                m
                for m in body["members"]
                if lie != "items" or m["items"] - 1 >= max(1, m["negative"])
            ]
            second = max(can_give, key=lambda m: m[lie] if lie != "total" else 0)
            # ... and give it to one that can take it (a member whose every item is of
            # negative value has no room for one more).
            first = next(
                m for m in body["members"] if m is not second and m["negative"] < m["items"]
            )
            if lie == "total":
                body["total"] = repr(float(body["total"]) + 1)
            elif second[lie] == 0:  # no negative item in this draw: claim one more, in all
                first[lie] += 1
                body[lie] += 1
            else:  # moved between members: the rules' sums still agree
                first[lie] += 1
                second[lie] -= 1
        return sign(what, body)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(hub, "sign", signed)
        entry = hub.ownership.value()["entry"]
    with pytest.raises(VerificationFailed, match="valuation 1") as caught:
        verify_hub(hub)
    assert caught.value.index == entry


def test_members_register_one_checksummed_address_each(fresh: tuple[HubClient, Keys]) -> None:
    client, keys = fresh
    hub = client.embedded_hub
    grace, alan = keys["Grace"], keys["Alan"]

    def register(key: SigningKey, address: Any) -> Callable[[], Any]:
        return lambda: client.submit([client.sign(key, "member.address", {"address": address})])

    for bad in (
        "0x123",
        GRACE_ADDRESS[2:],
        GRACE_ADDRESS.replace("a", "A", 1),  # a mixed-case spelling with a wrong checksum
        GRACE_ADDRESS + "0",
        "0x" + "g" * 40,
    ):
        refused(hub, register(grace, bad), InvalidInput, "member.address: ")
    refused(hub, register(grace, 12), InvalidInput, "must be a str")
    refused(hub, register(SigningKey(b"s" * 32), GRACE_ADDRESS), UnknownMember, "join first")

    client.register_address(grace, GRACE_ADDRESS.lower())
    assert hub.state.holdings[grace.key_id].address == GRACE_ADDRESS
    assert hub.ownership.statement(grace.key_id)["address"] == GRACE_ADDRESS
    rows = {r["member"]: r for r in hub.projections()["holdings"]}
    assert rows[grace.key_id]["address"] == GRACE_ADDRESS and rows[grace.key_id]["shares"] == 0
    # Another spelling of the same address is the same address.
    upper = "0x" + GRACE_ADDRESS[2:].upper()
    refused(hub, register(alan, upper), Conflict, "another member registered that address")
    client.register_address(grace, GRACE_ADDRESS)  # her own again: fine
    client.register_address(grace, ALAN_ADDRESS)  # she moves to another address...
    client.register_address(alan, GRACE_ADDRESS)  # ...and the old one is free
    assert hub.state.holdings[alan.key_id].address == GRACE_ADDRESS
    assert hub.state.holdings[grace.key_id].address == ALAN_ADDRESS
    assert verify_hub(hub).size == hub.log.size()


def test_shares_are_not_transferable_unless_the_charter_says_so(
    fresh: tuple[HubClient, Keys],
) -> None:
    client, keys = fresh
    hub = client.embedded_hub
    hub.ownership.value()
    hub.ownership.close_epoch()
    ada = keys["Ada"]
    assert (
        hub.state.holdings[ada.key_id].shares > 0 and not hub.ownership.cap_table()["transferable"]
    )
    refused(
        hub,
        lambda: client.transfer_shares(ada, keys["Tim"].key_id, 1),
        Forbidden,
        "not transferable under this charter",
    )


def test_transferable_shares_move_between_members_and_totals_stay(
    tmp_path: Path, database_url: str
) -> None:
    client, keys = build(tmp_path / "hub", database_url, {"rewards": {"transferable": True}})
    try:
        hub = client.embedded_hub
        hub.ownership.value()
        hub.ownership.close_epoch()
        ada, tim, grace = keys["Ada"], keys["Tim"], keys["Grace"]
        before = hub.state.holdings
        total = sum(h.shares for h in before.values())
        held = before[ada.key_id].shares
        assert hub.ownership.cap_table()["transferable"] and tim.key_id not in before

        client.transfer_shares(ada, tim.key_id, 1000)
        after = hub.state.holdings
        assert after[ada.key_id].shares == held - 1000 and after[tim.key_id].shares == 1000
        assert sum(h.shares for h in after.values()) == total
        # What each member earned does not move with the shares.
        assert after[ada.key_id]._replace(shares=0, updated_index=0) == before[ada.key_id]._replace(
            shares=0, updated_index=0
        )
        assert (after[tim.key_id].data, after[tim.key_id].review) == (0, 0)

        def give(key: SigningKey, to: str, shares: int) -> Callable[[], Any]:
            return lambda: client.transfer_shares(key, to, shares)

        refused(hub, give(tim, ada.key_id, 1001), Conflict, "you hold 1000 shares")
        refused(hub, give(tim, ada.key_id, 0), Conflict, "you hold 1000 shares")
        refused(hub, give(keys["Alan"], tim.key_id, 10**9), Conflict, "transfer 1 to")
        refused(hub, give(tim, tim.key_id, 1), InvalidInput, "goes to another member")
        refused(hub, give(tim, "ab" * 32, 1), InvalidInput, "must be an active member")

        # A payout follows the shares held at its entry.
        credits = earn(client, keys)
        paid = {p["member"]: p for p in hub.ownership.pay_out()["parts"]}
        assert paid[tim.key_id]["shares"] == 1000
        assert sum(p["credits"] for p in paid.values()) == credits
        assert hub.ownership.statement(grace.key_id)["shares"] == paid[grace.key_id]["shares"]
        assert verify_hub(hub).size == hub.log.size()
    finally:
        client.close()


# -- the command line ---------------------------------------------------------------------


def test_value_reward_claim_and_pay_from_the_command_line(
    base: tuple[Path, Keys], tmp_path: Path
) -> None:
    with copied_hub(base[0], tmp_path / "hub") as hub:
        keys = base[1]
        with HubClient(str(hub)) as client:
            credits = earn(client, keys)
        grace_key = tmp_path / "grace.key"
        keys["Grace"].save(grace_key, name="Grace")
        grace = keys["Grace"].key_id

        early = cw("rewards", "close-epoch", "--hub", hub, ok=False)
        assert early.returncode == 1 and "commonweal value" in early.stderr

        valued = cwj("value", "--hub", hub, "--out", tmp_path / "values.csv")
        assert (valued["valuation"], valued["model"], valued["method"]) == (1, 1, "knn-shapley")
        with (tmp_path / "values.csv").open() as f:
            written = list(csv.reader(f))
        assert written[0] == ["item", "member", "value"]
        assert len(written) - 1 == valued["values"]["count"]
        assert sum(float(r[2]) for r in written[1:]) == pytest.approx(float(valued["total"]))
        listed = list(csv.reader(io.StringIO(cw("values", "--hub", hub).stdout)))
        assert listed == written

        epoch = cwj("rewards", "close-epoch", "--hub", hub)
        assert (epoch["epoch"], epoch["valuation"], epoch["shares"]) == (1, 1, 900_000)
        mine = sum(
            a["shares"]
            for p in epoch["pools"].values()
            for a in p["awards"]
            if a["name"] == "Grace"
        )
        assert mine > 0

        cwj("member", "address", GRACE_ADDRESS.lower(), "--hub", hub, "--key", grace_key)
        out = tmp_path / "claims.json"
        exported = cwj("rewards", "export-claims", "--hub", hub, "--epoch", "1", "--out", out)
        doc = json.loads(out.read_text())
        assert stat.S_IMODE(out.stat().st_mode) == 0o600  # members' addresses: written private
        assert exported["merkleRoot"] == doc["merkleRoot"] and exported["entry"] is not None
        assert list(doc["claims"]) == [GRACE_ADDRESS]
        c = doc["claims"][GRACE_ADDRESS]
        assert int(c["amount"], 16) == mine
        assert claims.verify_proof(doc["merkleRoot"], c["index"], GRACE_ADDRESS, mine, c["proof"])
        unknown = cw("rewards", "export-claims", "--hub", hub, "--epoch", "2", ok=False)
        assert unknown.returncode == 1 and "no reward epoch 2" in unknown.stderr

        table = cwj("shares", "--hub", hub)
        assert table["total_shares"] == 900_000 and table["treasury"]["balance"] == credits
        paid = cwj("payout", "--hub", hub)
        assert paid["amount"] == credits and paid["balance"] == 0
        assert sum(p["credits"] for p in paid["parts"]) == credits
        mine_paid = next(p["credits"] for p in paid["parts"] if p["member"] == grace)

        account = cwj("statement", "--hub", hub, "--key", grace_key)
        assert (account["name"], account["address"]) == ("Grace", GRACE_ADDRESS)
        assert account["epochs"][0]["shares"] == mine and account["credits"] == mine_paid
        assert cwj("shares", "--hub", hub)["treasury"]["paid"] == credits
        assert cwj("ledger", "verify", "--hub", hub)["ok"]
