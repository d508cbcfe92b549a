"""The OpenAPI conformance run: a small community that has something behind every route,
served for real, and schemathesis's CLI against it with all its default checks.

The community is a text-classification one (any non-empty text is a valid input, so the
inputs schemathesis draws from the spec are ones a model can really answer), with members,
accepted and waiting items, a trained model, a valuation, a reward epoch, revenue and a
payout, a proposal and a delegation, and an API key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commonweal.ledger.event import sign_event
from tests.kit.communities import community, text_items

__all__ = ["Run", "conformance_community", "run_schemathesis"]

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Credentials:
    member_key: Path  # an active member's key file
    api_key: str  # a consumer's API key


def conformance_community(directory: Path, database: str) -> Credentials:
    """Build the community in ``directory`` on ``database`` (closed when this returns)."""
    client, keys = community(directory, database, kind="text-classification")
    try:
        hub = client.embedded_hub
        hub.models.train()
        secret, _ = client.create_apikey(keys["Ada"], "Conformance consumer", quota_per_day=100_000)
        client.predict([{"text": "the river rose over the bank"}], api_key=secret)
        hub.models.close_revenue()
        hub.ownership.value()
        hub.ownership.close_epoch()
        hub.ownership.pay_out()
        client.submit(
            [
                sign_event(
                    keys["Tim"], "delegate.set", {"to": keys["Grace"].key_id}, hub=client.origin
                )
            ]
        )
        charter = hub.state.charter
        assert charter is not None
        client.submit(
            [
                sign_event(
                    keys["Grace"],
                    "proposal.create",
                    {
                        "title": "Pay reviewers more",
                        "description": "Review keeps our data clean.",
                        "actions": [{"type": "charter.amend", "charter": charter.to_json()}],
                    },
                    hub=client.origin,
                )
            ]
        )
        # Items waiting for review, so ``reviews/next`` has one to give.
        client.contribute(keys["Grace"], text_items(12, seed=5))
    finally:
        client.close()
    key_file = directory / "alan.key"
    keys["Alan"].save(key_file, name="Alan")
    return Credentials(key_file, secret)


@dataclass(frozen=True)
class Run:
    operations: int  # operations tested
    calls: int  # test cases generated and sent
    failures: list[dict[str, Any]]  # one per kind of failure, with its operations
    errors: list[Any]
    exit_code: int
    output: str  # schemathesis's own report, for the assertion message


def run_schemathesis(
    base_url: str, creds: Credentials, report_dir: Path, *, max_examples: int = 25
) -> Run:
    """``st run`` against ``base_url``'s ``/openapi.json``: every operation, every default
    check (none configured away), at most ``max_examples`` examples per operation and phase;
    one worker, a fixed seed so a failure can be replayed."""
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.kit.schemathesis_auth",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "COMMONWEAL_ST_MEMBER_KEY": str(creds.member_key),
        "COMMONWEAL_ST_API_KEY": creds.api_key,
    }
    st = Path(sys.executable).with_name("st")
    proc = subprocess.run(
        [
            str(st),
            "--config-file",
            str(REPO / "tests" / "schemathesis.toml"),
            "run",
            f"{base_url}/openapi.json",
            "--max-examples",
            str(max_examples),
            "--workers",
            "1",
            "--seed",
            "20261205",
            "--report",
            "json",
            "--report-dir",
            str(report_dir),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        # Schemathesis keeps a cache of earlier crashes in ``.schemathesis/`` under its
        # working directory and replays them: run where the report goes, so every run
        # (and CI's, on a fresh clone) draws the same cases from the seed alone.
        cwd=report_dir,
    )
    reports = sorted(report_dir.glob("json-*.json"))
    assert reports, f"schemathesis wrote no report:\n{proc.stdout}\n{proc.stderr}"
    doc = json.loads(reports[-1].read_text())
    return Run(
        operations=int(doc["operations"]["tested"]),
        calls=int(doc["test_cases"]["generated"]),
        failures=list(doc["failures"]),
        errors=list(doc["errors"]),
        exit_code=proc.returncode,
        output=proc.stdout + proc.stderr,
    )
