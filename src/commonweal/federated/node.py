"""The member's side of federation: check the private data, commit to it, and run the
member's SuperNode — the logic behind ``commonweal node enroll|run``.

The data never leaves the machine. What the log gets (``federated.enroll``) is the item
count, per-label counts, and a Merkle root over salted commitments of the items; the salts
are derived from the member's secret key (HMAC), so nothing extra must be kept, and the
member can later prove any one item was in their node's data. The SuperNode runs with its
own ``FLWR_HOME``, the hub's CA, the node key, and the gate first on its ``PATH`` (see
``gate``): it runs only the app bundle the charter names.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commonweal.community.charter import validate_charter
from commonweal.errors import InvalidInput, Unauthorized
from commonweal.federated.gate import ENV as GATE_ENV
from commonweal.federated.gate import write_gate
from commonweal.federated.keys import make_node_key, node_key_path, read_public_line
from commonweal.federated.superlink import flower_env, free_port, stop_group, tool
from commonweal.files import iter_items
from commonweal.items import check_item
from commonweal.ledger.canonical import canonical
from commonweal.ledger.files import private_directory, write_private
from commonweal.ledger.merkle import tree_root
from commonweal.ml.privacy import find_personal_data
from commonweal.wire import commitment_of, label_of

__all__ = [
    "NodeData",
    "enroll_body",
    "item_salt",
    "node_dir",
    "prepare_node",
    "read_node_data",
    "run_supernode",
    "supernode_command",
]

SALT_CONTEXT = b"commonweal-federated-salt:"


def item_salt(secret: bytes, item: Any) -> bytes:
    """The salt of an item's commitment, derived from the member's secret key."""
    return hmac.new(secret, SALT_CONTEXT + canonical(item), hashlib.sha256).digest()[:16]


@dataclass
class NodeData:
    """What a node's data file holds, checked: counts, the enroll root, and warnings."""

    items: int
    labels: dict[str, int]
    root: str
    personal: list[str] = field(default_factory=list)  # where personal data seems to be


def read_node_data(path: Path, charter: dict[str, Any], secret: bytes) -> NodeData:
    """Read and check every item of ``path`` as ``contribute`` does (InvalidInput naming
    the first bad one); count labels, commit to each item, and note personal data."""
    rules = validate_charter(charter)
    task = rules.task
    if not rules.federated.enabled:
        raise InvalidInput("this community's charter does not enable federated training")
    if task is None or task.kind not in ("image-classification", "tabular-classification"):
        raise InvalidInput("federated training needs an image- or tabular-classification task")
    labels: Counter[str] = Counter()
    commitments: list[bytes] = []
    personal: list[str] = []
    for where, item in iter_items(path, charter):
        check_item(rules, item, where)
        labels[str(label_of(task.kind, item))] += 1
        commitments.append(bytes.fromhex(commitment_of(item_salt(secret, item), item)))
        text = item.get("caption") if task.kind == "image-classification" else None
        texts = [text] if isinstance(text, str) else []
        if task.kind == "tabular-classification":
            texts = [v for v in item["features"].values() if isinstance(v, str)]
        for t in texts:
            regions = rules.privacy.phone_regions
            kinds = sorted({f.kind for f in find_personal_data(t, regions=regions)})
            if kinds:
                personal.append(f"{where}: {', '.join(kinds)}")
    if not commitments:
        raise InvalidInput(f"{path} holds no items; a node needs data to train on")
    root = tree_root(sorted(commitments)).hex()
    ordered = {lb: labels[lb] for lb in task.labels if labels[lb]}
    return NodeData(sum(labels.values()), ordered, root, personal)


def enroll_body(
    data: NodeData, node_key: str, *, license: str, consent: list[str]
) -> dict[str, Any]:
    """The body of ``federated.enroll`` for this data and node key."""
    return {
        "node_key": node_key,
        "items": data.items,
        "labels": data.labels,
        "root": data.root,
        "license": license,
        "consent": consent,
    }


def node_public_line(member_key: Path) -> str:
    """The node key's public line, making the key first if the member has none."""
    path = node_key_path(member_key)
    if not path.exists():
        return make_node_key(path)
    return read_public_line(path)


