"""``commonweal value``: each contribution's worth on the version it trained, and fairness.

The values are recomputed outside the hub from the items and the logged parameters; the
fairness community has members who flip labels and one who sends every item three times,
and checks that they earn less than their share of the data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonweal.client import HubClient
from commonweal.community.charter import validate_charter
from commonweal.community.valuations import values_root
from commonweal.errors import CharterInvalid
from commonweal.hub import Hub
from commonweal.hub.training import item_arrays
from commonweal.hub.valuation import credit_of
from commonweal.ledger.keys import SigningKey
from commonweal.ml.knn_shapley import knn_shapley
from commonweal.verify import verify_hub
from tests.kit import Databases, accept_all, community, digit_items, text_items

FLIPPERS = ("M1", "M2")
TRIPLICATOR = "M3"


def fair_community(directory: Path, database: str) -> Hub:
    """Ten members with 100 digits each: two flip every label, one sends each of their
    items three times (the charter flags exact copies instead of refusing them, so the
    copies reach training). Lax reviewers accept everything as labelled."""
    # Version 1: the copies are credited to whoever sent them, as the fairness bounds
    # below were set for (part 7 credits a copy to its original; see test_part7_rules).
    charter = validate_charter(
        {
            "v": 1,
            "name": "Fair Co-op",
            "task": {
                "kind": "image-classification",
                "labels": [str(d) for d in range(10)],
                "image_width": 8,
                "image_height": 8,
            },
            "review": {"reviews_needed": 2, "newcomer_reviews_needed": 2, "consensus": "majority"},
            "duplicates": {"exact": "flag", "near": "flag"},
            "limits": {"max_item_bytes": 4096},
        }
    )
    hub, founder = Hub.init(directory, charter=charter, founder_name="M0", database=database)
    hub.close()
    keys = {"M0": founder}
    with HubClient(str(directory)) as c:
        for n in range(1, 10):
            keys[f"M{n}"] = SigningKey.generate()
            c.join(keys[f"M{n}"], f"M{n}")
        items = digit_items(0, 1000)
        for n, name in enumerate(keys):
            mine = items[n * 100 : (n + 1) * 100]
            if name in FLIPPERS:
                mine = [{**it, "label": str((int(it["label"]) + 1) % 10)} for it in mine]
            for _ in range(3 if name == TRIPLICATOR else 1):
                c.contribute(keys[name], mine)
        accept_all(c, keys)
    return Hub.open(directory)


@pytest.fixture(scope="module")
def fair(tmp_path_factory: pytest.TempPathFactory, module_databases: Databases) -> Any:
    d = tmp_path_factory.mktemp("fair")
    hub = fair_community(d, module_databases.new())
    hub.models.train()
    report = hub.ownership.value()
    yield hub, report
    hub.close()


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in report["members"]}


def test_flippers_and_the_triplicator_earn_less_than_their_share(fair: Any) -> None:
    hub, report = fair
    members = by_name(report)
    bad = [*FLIPPERS, TRIPLICATOR]
    items_pct = sum(members[n]["items_pct"] for n in bad)
    value_pct = sum(members[n]["value_pct"] for n in bad)
    # They gave about 42% of the items the model trained on; together they earn far less.
    assert items_pct > 40
    # Measured 0.25-0.55 of their share over 42 evaluation draws.
    assert value_pct < 0.8 * items_pct
    # Flipped labels are mostly worth less than nothing, and flagged where they hide.
    # (The evaluation draw is random, and flipped items that land in it reward the flipped
    # items in training: in most draws a flipper earns nothing, in a few up to about a
    # fair share — together the two stay below theirs.)
    flipped_items = sum(members[n]["items_pct"] for n in FLIPPERS)
    assert sum(members[n]["value_pct"] for n in FLIPPERS) < flipped_items
    for name in FLIPPERS:
        m = members[name]
        assert m["negative"] > m["items"] / 4  # measured at least a third
    honest = sorted(float(m["value"]) for n, m in members.items() if n not in bad)
    # Three copies earn what one honest member's data does, not three times it. Measured
    # 0.83-1.53 times the honest median over about 60 evaluation draws (the draw is random:
    # when more of its originals land in training, one member's data is worth more); a
    # member paid for its copies would be near 3, so the bound sits between the two.
    assert float(members[TRIPLICATOR]["value"]) < 2 * honest[len(honest) // 2]
    # About two in three of its training items are later copies (some went to evaluation).
    assert report["details"]["training_copies_valued_zero"] >= 120
    # Every honest member earns a positive share.
    assert all(v > 0 for v in honest)

    # The flags reached the log: reviewers see where to look.
    flagged = {
        c.id for c in hub.state.contributions.values() if "negative-value" in c.flags.split(",")
    }
    assert {f["item"] for f in report["flagged"]} <= flagged
    assert len(flagged) == report["negative"]
    # Reviewers list them by flag; a flag matches whole ("duplicate" is not
    # "near-duplicate").
    listed = hub.data.contributions(flag="negative-value", limit=10**6)
    assert {c["id"] for c in listed} == flagged
    dup = {c["id"] for c in hub.data.contributions(flag="duplicate", limit=10**6)}
    assert dup and all(
        "duplicate" in c.flags.split(",") for i, c in hub.state.contributions.items() if i in dup
    )
    assert not hub.data.contributions(flag="negative_value")  # _ is not a wildcard

    # And the reward epoch pays the data pool accordingly.
    epoch = hub.ownership.close_epoch()
    paid = {a["name"]: a["shares"] for a in epoch["pools"]["data"]["awards"]}
    honest_paid = sorted(v for n, v in paid.items() if n not in bad)
    assert sum(paid.get(n, 0) for n in FLIPPERS) < 2 * honest_paid[len(honest_paid) // 2]
    assert sum(paid.values()) == epoch["pools"]["data"]["amount"]
    assert paid[TRIPLICATOR] < 2 * sorted(paid.values())[len(paid) // 2]


def test_values_are_knn_shapley_recomputed_outside_the_hub(fair: Any) -> None:
    """Anyone with the data gets the logged values from the items and the parameters."""
    hub, report = fair
    number = report["valuation"]
    state = hub.state
    ids = hub.models.manifest_ids(report["model"])
    X, y = item_arrays(hub, state, ids)
    Xe, ye = item_arrays(hub, state, hub.models.evaluation_ids(report["model"]))
    # The method's copy rule: first contributed copy (batch, then id) of features+label.
    seen: set[bytes] = set()
    first = np.zeros(len(ids), dtype=bool)
    for i in sorted(
        range(len(ids)), key=lambda i: (state.contributions[ids[i]].batch_index, ids[i])
    ):
        key = X[i].tobytes() + y[i].encode()
        first[i] = key not in seen
        seen.add(key)
    train_rows = {X[i].tobytes() for i in np.flatnonzero(first)}
    keep = np.array([row.tobytes() not in train_rows for row in Xe])
    expected = np.zeros(len(ids))
    expected[first] = knn_shapley(X[first], y[first], Xe[keep], ye[keep], k=5)

    stored = hub.ownership.stored_values(number)
    assert [r[0] for r in stored] == ids
    assert [r[2] for r in stored] == [repr(float(v)) for v in expected]
    record = state.valuations[number]
    assert values_root(stored) == record.values_root
    # Efficiency: the values add up to the KNN classifier's accuracy over the scoring set
    # (the utility of all the data, less that of none, which is 0).
    assert math.isclose(float(report["total"]), float(expected.sum()), abs_tol=1e-12)
    assert 0.5 < float(report["total"]) <= 1.0
    # The members' totals in the log are the sums of their items' values.
    totals = json.loads(record.members)
    for m, v in totals.items():
        assert v == repr(math.fsum(float(r[2]) for r in stored if r[1] == m))
    checks = verify_hub(hub).checks  # raises on any failure
    assert any("valuation(s) match their roots" in c for c in checks)


def test_valuing_again_gives_identical_values(fair: Any) -> None:
    hub, report = fair
    again = hub.ownership.value(version=report["model"])
    assert again["valuation"] == report["valuation"] + 1
    assert again["values"] == report["values"]
    assert [(m["member"], m["value"]) for m in again["members"]] == [
        (m["member"], m["value"]) for m in report["members"]
    ]
    # Nothing new to flag: the negative items were flagged the first time.
    assert again["negative"] == report["negative"]


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(5, 40),
    seed=st.integers(0, 2**16),
    members=st.integers(1, 6),
)
def test_splitting_data_across_identities_earns_nothing_extra(
    n: int, seed: int, members: int
) -> None:
    """An item's KNN-Shapley value does not depend on who gave it: a member who spreads
    their items over fake identities gets the same total as before."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = rng.integers(0, 3, size=n).astype(str)
    Xe = rng.normal(size=(7, 3))
    ye = rng.integers(0, 3, size=7).astype(str)
    values = knn_shapley(X, y, Xe, ye, k=3)
    owner = rng.integers(0, members, size=n)
    sybils = np.where(owner == 0, rng.integers(100, 103, size=n), owner)  # member 0 splits
    honest_total = math.fsum(values[owner == 0])
    split_total = math.fsum(values[sybils >= 100])
    assert honest_total == split_total


