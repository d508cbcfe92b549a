"""The ClientApp a member's node runs (Flower's Message API).

Flower starts one process per message, so each message reads the node's data afresh:
``node.json`` (written by ``commonweal node run``, named by the SuperNode's node config
``node-json``) says where the data is and holds the community's charter. The node trains
the charter's softmax on all but its held-out part (``local_holdout_pct``, a deterministic
split) and scores the model it is sent on the held-out part, and, when the hub has no
evaluation set of its own, each coalition model the hub sends with it. Nothing but the two
weight arrays and counts leaves the machine.

``COMMONWEAL_SIMULATE_ATTACK`` (``flip:S``, ``scale:S``, ``nan``) turns the node Byzantine:
a test and benchmark knob standing for a member who changed their code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from numpy.typing import NDArray

from commonweal.community.charter import Charter, validate_charter
from commonweal.errors import InvalidInput
from commonweal.files import iter_items
from commonweal.hub.features import featurize
from commonweal.ml.federated import Params, accuracy, correct_counts, local_split, softmax_train
from commonweal.wire import label_of

__all__ = ["ATTACK_ENV", "CANDIDATES", "CORRECT", "NodeData", "app", "attack", "load_node"]

ATTACK_ENV = "COMMONWEAL_SIMULATE_ATTACK"
# The ServerApp's record keys (server_app.CANDIDATES / CORRECT; not imported from there, so
# a node does not load the server's strategies): the coalition models an evaluate message
# may carry, and the reply's correct counts.
CANDIDATES = "candidates"
CORRECT = "correct"
# What the DP wrapper puts in a train message's config when clipping is the client's job.
_CLIPPING_KEY = "clipping_norm"


class NodeData:
    """A node's featurized data, split into the part it trains on and the held-out part."""

    def __init__(
        self, charter: Charter, items: list[dict[str, Any]], holdout_pct: int | None = None
    ) -> None:
        task = charter.task
        if task is None or task.kind not in ("image-classification", "tabular-classification"):
            raise InvalidInput("federated training needs an image- or tabular-classification task")
        index = {label: i for i, label in enumerate(task.labels)}
        labels = [str(label_of(task.kind, it)) for it in items]
        unknown = sorted({lb for lb in labels if lb not in index})
        if unknown:
            raise InvalidInput(f"labels {unknown[:5]} are not the charter's; check the data")
        self.X = np.asarray(featurize(task, items), dtype=np.float64)
        self.y = np.array([index[lb] for lb in labels], dtype=np.intp)
        fed = charter.federated
        pct = fed.local_holdout_pct if holdout_pct is None else holdout_pct
        self.train, self.holdout = local_split(len(items), pct, charter.training.seed)


def load_node(node_json: Path, holdout_pct: int | None = None) -> NodeData:
    """The data ``node.json`` names, read with the charter it holds; ``holdout_pct`` (the
    server's, when it sends one) overrides the charter's ``local_holdout_pct``."""
    doc = json.loads(node_json.read_text())
    charter = validate_charter(doc["charter"])
    items = [item for _, item in iter_items(Path(doc["data"]), doc["charter"])]
    if not items:
        raise InvalidInput(f"{doc['data']} holds no items")
    return NodeData(charter, items, holdout_pct)


def attack(params: Params, how: str) -> Params:
    """The update a Byzantine node sends instead of ``params`` (see the module docstring)."""
    W, b = params
    if how == "nan":
        return np.full_like(W, np.nan), b
    kind, _, factor = how.partition(":")
    s = float(factor or "1")
    if kind == "flip":
        return -s * W, -s * b
    if kind == "scale":
        return s * W, s * b
    raise InvalidInput(f"{ATTACK_ENV}={how!r}: use flip:S, scale:S or nan")


def _node_data(context: Context, holdout_pct: int | None = None) -> NodeData:
    where = context.node_config.get("node-json")
    if not isinstance(where, str) or not where:
        raise InvalidInput(
            "this SuperNode has no node-json in its node config; start it with "
            "`commonweal node run`"
        )
    pct = max(0, min(50, holdout_pct)) if holdout_pct is not None else None
    return load_node(Path(where), pct)


def _arrays(msg: Message) -> Params:
    arrays: list[NDArray[Any]] = msg.content.array_records["arrays"].to_numpy_ndarrays()
    return np.asarray(arrays[0], dtype=np.float64), np.asarray(arrays[1], dtype=np.float64)


def _client_clipping(msg: Message, context: Context, call_next: Any) -> Message:
    """Flower's ``fixedclipping_mod`` when the server asks for client-side clipping (its DP
    wrapper puts the clipping norm in the config), else nothing: one app serves every run."""
    if msg.metadata.message_type == MessageType.TRAIN:
        configs = list(msg.content.config_records.values())
        if configs and _CLIPPING_KEY in configs[0]:
            return fixedclipping_mod(msg, context, call_next)
    reply: Message = call_next(msg, context)
    return reply


app = ClientApp(mods=[_client_clipping])


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train from the sent weights on the node's training part; the new weights."""
    config = msg.content.config_records["config"]
    sent_pct = config.get("holdout-pct")
    data = _node_data(context, int(str(sent_pct)) if sent_pct is not None else None)
    start = _arrays(msg)
    X, y = data.X[data.train], data.y[data.train]
    params = softmax_train(
        start,
        X,
        y,
        epochs=int(str(config["local-epochs"])),
        lr=float(str(config["learning-rate"])),
        l2=float(str(config["l2"])),
    )
    how = os.environ.get(ATTACK_ENV, "")
    if how:
        params = attack(params, how)
    content = RecordDict(
        {
            "arrays": ArrayRecord([params[0], params[1]]),
            "metrics": MetricRecord({"num-examples": len(y)}),
        }
    )
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Accuracy of the sent weights on the node's held-out part, and the correct counts of
    the sent weights and then of each coalition candidate the message carries.

    These are the node's own claims about data only it sees: the hub cannot check them, and
    a node that lies here moves the coalition utilities (and so members' values) without
    its training update ever looking odd."""
    data = _node_data(context)
    X, y = data.X[data.holdout], data.y[data.holdout]
    sent = _arrays(msg)
    acc = accuracy(sent, X, y) if len(y) else 0.0
    models = (sent[0][np.newaxis], sent[1][np.newaxis])
    if CANDIDATES in msg.content.array_records:
        stacked = msg.content.array_records[CANDIDATES].to_numpy_ndarrays()
        if len(stacked) != 2:
            raise InvalidInput(f"the candidates record has {len(stacked)} arrays, not 2 (W, b)")
        models = (
            np.concatenate([models[0], np.asarray(stacked[0], dtype=np.float64)]),
            np.concatenate([models[1], np.asarray(stacked[1], dtype=np.float64)]),
        )
    content = RecordDict(
        {
            "metrics": MetricRecord({"accuracy": acc, "num-examples": len(y)}),
            CORRECT: ArrayRecord([correct_counts(models, X, y)]),
        }
    )
    return Message(content, reply_to=msg)
