"""A model's weights are downloadable only after the members vote to release them."""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from commonweal.api import create_app
from commonweal.community.governance import current_tally
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from tests.kit import Clock, community, digit_items


def test_released_weights_can_be_downloaded(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock("2030-01-01T00:00:00.000Z")
    monkeypatch.setattr(Hub, "clock", staticmethod(clock))
    monkeypatch.setattr("commonweal.ledger.event.now", clock)  # members sign on it too
    client, keys = community(tmp_path / "hub", database_url, items=digit_items(0, 400))
    try:
        hub = client.embedded_hub
        hub.models.train()
        api = TestClient(create_app(hub))
        assert "Not released" in api.get("/api/v1/models/1/card").text
        refused = api.get("/api/v1/models/1/artifact")
        assert refused.status_code == 403 and "model.release" in refused.json()["error"]["message"]

        action = {
            "type": "model.release",
            "version": 1,
            "license": "CC-BY-4.0",
            "weights": "public",
        }
        made = client.submit(
            [
                sign_event(
                    keys["Grace"],
                    "proposal.create",
                    {"title": "Open v1", "actions": [action]},
                    hub=client.origin,
                )
            ]
        )
        number = made["entries"][0]["index"]
        client.submit(
            [
                sign_event(
                    keys[n], "vote.cast", {"proposal": number, "choice": "for"}, hub=client.origin
                )
                for n in keys
            ]
        )
        assert current_tally(hub.state, number)["passed"]
        clock.advance(5 * 86400)  # past the voting period and the timelock
        hub.governance.execute(number)

        got = api.get("/api/v1/models/1/artifact")
        assert got.status_code == 200
        assert got.headers["x-commonweal-license"] == "CC-BY-4.0"
        assert hashlib.sha256(got.content).hexdigest() == hub.state.models[1].artifact_sha256
        assert hub.models.versions()[0]["weights"] == "public"
        card = api.get("/api/v1/models/1/card").text
        assert f"Released by the members' vote (proposal {number} in the log)" in card
        assert "CC-BY-4.0" in card and "public:" in card
        # Hugging Face reads the license the vote chose as the model's, in its own spelling;
        # the page's card is the same document as the API's (and `commonweal model card`'s).
        hf = pytest.importorskip("huggingface_hub")
        assert hf.ModelCard(card).data.license == "cc-by-4.0"
        assert 'license: "cc-by-4.0"' in html.unescape(api.get("/model/1/card").text)
    finally:
        client.close()