def test_valuing_a_version_with_withdrawn_data_is_refused(
    tmp_path: Path, database_url: str
) -> None:
    client, keys = community(tmp_path / "hub", database_url)
    try:
        hub = client.embedded_hub
        hub.models.train()
        grace = keys["Grace"].key_id
        item = hub.models.manifest_ids(1)
        mine = [i for i in item if hub.state.contributions[i].member == grace][:2]
        client.withdraw(keys["Grace"], mine)
        size = hub.log.size()
        with pytest.raises(Exception) as err:
            hub.ownership.value(version=1)
        assert err.value.__class__.__name__ == "Conflict"
        assert "withdrawn" in str(err.value) and "train --incremental" in str(err.value)
        assert hub.log.size() == size and not hub.state.valuations
        # The version trained without them can be valued.
        hub.models.train(incremental=True)
        assert hub.ownership.value()["model"] == 2
    finally:
        client.close()


def test_members_valued_on_the_real_trainer(tmp_path: Path, database_url: str) -> None:
    """tmc-shapley: with four members and 24 permutations the Shapley values over
    members are exact; they add up to the full model's score less the empty one's."""
    extra = {
        "valuation": {"method": "tmc-shapley", "permutations": 24},
        "training": {"shards": 2, "min_rows_per_shard": 1, "min_rows_per_class_per_shard": 1},
        # Each item is credited to its sender here (a near copy's value would otherwise
        # go to the original's member and mix the per-member shares this checks).
        "duplicates": {"copy_credit": "copier"},
    }
    client, _ = community(
        tmp_path / "hub",
        database_url,
        items=digit_items(0, 400),
        charter_extra=extra,
    )
    try:
        hub = client.embedded_hub
        hub.models.train()
        report = hub.ownership.value()
        assert report["method"] == "tmc-shapley"
        assert report["params"] == {
            "players": "members",
            "permutations": 24,
            "truncation_pct": 1,
            "seed": 0,
            "copies": report["params"]["copies"],
        }
        d = report["details"]
        assert d["exact"] is True and d["coalitions_fitted"] == 16
        spread = float(d["full_score"]) - float(d["empty_score"])
        assert math.isclose(float(report["total"]), spread, abs_tol=1e-9)
        # The full coalition's score is the registered version's accuracy.
        metrics = json.loads(hub.state.models[1].metrics)
        assert math.isclose(float(d["full_score"]), float(metrics["accuracy"]), abs_tol=1e-6)
        # An item's value is its contributor's, shared equally; it is credited to them —
        # or, for a near copy of an item another member logged before, to that member
        # (duplicates.copy_credit "original": honest digits can look alike too).
        rows = hub.ownership.stored_values(1)
        state = hub.state
        for m in report["members"]:
            vals = [float(r[2]) for r in rows if state.contributions[r[0]].member == m["member"]]
            assert max(vals) == min(vals)
            assert m["items"] == sum(1 for r in rows if r[1] == m["member"])
        for item, credited, _ in rows:
            assert credited == credit_of(state.contributions[item], state)
            if state.contributions[item].resembles is None:
                assert credited == state.contributions[item].member
        again = hub.ownership.value()
        assert again["values"] == report["values"]  # seeded: the same numbers again
    finally:
        client.close()


