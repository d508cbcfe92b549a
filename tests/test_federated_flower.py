"""Federated training on a real Flower deployment over loopback: the hub's SuperLink (TLS,
node authentication), members' SuperNodes started as ``commonweal node run`` starts them
(the gate first on PATH, node.json naming a data file), and the community's app bundle
submitted through ``SuperLink.submit`` with a hand-written run directory.

One deployment serves the module: each run costs a Flower process per message per node.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from commonweal.errors import Unauthorized
from commonweal.federated.bundle import app_dir, app_sha256
from commonweal.federated.client_app import load_node
from commonweal.federated.keys import make_node_key, node_key_path
from commonweal.federated.node import PreparedNode, prepare_node, run_supernode, start_supernode
from commonweal.federated.server_app import fraction_text
from commonweal.federated.superlink import SuperLink, free_port, stop_group
from commonweal.ml.federated import accuracy, correct_counts

pytestmark = pytest.mark.slow

LABELS = [str(i) for i in range(10)]
CHARTER: dict[str, Any] = {
    "name": "digits",
    "task": {
        "kind": "tabular-classification",
        "labels": LABELS,
        "columns": [{"name": f"p{i}"} for i in range(64)],
    },
    "federated": {"enabled": True},
}


def _write_csv(path: Path, X: Any, y: Any) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"p{i}" for i in range(64)] + ["target"])
        for row, label in zip(X, y, strict=True):
            w.writerow([f"{v:g}" for v in row] + [str(label)])


class Deployment:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.link = SuperLink(root / "hub" / "federated")
        self.procs: dict[str, Any] = {}
        self.nodes: dict[str, PreparedNode] = {}
        self.ids: dict[str, int] = {}
        digits = load_digits()
        X, y = digits.data / 16.0, digits.target
        Xtr, self.Xte, ytr, self.yte = train_test_split(
            X, y, test_size=0.2, stratify=y, random_state=0
        )
        order = np.random.default_rng(42).permutation(len(ytr))
        self.parts = [(Xtr[i], ytr[i]) for i in np.array_split(order, 3)]

    def info(self, sha: str) -> dict[str, Any]:
        return {
            "enabled": True,
            "superlink": self.link.address,
            "ca_pem": self.link.certs.ca.read_text(),
            "app_sha256": sha,
        }

    def add(
        self, name: str, part: int, *, sha: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        """Make a member's node key, register it, and start its SuperNode."""
        key = self.root / name / "member.key"
        key.parent.mkdir()
        data = key.parent / "data.csv"
        _write_csv(data, *self.parts[part])
        line = make_node_key(node_key_path(key))
        self.ids[name] = self.link.register(line, name)
        node = prepare_node(key, self.info(sha or app_sha256()), CHARTER, data, self.member(name))
        self.nodes[name] = node
        self.procs[name] = start_supernode(
            node, port=free_port(), log=node.directory / "supernode.log", extra=env
        )

    @staticmethod
    def member(name: str) -> str:
        return name.encode().hex().ljust(64, "0")

    def wait_online(self, names: list[str], timeout: float = 60) -> None:
        want = {str(self.ids[n]) for n in names}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            online = {n["node-id"] for n in self.link.nodes() if n["status"] == "online"}
            if want <= online:
                return
            time.sleep(0.5)
        raise AssertionError(f"nodes {names} did not come online")

    def stop(self, name: str) -> None:
        stop_group(self.procs.pop(name))

    def run_dir(self, n: int, names: list[str], *, evaluation: bool = True, **plan: Any) -> Path:
        d = self.root / "hub" / "federated" / "runs" / str(n)
        d.mkdir(parents=True)
        base = {
            "rounds": 1,
            "min_clients": 2,
            "clients_per_round": 0,
            "aggregation": "fedavg",
            "trim_pct": 20,
            "malicious": 1,
            "outlier_factor": 3,
            "local_epochs": 20,
            "learning_rate": "0.5",
            "l2": "0.0001",
            "dp": None,
            "valuation": {"max_exact_players": 10, "permutations": 200, "seed": 7},
            "labels": LABELS,
            "features": 64,
            "start": 0,
            "app_sha256": app_sha256(),
            "nodes": {str(self.ids[x]): self.member(x) for x in names},
            "round_timeout": 60,
        }
        (d / "plan.json").write_text(json.dumps(base | plan))
        np.savez(d / "start.npz", W=np.zeros((10, 64)), b=np.zeros(10))
        if evaluation:
            np.savez(d / "eval.npz", X=self.Xte, y=self.yte)
        return d

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        self.link.stop()


