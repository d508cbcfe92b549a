"""``commonweal train --federated``: a model version trained by the members' own nodes.

The hub prepares a run directory (the plan, the start weights, its evaluation set), asks
the SuperLink to run the community's Flower app, and follows the ServerApp's round files
as the rounds complete. Only when the run has finished does anything reach the log: every
round's ``federated.round`` event and the ``model.version`` they make, in one commit. A run
that fails, or a SuperLink killed mid-training, leaves no trace in the log, and the
command can simply be run again.

The evaluation set — and, for a run that starts from a central version, the central items
it trained on, which the hub trains on in every round beside the nodes — is written to the
run directory decrypted (the ServerApp, a separate process Flower starts, reads it): the
files are private to the hub's user and deleted when the run ends, whatever happens.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from commonweal.community.federated import TRAINER, central_version, recipe, version_participants
from commonweal.community.models import manifest_root, pool
from commonweal.community.state import State
from commonweal.errors import Conflict, InvalidInput
from commonweal.hub import scoring
from commonweal.hub.training import (
    ARTIFACT_FORMAT,
    artifact_bundle,
    item_arrays,
    library_versions,
    load_model,
    store_single_model,
    stored_items,
)
from commonweal.ledger.files import write_private
from commonweal.ml.sisa import ShardedModel, dump_shard

if TYPE_CHECKING:
    from commonweal.federated.superlink import SuperLink
    from commonweal.hub.core import Computing, Hub

__all__ = ["TRAINER", "start_weights", "train"]

Progress = Callable[[str, int, int], None]
# Each status check starts the flwr CLI (~0.7 s of CPU): the round files show progress.
_POLL_SECONDS = 2.0


def _quiet(what: str, done: int, total: int) -> None:
    pass


def runs_dir(hub: Hub) -> Path:
    assert hub.directory is not None
    d = hub.directory / "federated" / "runs"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _new_run_dir(hub: Hub) -> Path:
    base = runs_dir(hub)
    n = 1 + max((int(p.name) for p in base.iterdir() if p.name.isdigit()), default=0)
    d = base / str(n)
    d.mkdir(mode=0o700)
    return d


def pool_changed(state: State) -> bool:
    """Whether items were accepted or withdrawn since the latest central version (a
    federated run that starts from it needs it to hold the current pool)."""
    v = central_version(state)
    return bool(v) and state.models[v].manifest_root != manifest_root(pool(state).training)


def start_weights(hub: Hub, state: State) -> tuple[int, np.ndarray, np.ndarray]:
    """Where round 1 starts: the latest central version's linear shards averaged into one
    softmax model (labels in the charter's order), or zeros. The charter's ``start``
    decides; a central version whose items are no longer the pool's is refused, because
    the federated version would name items that were withdrawn since."""
    charter = state.charter
    assert charter is not None and charter.task is not None
    labels = charter.task.labels
    features = _feature_count(hub, state)
    W = np.zeros((len(labels), features))
    b = np.zeros(len(labels))
    v = central_version(state)
    if charter.federated.start != "latest" or v == 0:
        return 0, W, b
    if pool_changed(state):
        raise Conflict(
            f"the latest central version (v{v}) was trained on items that are no longer the "
            "community's pool (some were accepted or withdrawn since): train the central "
            "model first (`commonweal train --incremental`), or set federated.start = zeros"
        )
    model, _ = load_model(hub, v)
    index = {label: n for n, label in enumerate(labels)}
    ws, bs = [], []
    for shard in model.shards:
        coef = getattr(shard, "coef_", None)
        if coef is None:
            continue  # a shard that held one label predicts its prior: nothing to average
        Wi, bi = np.zeros_like(W), np.zeros_like(b)
        rows = [index[str(c)] for c in shard.classes_]
        if coef.shape[0] == 1:  # binary: the weights score the second class
            Wi[rows[1]], bi[rows[1]] = coef[0] / 2, shard.intercept_[0] / 2
            Wi[rows[0]], bi[rows[0]] = -coef[0] / 2, -shard.intercept_[0] / 2
        else:
            Wi[rows], bi[rows] = coef, shard.intercept_
        ws.append(Wi)
        bs.append(bi)
    if not ws:
        return 0, W, b
    return v, np.mean(ws, axis=0), np.mean(bs, axis=0)


def _feature_count(hub: Hub, state: State) -> int:
    from commonweal.hub.features import featurize

    assert state.charter is not None and state.charter.task is not None
    task = state.charter.task
    if task.kind == "image-classification":
        return task.image_width * task.image_height
    return int(featurize(task, [{"features": {c.name: _blank(c) for c in task.columns}}]).shape[1])


def _blank(column: Any) -> Any:
    return 0 if column.type == "numeric" else ""


def train(
    hub: Hub,
    link: SuperLink,
    *,
    nodes: dict[str, str],
    progress: Progress | None = None,
    timeout: float = 1800.0,
    registry: Path | None = None,
) -> dict[str, Any]:
    """Run the charter's federated training on ``link`` with the registered ``nodes``
    (Flower node id -> member key) and register the version it makes."""
    say = progress or _quiet
    hub.refresh()
    state = hub.state
    charter = state.charter
    if charter is None or charter.task is None:
        raise Conflict("this community has no task in its charter, so it has no model")
    fed = charter.federated
    if not fed.enabled:
        raise Conflict(
            "federated training is off in this community's charter ([federated] enabled); "
            "members can turn it on with a charter amendment"
        )
    if len(nodes) < fed.min_clients:
        raise Conflict(
            f"{len(nodes)} enrolled node(s) are online and the charter needs "
            f"{fed.min_clients} (federated.min_clients): ask members to run `commonweal node run`"
        )
    labels = charter.task.labels
    start, W0, b0 = start_weights(hub, state)
    p = pool(state)
    run_dir = _new_run_dir(hub)
    try:
        eval_items = list(p.evaluation)
        index_of = {label: n for n, label in enumerate(labels)}
        if eval_items:
            X, y = item_arrays(hub, state, eval_items)
            X = X.toarray() if hasattr(X, "toarray") else np.asarray(X, dtype=np.float64)
            yi = np.array([index_of[str(v)] for v in y], dtype=np.int64)
            _save_private(run_dir / "eval.npz", X=X, y=yi)
        _save_private(run_dir / "start.npz", W=W0, b=b0)
        if start:
            # The hub's own share of each round: the central items the start version
            # trained on, featurized like the evaluation set (and deleted like it).
            Xc, yc = item_arrays(hub, state, list(pool(state).training))
            Xc = Xc.toarray() if hasattr(Xc, "toarray") else np.asarray(Xc, dtype=np.float64)
            yci = np.array([index_of[str(v)] for v in yc], dtype=np.int64)
            _save_private(run_dir / "central.npz", X=Xc, y=yci)
        plan = _plan(state, nodes, start, W0.shape[1])
        if registry is not None:
            plan["registry"] = str(registry)
        write_private(run_dir / "plan.json", json.dumps(plan, indent=1, sort_keys=True))
        from commonweal.federated.bundle import app_dir

        say("starting the federated run", 0, fed.rounds)
        run = link.submit(app_dir(), {"run-dir": str(run_dir)})
        run_id = str(run)
        rounds = _follow(link, run, run_dir, fed.rounds, say, timeout)
        with np.load(run_dir / "result.npz") as r:
            W, b = np.array(r["W"]), np.array(r["b"])
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise Conflict("the federated run ended with a model that is not finite")
        say("registering the version", 0, 1)
        res = _register(hub, run_id, rounds, W, b, start, eval_items)
        say("registering the version", 1, 1)
        return res
    finally:
        # Derived from members' data: never left behind, whatever happened.
        (run_dir / "eval.npz").unlink(missing_ok=True)
        (run_dir / "central.npz").unlink(missing_ok=True)


def _plan(state: State, nodes: dict[str, str], start: int, features: int) -> dict[str, Any]:
    charter = state.charter
    assert charter is not None and charter.task is not None
    fed = charter.federated
    dp = None
    if fed.dp != "off":
        dp = {
            "mode": fed.dp,
            "noise_multiplier": fed.noise_multiplier,
            "clipping_norm": fed.clipping_norm,
            "delta": fed.delta,
        }
    return {
        "rounds": fed.rounds,
        "min_clients": fed.min_clients,
        "clients_per_round": fed.clients_per_round,
        "aggregation": fed.aggregation,
        "trim_pct": fed.trim_pct,
        "malicious": fed.malicious,
        "outlier_factor": fed.outlier_factor,
        "local_epochs": fed.local_epochs,
        "learning_rate": fed.learning_rate,
        "l2": fed.l2,
        "dp": dp,
        "valuation": {
            "max_exact_players": fed.max_exact_players,
            "permutations": fed.permutations,
            "seed": charter.training.seed,
        },
        "labels": charter.task.labels,
        "features": features,
        "nodes": nodes,
        "start": start,
        "app_sha256": fed.app_sha256,
        # What each member's DP rounds were before this run: the ServerApp adds its own.
        "dp_rounds": dict(state.dp_rounds),
        "epsilon_budget": fed.epsilon_budget,
        "local_holdout_pct": fed.local_holdout_pct,
    }


def _follow(
    link: SuperLink, run_id: int, run_dir: Path, rounds: int, say: Progress, timeout: float
) -> list[dict[str, Any]]:
    """Wait for the run to finish, showing each round as its file appears; the rounds'
    bodies, or Conflict with why the run failed."""
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        while (run_dir / f"round-{seen + 1}.json").exists():
            seen += 1
            say("federated rounds", seen, rounds)
        status = link.status(run_id)
        if status.startswith("finished"):
            break
        if time.monotonic() > deadline:
            raise Conflict(f"the federated run {run_id} took longer than {timeout:.0f} s")
        time.sleep(_POLL_SECONDS)
    done_file = run_dir / "done.json"
    done = json.loads(done_file.read_text()) if done_file.exists() else {}
    if status != "finished:completed" or not done.get("ok"):
        why = done.get("error") or f"Flower reports {status}"
        raise Conflict(
            f"the federated run {run_id} failed: {why}; nothing was logged, run "
            "`commonweal train --federated` again"
        )
    out = []
    for r in range(1, int(done["rounds"]) + 1):
        out.append(json.loads((run_dir / f"round-{r}.json").read_text()))
    say("federated rounds", len(out), rounds)
    return out


def _linear_model(W: np.ndarray, b: np.ndarray, labels: list[str]) -> Any:
    """The federated weights as the scikit-learn model every version's serving loads."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression()
    model.coef_ = np.ascontiguousarray(W, dtype=np.float64)
    model.intercept_ = np.ascontiguousarray(b, dtype=np.float64)
    model.classes_ = np.array(labels)
    model.n_features_in_ = W.shape[1]
    model.n_iter_ = np.array([0])
    return model


def _register(
    hub: Hub,
    run_id: str,
    rounds: list[dict[str, Any]],
    W: np.ndarray,
    b: np.ndarray,
    start: int,
    eval_items: list[str],
) -> dict[str, Any]:
    """Append the run's round events and the version they make, in one commit."""
    state = hub.state
    charter = state.charter
    assert charter is not None and charter.task is not None
    labels = list(charter.task.labels)
    model = _linear_model(W, b, labels)
    blob = dump_shard(model)
    sha = hashlib.sha256(blob).hexdigest()
    metrics: dict[str, str] = {}
    if eval_items:
        X, y = item_arrays(hub, state, eval_items)
        metrics = scoring.metrics(charter.task.kind, labels, y, ShardedModel([model], labels), X)
    else:
        metrics = dict(rounds[-1].get("metrics") or {})
    signed = [hub.sign("federated.round", {"run": run_id, **r}) for r in rounds]

    def build(ctx: Computing) -> dict[str, Any]:
        st = ctx.state
        first = ctx.index - len(signed)
        central: list[str] = []
        if start:
            mv = st.models[start]
            central = stored_items(ctx.conn, start)
            if manifest_root(central) != mv.manifest_root:  # pragma: no cover - store damage
                raise Conflict(f"the stored item list of version {start} does not match its log")
        p = pool(st)
        version = len(st.models) + 1
        store_single_model(ctx.conn, version, blob, central, eval_items)
        bundle = artifact_bundle(charter, [sha], lambda h: blob)
        body: dict[str, Any] = {
            "version": version,
            "trainer": TRAINER,
            "params": recipe(charter),
            "seed": charter.training.seed,
            "manifest": {"root": manifest_root(central), "count": len(central)},
            "evaluation": {"root": manifest_root(p.evaluation), "count": len(p.evaluation)},
            "shards": [
                {
                    "root": manifest_root(central),
                    "count": len(central),
                    "sha256": sha,
                    "bytes": len(blob),
                }
            ],
            "artifact": {
                "format": ARTIFACT_FORMAT,
                "sha256": hashlib.sha256(bundle).hexdigest(),
                "bytes": len(bundle),
            },
            "metrics": metrics,
            "libraries": {**library_versions(), "flwr": _flwr_version()},
            "federated": {
                "run": run_id,
                "rounds": list(range(first, ctx.index)),
                "start": start,
                "participants": version_participants(st, run_id),
            },
        }
        if st.latest_model is not None:
            body["previous"] = st.latest_model.version
        if p.evaluation != tuple(eval_items):
            raise Conflict(
                "the evaluation set changed while the federated run trained; run "
                "`commonweal train --federated` again"
            )
        return body

    try:
        done = hub.record("model.version", build, after=signed)
    except (Conflict, InvalidInput) as exc:
        raise Conflict(
            f"the federated run {run_id} finished but could not be logged: {exc.message} "
            "(a member may have withdrawn meanwhile); run `commonweal train --federated` "
            "again"
        ) from None
    return {
        **done.body,
        "entry": done.entry,
        "size": done.size,
        "rounds_logged": len(signed),
    }


def _flwr_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("flwr")
    except metadata.PackageNotFoundError:  # pragma: no cover - flwr is a dependency
        return "absent"


def _save_private(path: Path, **arrays: Any) -> None:
    """``arrays`` as an .npz file only the hub's user can read (written atomically)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_private(path, buf.getvalue())
