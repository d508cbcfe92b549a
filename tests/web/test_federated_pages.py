"""A federated version and a member's node on the pages, through a real hub: the rounds
and the version are logged as ``train --federated`` logs them (hand-made bodies the rules
accept), then the model card, the version page, My page's node fragment and the home page
are read over the app, without Flower or a browser."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from commonweal.api import create_app
from commonweal.cards import render_model_card
from commonweal.community.charter import validate_charter
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.wire import AUTH_HEADER, auth_header
from tests.test_federated_rules import (
    ALICE,
    BOB,
    CAROL,
    ROOT,
    enroll_body,
    fed_charter,
    round_body,
    version_body,
)


def test_federated_version_node_and_charter_show_on_the_pages(
    tmp_path: Path, database_url: str
) -> None:
    hub, _ = Hub.init(
        tmp_path / "hub",
        charter=validate_charter(fed_charter(dp="server-fixed")),
        founder_name="Ada",
        database=database_url,
    )
    try:
        alice, bob, carol = ALICE, BOB, CAROL
        for key, name in ((alice, "Alice"), (bob, "Bob"), (carol, "Carol")):
            hub.append([sign_event(key, "member.join", {"name": name}, hub=hub.origin)])
        for key in (alice, bob):
            hub.append([sign_event(key, "federated.enroll", enroll_body(), hub=hub.origin)])
        for rnd in (1, 2):
            hub.append([hub.sign("federated.round", round_body(hub.state, "7", rnd))])
        hub.append([hub.sign("model.version", version_body(hub.state, "7"))])
        valued = hub.ownership.value()  # from the rounds' logged values: no artifact read
        alice_value = next(m for m in valued["members"] if m["member"] == alice.key_id)
        hub.append([sign_event(bob, "federated.withdraw", {}, hub=hub.origin)])

        card = render_model_card(hub.models.card_info(1))
        assert "trained with federated learning" in card and "SISA" not in card
        assert f"| Alice | `{alice.key_id[:16]}` | 30 | 2 |" in card
        assert "from zeros: the hub trained none of its own items" in card

        with TestClient(create_app(hub)) as http:
            version = http.get("/model/1").text
            assert 'class="pill">federated</span>' in version
            assert 'id="fed-nodes"' in version and "2 of 2" in version
            assert version.count('href="/ledger/') >= 3  # the version and its two rounds

            def node_of(key: SigningKey) -> str:
                headers = {AUTH_HEADER: auth_header(key, "GET", "/w/me/node")}
                return http.get("/w/me/node", headers=headers).text

            mine = node_of(alice)
            assert ">enrolled</dd>" in mine and 'id="node-rounds">2 (' in mine
            assert "2 since the last reward epoch" in mine
            assert "your privacy loss so far is epsilon" in mine
            assert f'title="{ROOT}"' in mine and "commonweal node run --hub" in mine
            assert 'id="node-withdraw">commonweal node withdraw --hub' in mine
            gone = node_of(bob)
            assert "withdrawn: it takes part in no later round" in gone
            assert "commonweal node enroll --hub" in gone
            assert 'id="node-none"' in node_of(carol)

            # My page credits Alice's node, not "none of your items".
            headers = {AUTH_HEADER: auth_header(alice, "GET", "/w/me/summary")}
            summary = http.get("/w/me/summary", headers=headers).text
            assert 'id="node-value">Valuation 1 valued the rounds your node trained' in summary
            assert f"{float(alice_value['value']):.4g}" in summary
            assert "credited none of your items" not in summary
            headers = {AUTH_HEADER: auth_header(alice, "GET", "/w/me/items")}
            items = http.get("/w/me/items", headers=headers).text
            assert 'id="items-node">You have given the hub no items: your node trains' in items

            home = http.get("/").text
            assert 'id="charter-federated"' in home and "1 node is enrolled" in home
    finally:
        hub.close()