def test_a_regression_charter_cannot_pick_knn_shapley() -> None:
    doc: dict[str, Any] = {
        "name": "Prices",
        "task": {"kind": "tabular-regression", "columns": [{"name": "rooms"}]},
        "valuation": {"method": "knn-shapley"},
    }
    with pytest.raises(CharterInvalid, match="tmc-shapley"):
        validate_charter(doc)
    doc["valuation"] = {"method": "auto"}
    assert validate_charter(doc).valuation.method == "auto"


def test_no_model_no_valuation(tmp_path: Path, database_url: str) -> None:
    client, _ = community(tmp_path / "hub", database_url, items=digit_items(0, 100))
    try:
        with pytest.raises(Exception, match="no model yet"):
            client.embedded_hub.ownership.value()
    finally:
        client.close()


def test_text_items_are_valued_in_the_hashed_feature_space(
    tmp_path: Path, database_url: str
) -> None:
    """Text models use sparse hashed n-grams: values come from the sparse path, and still
    add up to the KNN classifier's accuracy on the evaluation set."""
    client, _ = community(
        tmp_path / "hub",
        database_url,
        kind="text-classification",
        items=text_items(400),
    )
    try:
        hub = client.embedded_hub
        hub.models.train()
        report = hub.ownership.value()
        state = hub.state
        ids = hub.models.manifest_ids(1)
        X, y = item_arrays(hub, state, ids)
        Xe, ye = item_arrays(hub, state, hub.models.evaluation_ids(1))
        expected = knn_shapley(X, y, Xe, ye, k=5)
        assert [r[2] for r in hub.ownership.stored_values(1)] == [repr(float(v)) for v in expected]
        assert math.isclose(float(report["total"]), float(expected.sum()), abs_tol=1e-12)
        assert all(float(m["value"]) > 0 for m in report["members"])
    finally:
        client.close()
