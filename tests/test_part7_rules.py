"""Part 7's economy on a real hub (both databases): an epoch pays value once, a copy
earns its copier nothing, and API keys are revoked by their issuer or by a vote."""

from __future__ import annotations

from pathlib import Path

import pytest

from commonweal.errors import Conflict, Forbidden
from commonweal.hub import Hub
from commonweal.verify import verify_hub
from commonweal.wire import hash_api_key
from tests.kit.communities import accept_all, community, digit_items

# Enough held-out digits for a small pool, whatever the draw.
EVALUATION = {"training": {"evaluation": {"holdout_pct": 20, "min_items": 10}}}


def test_an_epoch_pays_value_once(tmp_path: Path, database_url: str) -> None:
    client, keys = community(
        tmp_path / "hub", database_url, items=digit_items(0, 300), charter_extra=EVALUATION
    )
    try:
        hub: Hub = client.embedded_hub
        hub.models.train()
        hub.ownership.value()
        first = hub.ownership.close_epoch()
        assert first["pools"]["data"]["amount"] == 700_000  # all the value is new
        # The same version valued again: no new work, so nothing to reward.
        hub.ownership.value()
        size = hub.log.size()
        with pytest.raises(Conflict, match="nothing new to reward"):
            hub.ownership.close_epoch()
        assert hub.log.size() == size
        # Grace sends new digits; the next version trains on them and is valued: only the
        # new value is paid, and only its part of the data pool is minted.
        client.contribute(keys["Grace"], digit_items(300, 100))
        accept_all(client, keys)
        hub.models.train()
        hub.ownership.value()
        second = hub.ownership.close_epoch()
        data = second["pools"]["data"]
        assert 0 < data["amount"] < 700_000
        paid = {a["member"]: a["shares"] for a in data["awards"]}
        assert max(paid, key=lambda m: paid[m]) == keys["Grace"].key_id
        assert verify_hub(hub, workers=1).size == hub.log.size()
    finally:
        client.close()


def test_a_copy_earns_its_copier_nothing(tmp_path: Path, database_url: str) -> None:
    extra = {**EVALUATION, "duplicates": {"exact": "flag"}}
    client, keys = community(
        tmp_path / "hub", database_url, items=digit_items(0, 300), charter_extra=extra
    )
    try:
        hub: Hub = client.embedded_hub
        originals = digit_items(0, 40)  # Ada's: the first batch of the log
        receipt = client.contribute(keys["Tim"], originals)
        copies = [i["id"] for i in receipt["items"]]
        assert all("duplicate" in i["flags"] for i in receipt["items"])
        accept_all(client, keys)
        state = hub.state
        for iid in copies:
            original = state.contributions[state.contributions[iid].resembles]
            assert original.member == keys["Ada"].key_id  # log order decides the original
        hub.models.train()
        report = hub.ownership.value()
        rows = hub.ownership.stored_values(report["valuation"])
        credited = {item: member for item, member, _ in rows}
        tim = keys["Tim"].key_id
        assert not any(credited.get(iid) == tim for iid in copies)
        assert verify_hub(hub, workers=1).size == hub.log.size()
    finally:
        client.close()


def test_only_the_issuer_revokes_an_api_key(tmp_path: Path, database_url: str) -> None:
    """The founder holds no standing power over members' keys (a version-2 charter); the
    issuer revokes, as the members can by an apikey.revoke vote (tests/test_governance)."""
    client, keys = community(tmp_path / "hub", database_url, items=digit_items(0, 100))
    try:
        secret, _ = client.create_apikey(keys["Grace"], "News")
        key_hash = hash_api_key(secret)
        with pytest.raises(Forbidden, match="only the key's issuer"):
            client.revoke_apikey(keys["Ada"], key_hash)
        assert client.embedded_hub.state.apikeys[key_hash].status == "active"
        client.revoke_apikey(keys["Grace"], key_hash)
        assert client.embedded_hub.state.apikeys[key_hash].status == "revoked"
    finally:
        client.close()
