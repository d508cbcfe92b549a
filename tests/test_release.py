"""A model's weights are downloadable only after the members vote to release them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from commonweal.api import create_app
from commonweal.community.governance import at, current_tally
from commonweal.hub import Hub
from commonweal.ledger.event import now, sign_event
from tests.modelkit import community, digit_items


def test_released_weights_can_be_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, keys = community(
        tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}", items=digit_items(0, 400)
    )
    try:
        hub = client.embedded_hub
        hub.models.train()
        api = TestClient(create_app(hub))
        assert "Not released" in api.get("/api/v1/models/1/card").text
        refused = api.get("/api/v1/models/1/artifact")
        assert refused.status_code == 403 and "model.release" in refused.json()["error"]["message"]

        clock = [now()]
        monkeypatch.setattr(Hub, "clock", staticmethod(lambda: clock[0]))
        action = {
            "type": "model.release",
            "version": 1,
            "license": "CC-BY-4.0",
            "weights": "public",
        }
        made = client.submit(
            [
                sign_event(
                    keys["Grace"], "proposal.create", {"title": "Open v1", "actions": [action]}
                )
            ]
        )
        number = made["entries"][0]["index"]
        client.submit(
            [sign_event(keys[n], "vote.cast", {"proposal": number, "choice": "for"}) for n in keys]
        )
        assert current_tally(hub.state, number)["passed"]
        clock[0] = at(clock[0], 5 * 86400)  # past the voting period and the timelock
        hub.governance.execute(number)

        got = api.get("/api/v1/models/1/artifact")
        assert got.status_code == 200
        assert got.headers["x-commonweal-license"] == "CC-BY-4.0"
        assert hashlib.sha256(got.content).hexdigest() == hub.state.models[1].artifact_sha256
        assert hub.models.versions()[0]["weights"] == "public"
        card = api.get("/api/v1/models/1/card").text
        assert f"Released by the members' vote (proposal {number} in the log)" in card
        assert "CC-BY-4.0" in card and "public:" in card
    finally:
        client.close()