@pytest.fixture(scope="module")
def fl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
    d = Deployment(tmp_path_factory.mktemp("fl"))
    try:
        d.link.start()
        for i, name in enumerate(["alice", "bob", "carol"]):
            d.add(name, i)
        d.wait_online(["alice", "bob", "carol"])
        yield d
    finally:
        d.close()


def _wait(path: Path, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never came")
        time.sleep(0.5)
    time.sleep(0.2)
    return dict(json.loads(path.read_text()))


def test_bundle_hash_is_stable_and_is_the_one_flower_runs(fl: Deployment) -> None:
    import hashlib

    from flwr.cli.build import build_fab_from_disk

    again = hashlib.sha256(build_fab_from_disk(app_dir())).hexdigest()
    assert again == app_sha256()
    d = fl.run_dir(1, ["alice", "bob", "carol"], rounds=1)
    run_id = fl.link.submit(app_dir(), {"run-dir": str(d)})
    assert fl.link.run_info(run_id)["fab-hash"] == app_sha256()
    done = _wait(d / "done.json")
    assert done == {"rounds": 1, "ok": True}, (
        (d / "error.txt").read_text() if (d / "error.txt").exists() else done
    )
    r1 = json.loads((d / "round-1.json").read_text())
    assert [p["member"] for p in r1["participants"]] == sorted(
        fl.member(n) for n in ["alice", "bob", "carol"]
    )
    assert all(p["status"] == "accepted" for p in r1["participants"])
    assert r1["strategy"] == {"aggregation": "fedavg", "params": {"outlier_factor": 3}}
    # The hub scores every round on its own evaluation set: nodes hold out and score nothing.
    assert r1["node_metrics"] == {}
    assert sorted(r1["valuation"]["utilities"], key=int) == [str(m) for m in range(8)]
    assert float(r1["metrics"]["accuracy"]) > 0.85
    with np.load(d / "result.npz") as z:
        assert accuracy((z["W"], z["b"]), fl.Xte, fl.yte) > 0.85
    assert fl.link.wait(run_id, timeout=60) == "finished:completed"


def test_unregistered_node_is_refused(fl: Deployment, tmp_path: Path) -> None:
    key = tmp_path / "stranger.key"
    make_node_key(node_key_path(key))
    data = tmp_path / "data.csv"
    _write_csv(data, *fl.parts[0])
    node = prepare_node(key, fl.info(app_sha256()), CHARTER, data, fl.member("stranger"))
    with pytest.raises(Unauthorized, match="enroll first"):
        run_supernode(node, port=free_port())


def test_gate_refuses_another_bundle_and_nan_node_is_rejected(fl: Deployment) -> None:
    fl.add("mallory", 0, env={"COMMONWEAL_SIMULATE_ATTACK": "nan"})
    fl.add("gated", 1, sha="0" * 64)
    try:
        fl.wait_online(["mallory", "gated"])
        names = ["alice", "bob", "carol", "mallory", "gated"]
        d = fl.run_dir(2, names, rounds=1)
        fl.link.submit(app_dir(), {"run-dir": str(d)})
        assert _wait(d / "done.json")["ok"] is True
        r1 = json.loads((d / "round-1.json").read_text())
        rows = {p["member"]: p for p in r1["participants"]}
        assert rows[fl.member("mallory")]["status"] == "rejected"
        assert rows[fl.member("mallory")]["reason"] == "not finite"
        assert fl.member("gated") not in rows
        assert fl.member("mallory") not in r1["valuation"]["players"]
        failures = json.loads((d / "failures-1.json").read_text())
        said = failures[str(fl.ids["gated"])]
        assert "this node runs only the app bundle the community logged (sha256 000000" in said
        assert f"the hub sent {app_sha256()[:16]}" in said
    finally:
        fl.stop("mallory")
        fl.stop("gated")


def _pooled(fl: Deployment, names: list[str], W: Any, b: Any) -> tuple[int, int]:
    """Correct rows of ``(W, b)`` over the named nodes' held-out parts, and their size, the
    parts read as the ClientApp reads them."""
    held = [load_node(fl.nodes[n].node_json) for n in names]
    model = (W[np.newaxis], b[np.newaxis])
    correct = sum(int(correct_counts(model, h.X[h.holdout], h.y[h.holdout])[0]) for h in held)
    return correct, sum(len(h.holdout) for h in held)


def test_nodes_value_members_without_an_evaluation_set_and_a_stopped_node_is_dropped(
    fl: Deployment,
) -> None:
    """One run for both (each run costs tens of seconds): with no ``eval.npz`` the nodes
    score the coalition models; carol stops after round 1, so round 2 is valued and
    measured on alice's and bob's held-out parts alone."""
    names = ["alice", "bob", "carol"]
    d = fl.run_dir(3, names, rounds=2, evaluation=False)
    fl.link.submit(app_dir(), {"run-dir": str(d)})
    _wait(d / "round-1.json")
    os.killpg(fl.procs["carol"].pid, signal.SIGTERM)
    done = _wait(d / "done.json")
    assert done == {"rounds": 2, "ok": True}, (
        (d / "error.txt").read_text() if (d / "error.txt").exists() else done
    )

    r1 = json.loads((d / "round-1.json").read_text())
    v1 = r1["valuation"]
    u1 = {int(m): Fraction(u) for m, u in v1["utilities"].items()}
    assert sorted(u1) == list(range(8))
    held = [load_node(fl.nodes[n].node_json) for n in names]
    examples = sum(len(h.holdout) for h in held)
    zeros_right = sum(int(np.sum(h.y[h.holdout] == 0)) for h in held)  # zeros pick label 0
    assert v1["utilities"]["0"] == fraction_text(Fraction(zeros_right, examples), 12)
    assert r1["metrics"]["examples"] == str(examples)
    # The aggregate is Flower's FedAvg, the full coalition the numpy replica: near equal.
    assert abs(Fraction(r1["metrics"]["accuracy"]) - u1[7]) < Fraction(2, 100)
    assert set(r1["node_metrics"]) == {fl.member(n) for n in names}
    values = {m: Fraction(v) for m, v in v1["values"].items()}
    assert set(values) == {fl.member(n) for n in names}
    assert all(v > Fraction(1, 10) for v in values.values()), values
    gained = u1[7] - u1[0]
    assert gained > Fraction(1, 2)
    assert abs(sum(values.values()) - gained) < Fraction(1, 10**9)  # Shapley's efficiency

    r2 = json.loads((d / "round-2.json").read_text())
    assert [p["member"] for p in r2["participants"]] == sorted(
        fl.member(n) for n in ["alice", "bob"]
    )
    assert r2["round"] == 2 and r2["start"] == 0
    assert sorted(r2["valuation"]["utilities"], key=int) == ["0", "1", "2", "3"]
    with np.load(d / "result.npz") as z:
        correct, examples = _pooled(fl, ["alice", "bob"], z["W"], z["b"])
    assert r2["metrics"] == {
        "accuracy": fraction_text(Fraction(correct, examples)),
        "examples": str(examples),
    }
    assert Fraction(correct, examples) > Fraction(85, 100)
