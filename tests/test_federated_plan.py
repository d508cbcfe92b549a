"""The ServerApp's handling of a run's plan, without a Flower deployment: replies are
built as Flower builds them (a reply to a train message the hub sent a node)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from commonweal.federated.server_app import FederatedRun

NODES = {101: "a" * 64, 102: "b" * 64, 103: "c" * 64}


@pytest.fixture(autouse=True)
def task_identity() -> Iterator[None]:
    # Flower stamps every message with the run, node and task of the process that makes
    # it: here the ServerApp's (node 0 is the SuperLink's side).
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 0, 1
    yield
    TaskIdentity._run_id = TaskIdentity._node_id = TaskIdentity._task_id = None


def _run_dir(tmp_path: Path, **plan: Any) -> Path:
    rng = np.random.default_rng(0)
    base = {
        "rounds": 1,
        "min_clients": 2,
        "clients_per_round": 0,
        "aggregation": "fedavg",
        "trim_pct": 20,
        "malicious": 1,
        "outlier_factor": 3,
        "local_epochs": 5,
        "learning_rate": "0.5",
        "l2": "0.0001",
        "dp": None,
        "valuation": {"max_exact_players": 10, "permutations": 200, "seed": 7},
        "labels": ["0", "1", "2"],
        "features": 4,
        "nodes": {str(k): v for k, v in NODES.items()},
        "start": 0,
    }
    (tmp_path / "plan.json").write_text(json.dumps(base | plan))
    np.savez(tmp_path / "start.npz", W=np.zeros((3, 4)), b=np.zeros(3))
    np.savez(tmp_path / "eval.npz", X=rng.normal(size=(30, 4)), y=rng.integers(0, 3, 30))
    return tmp_path


def _replies() -> list[Message]:
    rng = np.random.default_rng(1)
    out = []
    for node in NODES:
        sent = Message(
            RecordDict({"config": ConfigRecord({"server-round": 1})}),
            dst_node_id=node,
            message_type=MessageType.TRAIN,
        )
        arrays = ArrayRecord([rng.normal(size=(3, 4)), rng.normal(size=3)])
        content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 10})})
        out.append(Message(content, reply_to=sent))
    return out


def _round(run_dir: Path) -> dict[str, Any]:
    run = FederatedRun(run_dir)
    kept = run.audit(1, _replies())
    assert len(kept) == len(NODES)
    run.record_round(1, ArrayRecord([np.ones((3, 4)), np.zeros(3)]))
    return dict(json.loads((run_dir / "round-1.json").read_text()))


def test_round_values_the_accepted_members(tmp_path: Path) -> None:
    body = _round(_run_dir(tmp_path))
    assert body["valuation"]["players"] == sorted(NODES.values())
    assert len(body["valuation"]["utilities"]) == 2 ** len(NODES)


def test_plan_without_valuation_logs_no_values(tmp_path: Path) -> None:
    body = _round(_run_dir(tmp_path, valuation=None))
    assert "valuation" not in body
    assert [p["status"] for p in body["participants"]] == ["accepted"] * len(NODES)
    assert set(body["metrics"]) == {"accuracy"}
