"""Commands for the community's model: training, versions, lineage, model cards,
predictions, API keys for its consumers, metered revenue, and a version's artifact."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from commonweal.cli.data import file_limits, read_items
from commonweal.cli.hubs import connect, hub_directory
from commonweal.cli.ids import ITEM_MIN, KEY_MIN, pick, short_ids
from commonweal.cli.options import HubDirOpt, HubOpt, JsonOpt, KeyOpt, ModelOpt, load_key
from commonweal.cli.output import emit, err, out, stages
from commonweal.client import is_remote
from commonweal.errors import InvalidInput, Unauthorized
from commonweal.files import read_bytes, read_text
from commonweal.wire import hash_api_key

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this area's commands, and the ``apikey``, ``revenue`` and ``model`` commands,
    to ``app``."""
    apikey_app = typer.Typer(help="API keys for the model's consumers.", no_args_is_help=True)
    revenue_app = typer.Typer(
        help="Metered use of the model, and the treasury.", no_args_is_help=True
    )
    model_app = typer.Typer(help="A model version's artifact.", no_args_is_help=True)
    app.command()(train)
    app.command()(models)
    app.command()(lineage)
    app.command()(card)
    app.command()(predict)
    apikey_app.command("create")(apikey_create)
    apikey_app.command("revoke")(apikey_revoke)
    apikey_app.command("list")(apikey_list)
    revenue_app.command("close")(revenue_close)
    revenue_app.command("treasury")(revenue_treasury)
    model_app.command("export")(model_export)
    app.add_typer(apikey_app, name="apikey")
    app.add_typer(revenue_app, name="revenue")
    app.add_typer(model_app, name="model")


def _metrics_text(metrics: dict[str, Any]) -> str:
    """The headline metrics; the per-label ones are in `--per-label` and `--json`."""
    return ", ".join(f"{k} {float(v):.4f}" for k, v in metrics.items() if "." not in k)


def _headline(metrics: dict[str, Any]) -> str:
    return "accuracy" if "accuracy" in metrics else "r2"


def _beside(metrics: dict[str, Any]) -> str:
    """The headline metric of one unsharded model, and the change from the previous
    version on the evaluation items both were scored on."""
    name = _headline(metrics)
    parts = []
    if f"unsharded.{name}" in metrics:
        parts.append(f"unsharded {float(metrics[f'unsharded.{name}']):.4f}")
    if f"compared.{name}" in metrics and f"previous.{name}" in metrics:
        change = float(metrics[f"compared.{name}"]) - float(metrics[f"previous.{name}"])
        shared = int(metrics["compared.items"])
        parts.append(f"{change:+.4f} vs previous on {shared} shared items")
    return "; ".join(parts)


def _per_label(metrics: dict[str, Any]) -> str:
    labels = sorted({k.split(".", 1)[1] for k in metrics if k.startswith("precision.")})
    return "\n".join(
        f"{label}  P {float(metrics[f'precision.{label}']):.2f}  "
        f"R {float(metrics[f'recall.{label}']):.2f}"
        for label in labels
    )


def train(
    hub: HubDirOpt,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Reuse the latest version's shard models wherever their data is unchanged "
            "(after a withdrawal, only the shards that held withdrawn items retrain).",
        ),
    ] = False,
    federated: Annotated[
        bool,
        typer.Option(
            "--federated",
            help="Train with the members' own nodes (Flower): their data never leaves their "
            "machines. Uses the SuperLink `serve --federated` runs, or starts one and waits "
            "for enrolled nodes to connect.",
        ),
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            help="With --federated: seconds to wait for the charter's minimum of nodes to "
            "come online."
        ),
    ] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Train a new model version on every accepted item that consents to training, or
    (--federated) on the enrolled members' nodes."""
    if federated:
        _train_federated(hub, wait, as_json)
        return
    with hub_directory(hub) as h, stages(not as_json) as progress:
        res = h.models.train(incremental=incremental, progress=progress)
    emit(
        res,
        as_json,
        lambda: out.print(
            f"Model version [bold]{res['version']}[/] (log entry {res['entry']}): "
            f"{res['manifest']['count']} items, evaluated on {res['evaluation']['count']}: "
            f"{_metrics_text(res['metrics'])}\n"
            f"  shards retrained: {res['retrained'] or 'none'}; reused: {res['reused'] or 'none'}\n"
            f"  manifest root {res['manifest']['root']}\n"
            f"  artifact sha256 {res['artifact']['sha256']}"
        ),
    )


