"""Commands for a federated member's node: ``node enroll`` commits to the member's private
data and logs the node's key; ``node run`` runs the member's Flower SuperNode against the
hub. The data stays on this machine; the node's logic lives in ``commonweal.federated``
(loaded inside the commands: Flower is heavy, and only these need it)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from commonweal.cli.hubs import connect
from commonweal.cli.options import HubOpt, JsonOpt, KeyOpt, load_key
from commonweal.cli.output import emit, err, out
from commonweal.errors import CommonwealError, Conflict, InvalidInput

__all__ = ["register"]

DataOpt = Annotated[
    Path, typer.Option("--data", help="Your private data: a CSV or JSONL file, or an image folder.")
]


def register(app: typer.Typer) -> None:
    """Add the ``node`` commands to ``app``."""
    node_app = typer.Typer(
        help="Train the community's model on your own machine (federated).", no_args_is_help=True
    )
    node_app.command("enroll")(enroll)
    node_app.command("run")(run)
    node_app.command("withdraw")(withdraw)
    app.add_typer(node_app, name="node")


def enroll(
    hub: HubOpt,
    key: KeyOpt,
    data: DataOpt,
    license: Annotated[str, typer.Option(help="SPDX license id for your data.")] = "CC-BY-4.0",
    consent: Annotated[
        str, typer.Option(help="Comma-separated: train,evaluate,commercial,publish.")
    ] = "train,evaluate",
    as_json: JsonOpt = False,
) -> None:
    """Enroll a node: check your data as a contribution is checked, commit to it (a Merkle
    root over salted item hashes), make a node key, and log both, signed by you."""
    from commonweal.federated.node import enroll_body, node_public_line, read_node_data

    k = load_key(key)
    scopes = [c.strip() for c in consent.split(",") if c.strip()]
    with connect(hub) as c:
        charter = c.community()["charter"]
        found = read_node_data(data, charter, k.seed)
        for line in found.personal:  # for the member's eyes only: nothing of it is sent
            err.print(f"[yellow]personal data?[/] {line}", highlight=False)
        body = enroll_body(found, node_public_line(key), license=license, consent=scopes)
        res = c.enroll_node(k, body)
    info: dict[str, Any] = {"items": found.items, "labels": found.labels, "root": found.root}
    info["receipt"] = res
    emit(info, as_json, lambda: out.print(f"Enrolled a node with {found.items} items"))


def run(
    hub: HubOpt,
    key: KeyOpt,
    data: DataOpt,
    port: Annotated[int, typer.Option(help="The SuperNode's local port (0: any free).")] = 0,
) -> None:
    """Run your node: it trains when the hub starts a round, until you press Ctrl-C."""
    from commonweal.federated.node import prepare_node, read_node_data, run_supernode

    k = load_key(key)
    with connect(hub) as c:
        charter = c.community()["charter"]
        found = read_node_data(data, charter, k.seed)
        logged = c.enrollment(k.key_id)
        federated = c.federated()
    if logged is None:
        raise Conflict("you have no enrolled node: run `commonweal node enroll` first")
    if logged["root"] != found.root:
        raise InvalidInput(
            f"{data} is not the data you enrolled (root {found.root[:16]}…, logged "
            f"{logged['root'][:16]}…): enroll again"
        )
    if logged.get("status") != "enrolled":
        raise Conflict(
            f"your node is {logged.get('status')}: enroll again (`commonweal node enroll`) "
            "to take part"
        )
    federated = _wait_registered(hub, k.key_id, federated)
    node = prepare_node(key, federated, charter, data, k.key_id)
    err.print(f"Node running against {node.superlink}; Ctrl-C stops it.")
    seen = {"instance": federated.get("superlink_instance")}

    def restart() -> Any:
        """A fresh node when the hub's SuperLink was restarted (a new instance)."""
        try:
            with connect(hub) as c:
                now = c.federated()
        except CommonwealError:
            return None  # the hub is away: keep the node, it retries on its own
        instance = now.get("superlink_instance")
        if not now.get("superlink") or instance in (None, seen["instance"]):
            return None
        seen["instance"] = instance
        err.print("The hub's SuperLink restarted: reconnecting your node.")
        return prepare_node(key, now, charter, data, k.key_id)

    # Stopped by a service manager (SIGTERM), not Ctrl-C: exit through Python, so the
    # SuperNode (its own process group) is stopped with us rather than left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    code = run_supernode(node, port=port, restart=restart)
    if code not in (0, 130):
        raise InvalidInput(f"the node stopped (status {code}); see {node.directory}/supernode.log")


def _wait_registered(hub: str, member: str, federated: dict[str, Any]) -> dict[str, Any]:
    """The hub's federation once it has registered this member's node with its SuperLink
    (it follows the log within seconds of an enrollment); a node that connected earlier
    would be refused."""
    import time

    deadline = time.monotonic() + 30
    said = False
    while True:
        me = next((n for n in federated.get("nodes", []) if n["member"] == member), None)
        if federated.get("superlink") and me is not None and me.get("registered", True):
            return federated
        if time.monotonic() > deadline:
            return federated  # prepare_node says what is missing
        if not said:
            err.print("Waiting for the hub to register your node with its SuperLink…")
            said = True
        time.sleep(1.0)
        with connect(hub) as c:
            federated = c.federated()


def withdraw(hub: HubOpt, key: KeyOpt, as_json: JsonOpt = False) -> None:
    """Take your node out of later rounds."""
    k = load_key(key)
    with connect(hub) as c:
        res = c.withdraw_node(k)
    emit(res, as_json, lambda: out.print("Your node is withdrawn from later rounds"))
