"""The OpenAPI document is true of the served API: schemathesis, with all its default
checks, finds no failure in any operation of a real ``commonweal serve`` on a community
that has something behind every route (on SQLite, and on PostgreSQL when configured)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import httpx
import pytest

from commonweal.api import spec
from commonweal.hub import core
from commonweal.hub import models as hub_models
from commonweal.ledger import event
from tests.kit import Databases, free_port, start_server
from tests.kit.conformance import conformance_community, run_schemathesis

pytestmark = pytest.mark.slow


def test_schemathesis_finds_no_failure_in_any_operation(
    databases: Databases, tmp_path: Path
) -> None:
    creds = conformance_community(tmp_path / "hub", databases.new())
    port = free_port()
    server = start_server(tmp_path / "hub", port)
    try:
        base = f"http://127.0.0.1:{port}"
        operations = sum(
            len(item) for item in httpx.get(f"{base}/openapi.json").json()["paths"].values()
        )
        reports = tmp_path / "reports"
        reports.mkdir()
        run = run_schemathesis(base, creds, reports, max_examples=10)
    finally:
        server.kill()
        server.wait(10)
    print(f"schemathesis: {run.operations} operations, {run.calls} calls, {len(run.failures)}")
    assert run.failures == [] and run.errors == [], run.output
    assert run.exit_code == 0, run.output
    assert run.operations == operations  # every operation, none skipped
    assert run.calls > 10 * operations


def test_a_method_a_path_does_not_take_is_405_with_every_method_it_does(
    databases: Databases, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from commonweal.api import create_app
    from tests.kit import make_hub

    hub, _ = make_hub(tmp_path / "hub", databases.new())
    try:
        with TestClient(create_app(hub)) as http:
            res = http.post(f"/api/v1/members/{'0' * 64}/webhook")
            assert res.status_code == 405
            assert res.headers["allow"] == "DELETE, GET, HEAD, PUT"
            assert res.json()["error"]["code"] == "method_not_allowed"
            past = http.get("/api/v1/ledger/entries", params={"start": 99})
            assert past.status_code == 404, past.text  # as a proof past the log is
            nul = http.get("/api/v1/contributions", params={"flag": "a\x00b"})
            assert nul.status_code == 400, nul.text  # PostgreSQL would fail on it: a 500
            assert (
                http.get("/api/v1/ledger/entries", params={"start": 1, "end": 0}).json()["entries"]
                == []
            )
    finally:
        hub.close()


def test_the_document_states_every_error_once_and_no_unsent_422() -> None:
    from fastapi import FastAPI

    from commonweal.api import ROUTERS, errors

    app = FastAPI()
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    doc = spec._base(app)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert "500" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (method, path, status)
            if "422" in responses:  # only where a stored manifest or value root is checked
                assert "VerificationFailed" not in responses["422"]["description"]
                assert path.startswith(("/api/v1/models/", "/api/v1/valuations/"))
            if "requestBody" in op:
                assert {"400", "413", "429"} <= set(responses), (method, path)
                assert "Retry-After" in responses["429"]["headers"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert set(doc["components"]["securitySchemes"]) == {"memberSignature", "apiKey"}


def test_the_documents_limits_are_the_hubs() -> None:
    assert spec.MAX_BATCH == core.MAX_BATCH
    assert spec.TRY_INPUTS == hub_models.TRY_INPUTS
    # The envelope the spec documents is the one the hub admits: version 2, naming the hub.
    assert spec.ORIGIN.removeprefix("^").removesuffix("$") == event.ORIGIN.pattern
    fields = spec.Envelope.model_fields
    assert set(fields) == set(event._ENVELOPE_KEYS)
    assert fields["v"].annotation == Literal[event.EVENT_VERSION]
