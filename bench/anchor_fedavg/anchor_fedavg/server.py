"""The anchor's ServerApp: Flower's FedAvg with a central ``evaluate_fn`` on the same
evaluation set. The only addition is the measurement: the wall-clock time and accuracy
at each ``evaluate_fn`` call, kept in memory and written once after the last round."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from commonweal.ml.federated import accuracy

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    with np.load(str(cfg["eval-npz"])) as z:
        X, y = np.array(z["X"], np.float64), np.array(z["y"], np.intp)
    seen: list[dict[str, float]] = []

    def central(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        W, b = arrays.to_numpy_ndarrays()
        acc = accuracy((np.asarray(W), np.asarray(b)), X, y)
        seen.append({"round": server_round, "time": time.time(), "accuracy": acc})
        return MetricRecord({"accuracy": acc})

    n = int(cfg["min-nodes"])
    strategy = FedAvg(
        fraction_train=1.0,
        # Scored centrally each round (evaluate_fn), as ours is when the hub has an
        # evaluation set: no federated evaluation on the nodes.
        fraction_evaluate=0.0,
        min_train_nodes=n,
        min_evaluate_nodes=n,
        min_available_nodes=n,
    )
    labels, features = int(cfg["labels"]), int(cfg["features"])
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord([np.zeros((labels, features)), np.zeros(labels)]),
        num_rounds=int(cfg["num-server-rounds"]),
        train_config=ConfigRecord(
            {
                "local-epochs": int(cfg["local-epochs"]),
                "learning-rate": float(cfg["learning-rate"]),
                "l2": float(cfg["l2"]),
            }
        ),
        evaluate_fn=central,
    )
    Path(str(cfg["out-json"])).write_text(json.dumps(seen))