def _train_federated(hub: str, wait: float, as_json: bool) -> None:
    from commonweal.federated.service import Federation

    with hub_directory(hub) as h, stages(not as_json) as progress:
        fed = Federation.attach(h)
        if fed is not None:
            res = fed.train(progress=progress, wait=wait)
        else:
            with Federation(h) as own:
                res = own.train(progress=progress, wait=wait)
        names = {m["key"]: m["name"] for m in h.members()}
    fl = res["federated"]

    def render() -> None:
        who = ", ".join(
            f"{names.get(p['member'], p['member'][:12])} ({p['items']} items, {p['rounds']} rounds)"
            for p in fl["participants"]
        )
        start = f"from v{fl['start']}" if fl["start"] else "from zeros"
        out.print(
            f"Model version [bold]{res['version']}[/] (log entry {res['entry']}), federated "
            f"run {fl['run']}, {len(fl['rounds'])} rounds {start}: "
            f"{_metrics_text(res['metrics'])}\n"
            f"  members' nodes: {who or 'none'}\n"
            f"  artifact sha256 {res['artifact']['sha256']}"
        )

    emit(res, as_json, render)


def models(
    hub: HubOpt,
    per_label: Annotated[
        bool, typer.Option("--per-label", help="Each label's precision and recall too.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List model versions with their metrics on the evaluation set, beside one unsharded
    model's and the change from the previous version on the items both were scored on."""
    with connect(hub) as c:
        rows = c.models()

    def render() -> None:
        if not rows:
            out.print("No model yet: train one with `commonweal train --hub HUB_DIR`.")
            return
        columns = ["version", "entry", "trained", "items", "eval", "metrics", "beside"]
        t = Table(*columns, *(["per label"] if per_label else []))
        for m in rows:
            cells = [
                str(m["version"]),
                str(m["entry"]),
                m["log_time"][:19],
                str(m["items"]),
                str(m["eval_items"]),
                _metrics_text(m["metrics"]),
                _beside(m["metrics"]),
            ]
            t.add_row(*cells, *([_per_label(m["metrics"])] if per_label else []))
        out.print(t)

    emit(rows, as_json, render)


def lineage(
    hub: HubOpt,
    item: Annotated[str | None, typer.Argument(help="A contribution id.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="List the items behind this version.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Which versions used an item (ID), or which items made a version (--model V).

    With both, prove the item is or is not in that version's manifest."""
    if item is None and model is None:
        raise InvalidInput("give a contribution ID, --model V, or both")
    with connect(hub) as c:
        if item is not None and model is not None:
            res, render = c.prove_item(item, model), _print_item_proof
        elif item is not None:
            res, render = c.item_lineage(item), _print_item_lineage
        else:
            res, render = c.model_lineage(str(model)), _print_model_lineage
    emit(res, as_json, lambda: render(res, item))


def _print_item_proof(res: dict[str, Any], item: str | None) -> None:
    out.print(
        f"Item {item} is {'IN' if res['included'] else 'NOT in'} version "
        f"{res['version']}: manifest root {res['root']} (log entry {res['entry']}); "
        + (
            "inclusion proof attached"
            if res["included"]
            else f"proof: its neighbours {[n['item'] for n in res['neighbours']]} "
            "are adjacent leaves of the sorted manifest"
        )
    )


def _print_item_lineage(res: dict[str, Any], item: str | None) -> None:
    out.print(
        f"Item {item} ({res['status']}): used by versions "
        f"{[v['version'] for v in res['versions']] or 'none'}; "
        f"not in {res['not_in'] or 'none'}"
    )


def _print_model_lineage(res: dict[str, Any], item: str | None) -> None:
    out.print(
        f"Version {res['version']}: {len(res['items'])} items, manifest root "
        f"{res['manifest_root']} (log entry {res['entry']}), the stored list matches it"
    )
    t = Table("member", "name", "items")
    short = short_ids((m["member"] for m in res["members"]), KEY_MIN)
    for m in res["members"]:
        t.add_row(short[m["member"]], m["name"], str(m["items"]))
    out.print(t)


def card(
    hub: HubOpt,
    model: ModelOpt = "latest",
    output: Annotated[
        Path, typer.Option("--out", "-o", help="Directory to write the card and datasheet to.")
    ] = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Write a version's model card (Markdown) and Croissant dataset description."""
    with connect(hub) as c:
        markdown = c.card(model, "markdown")
        croissant = c.card(model, "croissant")
        version = c.model(model)["version"]
    output.mkdir(parents=True, exist_ok=True)
    md_path = output / f"model-card-v{version}.md"
    cr_path = output / f"croissant-v{version}.json"
    md_path.write_text(markdown)
    cr_path.write_text(json.dumps(croissant, indent=2, ensure_ascii=False) + "\n")
    res = {"version": version, "model_card": str(md_path), "croissant": str(cr_path)}
    emit(res, as_json, lambda: out.print(f"Wrote {md_path} and {cr_path}"))


# The hub takes at most this many inputs a call (hub.serving.MAX_INPUTS): a file holding
# more is refused before it is all read.
PREDICT_INPUTS = 1000
_FILE_SUFFIXES = (".txt", ".json", ".jsonl", ".csv", ".png", ".jpg", ".jpeg")


def _looks_like_file(value: str) -> bool:
    """Whether INPUT names a file: it exists, or it is one word ending in a file suffix
    (so that a mistyped file name is an error, not a text to predict)."""
    path = Path(value)
    if path.is_file():
        return True
    return not any(ch.isspace() for ch in value) and path.suffix.lower() in _FILE_SUFFIXES


def _file_inputs(path: Path, task: dict[str, Any], limits: dict[str, Any]) -> list[dict[str, Any]]:
    """Inputs from a file: an image; rows of a .jsonl/.csv; a .json object or list; or
    any other file's non-empty lines (texts, or one JSON object a line). Each file is read
    within bounds (``files``): an image no larger than an item, text at most what
    PREDICT_INPUTS inputs could take."""
    if not os.path.lexists(path):
        raise InvalidInput(f"{path} does not exist (give text in quotes to predict it)")
    charter = {"task": task, "limits": limits}
    _, max_line, max_item = file_limits(charter)
    suffix = path.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        return [
            {"image": base64.b64encode(read_bytes(path, str(path), max_bytes=max_item)).decode()}
        ]
    if suffix in (".jsonl", ".csv"):
        rows = read_items(path, charter, max_items=PREDICT_INPUTS)
        return [{k: v for k, v in r.items() if k not in ("label", "target")} for r in rows]
    text = read_text(path, str(path), max_bytes=PREDICT_INPUTS * max_line)
    if suffix == ".json":
        return _json_inputs(text, str(path))
    lines = [line for line in text.splitlines() if line.strip()]
    if task["kind"] == "text-classification":
        return [{"text": line} for line in lines]
    return [x for n, line in enumerate(lines, 1) for x in _json_inputs(line, f"{path}:{n}")]


def _json_inputs(text: str, where: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(text, parse_float=str)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{where} looks like JSON but does not parse") from None
    return doc if isinstance(doc, list) else [doc]


def _inputs(
    value: str, task: dict[str, Any], limits: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """What to predict: a JSON object or list, a file (see ``_file_inputs``), or text."""
    if value.lstrip().startswith(("{", "[")):
        return _json_inputs(value, "INPUT")
    if _looks_like_file(value):
        return _file_inputs(Path(value), task, limits or {})
    if task["kind"] == "text-classification":
        return [{"text": value}]
    raise InvalidInput(
        f"INPUT for a {task['kind']} model is a JSON object, an image file, or a "
        ".json/.jsonl/.csv file"
    )


def predict(
    hub: HubOpt,
    input_: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="Text, JSON, or a file: an image, .jsonl/.csv rows, a .json list, or any "
            "other file's lines (one input a line).",
        ),
    ],
    model: ModelOpt = "latest",
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="COMMONWEAL_API_KEY",
            help="Your API key (metered). On a hub directory, without a key, the hub's own "
            "unmetered use.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Predict with a model version."""
    with connect(hub) as c:
        charter = c.community()["charter"]
        inputs = _inputs(input_, charter["task"], charter.get("limits"))
        if api_key:
            res = c.predict(inputs, api_key=api_key, version=model)
        elif is_remote(hub):
            raise Unauthorized("predicting on a remote hub needs --api-key (or COMMONWEAL_API_KEY)")
        else:
            res = c.embedded_hub.models.predict(model, inputs, api_key=None, metered=False)

    def render() -> None:
        for p in res["predictions"]:
            if "label" in p:
                out.print(f"{p['label']}  (score {p['score']:.3f}, version {res['version']})")
            else:
                out.print(f"{p['value']:.6g}  (version {res['version']})")
        if "credits" in res:
            err.print(f"{res['calls']} call(s) metered: {res['credits']} credits")

    emit(res, as_json, render)


def apikey_create(
    hub: HubOpt,
    key: KeyOpt,
    consumer: Annotated[str, typer.Option(help="Who the key is for.")],
    quota: Annotated[
        int | None, typer.Option(help="Calls per UTC day (default: the charter's maximum).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue an API key to a consumer. The secret is printed once; the log keeps its hash."""
    with connect(hub) as c:
        secret, ack = c.create_apikey(load_key(key), consumer, quota_per_day=quota)
    res = {"api_key": secret, "key_hash": hash_api_key(secret), "consumer": consumer, **ack}
    emit(
        res,
        as_json,
        lambda: out.print(
            f"API key for {consumer} (shown once; keep it secret):\n  {secret}\n"
            f"key hash {res['key_hash']}, logged at entry {ack['entries'][0]['index']}"
        ),
    )


def apikey_revoke(
    hub: HubOpt,
    key: KeyOpt,
    key_hash: Annotated[
        str, typer.Argument(help="The key's hash, or a unique prefix (see `apikey list`).")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key you issued (or one the charter lets you revoke)."""
    with connect(hub) as c:
        if len(key_hash) != 64:
            hashes = [k["key_hash"] for k in c.projections()["apikeys"]]
            found = [h for h in hashes if h.startswith(key_hash.lower())]
            key_hash = pick("API key", key_hash, found, {})
        ack = c.revoke_apikey(load_key(key), key_hash)
    ack["key_hash"] = key_hash
    emit(ack, as_json, lambda: out.print(f"Revoked {key_hash}"))


def apikey_list(hub: HubOpt, as_json: JsonOpt = False) -> None:
    """The community's API keys (hashes, consumers, quotas, status)."""
    with connect(hub) as c:
        rows = c.projections()["apikeys"]
        names = {m["key"]: m["name"] for m in c.members()}
    hashes = short_ids((k["key_hash"] for k in rows), ITEM_MIN)

    def render() -> None:
        t = Table("key hash", "consumer", "quota/day", "status", "issued by")
        for k in rows:
            t.add_row(
                hashes[k["key_hash"]],
                k["consumer"],
                str(k["quota_per_day"]),
                k["status"],
                names.get(k["issued_by"], k["issued_by"]),
            )
        out.print(t)

    emit(rows, as_json, render)


def revenue_close(hub: HubDirOpt, as_json: JsonOpt = False) -> None:
    """Bill every unbilled call now, in one signed revenue event (the server does this
    every charter period on its own)."""
    with hub_directory(hub) as h:
        res = h.models.close_revenue()
    emit(
        res,
        as_json,
        lambda: out.print(
            "Nothing to bill."
            if res is None
            else f"Billed {sum(u['calls'] for u in res['usage'])} calls for {res['credits']} "
            f"credits (log entry {res['entry']}); treasury balance {res['balance']}"
        ),
    )


def revenue_treasury(hub: HubOpt, as_json: JsonOpt = False) -> None:
    """The treasury's balance, and the revenue and calls billed so far."""
    with connect(hub) as c:
        res = c.treasury()
    emit(
        res,
        as_json,
        lambda: out.print(
            f"Treasury: {res['balance']} credits (revenue {res['revenue']} from "
            f"{res['calls']} calls)"
        ),
    )


def model_export(
    hub: HubDirOpt,
    model: ModelOpt = "latest",
    output: Annotated[Path | None, typer.Option("--out", "-o", help="The .zip to write.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a version's artifact: the zip whose SHA-256 the log records."""
    with hub_directory(hub) as h:
        version, data = h.models.export_artifact(model)
        logged = h.models.version(version)["artifact_sha256"]
    path = output or Path(f"model-v{version}.zip")
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    res = {"version": version, "path": str(path), "sha256": digest, "matches_log": digest == logged}
    emit(
        res,
        as_json,
        lambda: out.print(
            f"Wrote {path} ({len(data)} bytes), sha256 {digest}: "
            + ("matches the log" if res["matches_log"] else "[red]does NOT match the log[/]")
        ),
    )