def node_dir(member_key: Path) -> Path:
    """The node's working directory beside the member's key."""
    return member_key.with_name(member_key.name + ".node.d")


@dataclass(frozen=True)
class PreparedNode:
    """Paths and settings a SuperNode runs with."""

    directory: Path
    home: Path
    bin: Path
    ca: Path
    node_json: Path
    key: Path
    superlink: str
    app_sha256: str


def prepare_node(
    member_key: Path, federated: dict[str, Any], charter: dict[str, Any], data: Path, member: str
) -> PreparedNode:
    """Write the node directory: FLWR_HOME, the gate, the hub's CA and ``node.json``."""
    if not federated.get("enabled") or not federated.get("superlink"):
        raise InvalidInput("the hub runs no SuperLink now: federated training is not open")
    directory = private_directory(node_dir(member_key))
    home = private_directory(directory / "flwr-home")
    ca = directory / "ca.pem"
    ca.write_text(str(federated["ca_pem"]))
    bin_dir = directory / "bin"
    write_gate(bin_dir)
    node_json = directory / "node.json"
    doc = {"member": member, "data": str(data.resolve()), "charter": charter}
    write_private(node_json, json.dumps(doc, ensure_ascii=False))
    key = node_key_path(member_key)
    if not key.exists():
        raise InvalidInput(f"{key}: no node key; run `commonweal node enroll` first")
    return PreparedNode(
        directory,
        home,
        bin_dir,
        ca,
        node_json,
        key,
        str(federated["superlink"]),
        str(federated.get("app_sha256") or ""),
    )


def supernode_command(node: PreparedNode, port: int) -> list[str]:
    """The ``flower-supernode`` command line of a prepared node."""
    return [
        tool("flower-supernode"),
        "--root-certificates",
        str(node.ca),
        "--superlink",
        node.superlink,
        "--auth-supernode-private-key",
        str(node.key),
        "--port",
        str(port),
        "--node-config",
        f"node-json={json.dumps(str(node.node_json))}",
    ]


def supernode_env(node: PreparedNode, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The SuperNode's environment: its FLWR_HOME, the gate first on PATH, the logged hash."""
    env = flower_env(node.home, extra)
    env["PATH"] = os.pathsep.join([str(node.bin), env["PATH"]])
    env[GATE_ENV] = node.app_sha256
    return env


def start_supernode(
    node: PreparedNode,
    *,
    port: int = 0,
    log: Path | None = None,
    extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the SuperNode in its own process group (its output to ``log`` if given)."""
    out = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(
            supernode_command(node, port or free_port()),
            env=supernode_env(node, extra),
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=node.directory,
        )
    finally:
        if out is not None:
            out.close()


_REFUSED = ("code: 2004", "code: 2001", "No SuperNode found", "401")


def run_supernode(
    node: PreparedNode,
    *,
    port: int = 0,
    restart: Callable[[], PreparedNode | None] | None = None,
    every: float = 10.0,
) -> int:
    """Run the SuperNode in the foreground until it ends or Ctrl-C; its exit status.
    A refusal by the SuperLink (an unknown or unregistered key) becomes Unauthorized.

    ``restart``, asked every ``every`` seconds, returns a node to start afresh when the
    hub's SuperLink was restarted: Flower's SuperNode retries its old session forever
    against a new SuperLink, so the member's node would never train again."""
    log = node.directory / "supernode.log"
    log.write_bytes(b"")
    proc = start_supernode(node, port=port, log=log)
    try:
        while True:
            try:
                code = proc.wait(timeout=every if restart is not None else None)
                break
            except subprocess.TimeoutExpired:
                assert restart is not None
                fresh = restart()
                if fresh is not None:
                    stop_group(proc)
                    node = fresh
                    proc = start_supernode(node, port=port, log=log)
    except KeyboardInterrupt:
        stop_group(proc)
        return 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    text = log.read_text(errors="replace")
    if code != 0 and any(s in text for s in _REFUSED):
        raise Unauthorized("the hub does not know this node: enroll first, or you withdrew")
    return code
