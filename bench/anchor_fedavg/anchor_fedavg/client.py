"""The anchor's ClientApp: the node's data read as Commonweal's node reads it
(``load_node`` on the SuperNode's ``node-json``), trained with the same
``softmax_train`` recipe; the plain Flower train/evaluate handlers, nothing more."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from commonweal.federated.client_app import load_node
from commonweal.ml.federated import accuracy, softmax_train

app = ClientApp()


def _params(msg: Message) -> tuple[np.ndarray, np.ndarray]:
    W, b = msg.content["arrays"].to_numpy_ndarrays()
    return np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)


@app.train()
def train(msg: Message, context: Context) -> Message:
    # As ours does beside a hub evaluation set: every row trains, nothing is held out.
    data = load_node(Path(str(context.node_config["node-json"])), 0)
    config = msg.content["config"]
    X, y = data.X[data.train], data.y[data.train]
    W, b = softmax_train(
        _params(msg),
        X,
        y,
        epochs=int(config["local-epochs"]),
        lr=float(config["learning-rate"]),
        l2=float(config["l2"]),
    )
    content = RecordDict(
        {"arrays": ArrayRecord([W, b]), "metrics": MetricRecord({"num-examples": len(y)})}
    )
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    data = load_node(Path(str(context.node_config["node-json"])))
    X, y = data.X[data.holdout], data.y[data.holdout]
    acc = accuracy(_params(msg), X, y) if len(y) else 0.0
    content = RecordDict({"metrics": MetricRecord({"accuracy": acc, "num-examples": len(y)})})
    return Message(content, reply_to=msg)
