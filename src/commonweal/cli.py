"""The ``commonweal`` command line.

Thin over the SDK: a member's key stays on their machine and signs here; ``--hub`` is an
http(s) URL (a remote hub) or a hub directory (embedded: the real app, in-process). Every
command that prints data takes ``--json`` and then writes one JSON document to stdout and
nothing else; every failure prints one line on stderr and exits non-zero.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from commonweal import __version__
from commonweal.errors import CommonwealError, ConfigError, InvalidInput, VerificationFailed

app = typer.Typer(
    help="Commonweal: a hub for community-owned AI, on a log anyone can verify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ledger_app = typer.Typer(
    help="Read, prove, export and verify the community's log.", no_args_is_help=True
)
key_app = typer.Typer(help="Member keys.", no_args_is_help=True)
invite_app = typer.Typer(
    help="Invitations, for communities that join by invite.", no_args_is_help=True
)
member_app = typer.Typer(help="Act on other members.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(key_app, name="key")
app.add_typer(invite_app, name="invite")
app.add_typer(member_app, name="member")

out = Console(soft_wrap=True)
err = Console(stderr=True)

HubOpt = Annotated[str, typer.Option("--hub", help="Hub directory, or http(s) URL of a hub.")]
HubDirOpt = Annotated[Path, typer.Option("--hub", help="Hub directory (on this machine).")]
KeyOpt = Annotated[Path, typer.Option("--key", help="Your member key file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _emit(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        render()


@contextmanager
def _client(hub: str) -> Iterator[Any]:
    from commonweal.client import HubClient

    with HubClient(hub) as c:
        yield c


def _load_key(path: Path) -> Any:
    from commonweal.ledger.keys import SigningKey

    return SigningKey.load(path)


@contextmanager
def _stages(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar on stderr whose label follows the stage the work is in:
    ``update(stage, done, total)``. Silent when disabled or not on a terminal."""
    if not enabled or not err.is_terminal:
        yield lambda stage, done, total: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        yield update


@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar for work with one stage: ``update(done, total)``."""
    with _stages(enabled) as update:
        yield lambda done, total: update(label, done, total)


@contextmanager
def _hub_dir(hub: Path) -> Iterator[Any]:
    """The hub in a local directory, for the operator's own jobs (rebuild, train, …)."""
    from commonweal.hub import Hub

    h = Hub.open(hub)
    try:
        yield h
    finally:
        h.close()


# -- community ---------------------------------------------------------------------------


@app.command()
def init(
    hub_dir: Annotated[Path, typer.Argument(help="Directory to create the hub in.")],
    name: Annotated[str | None, typer.Option(help="The community's name.")] = None,
    join_policy: Annotated[str, typer.Option(help="open, invite or approval.")] = "open",
    description: Annotated[str, typer.Option(help="A line about the community.")] = "",
    charter: Annotated[
        Path | None, typer.Option(help="A charter TOML file (instead of --name etc.).")
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="text-classification, tabular-classification, tabular-regression "
            "or image-classification (tabular tasks need --charter)."
        ),
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="Comma-separated labels, for a classification task.")
    ] = None,
    founder_name: Annotated[str, typer.Option(help="Your name as founder.")] = "founder",
    founder_key: Annotated[
        Path | None, typer.Option(help="Use this member key as founder (default: make one).")
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            help="Database URL (default: SQLite in the hub directory), "
            "e.g. postgresql+psycopg://user@host/db."
        ),
    ] = None,
    origin: Annotated[
        str | None, typer.Option(help="The log's origin line (default: from the name).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a community: its database, the hub's key, the founder's key and the charter."""
    from commonweal.community.charter import charter_from_file, validate_charter
    from commonweal.hub import FOUNDER_KEY_FILE, Hub

    if charter is not None:
        ch = charter_from_file(charter)
    elif name is None:
        raise InvalidInput("give the community a --name (or a --charter file)")
    else:
        doc: dict[str, Any] = {"name": name, "join_policy": join_policy, "description": description}
        if task is not None:
            doc["task"] = {"kind": task}
            if labels:
                doc["task"]["labels"] = [x.strip() for x in labels.split(",") if x.strip()]
        ch = validate_charter(doc, where="charter")
    fkey = _load_key(founder_key) if founder_key else None
    hub, founder = Hub.init(
        hub_dir,
        charter=ch,
        founder_name=founder_name,
        founder_key=fkey,
        database=database,
        origin=origin,
    )
    info = {
        "hub": str(hub_dir),
        "name": ch.name,
        "origin": hub.origin,
        "verifier_key": str(hub.verifier),
        "founder": founder.key_id,
        "founder_key_file": str(founder_key or Path(hub_dir) / FOUNDER_KEY_FILE),
        "checkpoint": hub.log.checkpoint(),
    }
    hub.close()
    _emit(
        info,
        as_json,
        lambda: out.print(
            f"Created [bold]{ch.name}[/] in {hub_dir}\n"
            f"  origin        {info['origin']}\n"
            f"  verifier key  {info['verifier_key']}\n"
            f"  founder key   {info['founder_key_file']} (keep it safe; it signs your acts)"
        ),
    )


@key_app.command("new")
def key_new(
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the key (mode 0600).")],
    as_json: JsonOpt = False,
) -> None:
    """Make a new Ed25519 member key."""
    from commonweal.ledger.keys import SigningKey

    key = SigningKey.generate()
    key.save(out_path)
    _emit(
        {"key_id": key.key_id, "file": str(out_path)},
        as_json,
        lambda: out.print(f"Wrote {out_path}\n  key id {key.key_id}"),
    )


@key_app.command("show")
def key_show(key: KeyOpt, as_json: JsonOpt = False) -> None:
    """Print a key file's public key id."""
    k = _load_key(key)
    _emit({"key_id": k.key_id}, as_json, lambda: out.print(k.key_id))


@app.command()
def join(
    hub: HubOpt,
    key: KeyOpt,
    name: Annotated[str, typer.Option(help="Your name in the community.")],
    invite: Annotated[str | None, typer.Option(help="Invite token, if the charter asks.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Join a community: sign a join event with your key and send it to the hub."""
    k = _load_key(key)
    with _client(hub) as c:
        res = c.join(k, name, invite=invite)
        me = next((m for m in c.members() if m["key"] == k.key_id), None)
    status = me["status"] if me else "unknown"
    res["status"] = status
    _emit(
        res,
        as_json,
        lambda: out.print(
            f"Joined as [bold]{name}[/] (entry {res['entries'][0]['index']}, status {status})"
        ),
    )


@invite_app.command("create")
def invite_create(hub: HubOpt, key: KeyOpt, as_json: JsonOpt = False) -> None:
    """Register an invite token and print it; give it to the person you invite."""
    k = _load_key(key)
    with _client(hub) as c:
        token, res = c.create_invite(k)
    res["token"] = token
    _emit(res, as_json, lambda: out.print(f"Invite token (give it to the invitee): {token}"))


@member_app.command("approve")
def member_approve(
    member: Annotated[str, typer.Argument(help="Key id of the pending member.")],
    hub: HubOpt,
    key: KeyOpt,
    as_json: JsonOpt = False,
) -> None:
    """Admit a pending member (communities whose join policy is approval)."""
    k = _load_key(key)
    with _client(hub) as c:
        res = c.approve(k, member)
    _emit(res, as_json, lambda: out.print(f"Approved {member[:16]}…"))


@app.command()
def members(hub: HubOpt, as_json: JsonOpt = False) -> None:
    """List the community's members."""
    with _client(hub) as c:
        rows = c.members()

    def render() -> None:
        t = Table("name", "key", "status", "role", "joined at entry")
        for m in sorted(rows, key=lambda r: r["joined_index"]):
            t.add_row(
                m["name"], m["key"][:16] + "…", m["status"], m["role"], str(m["joined_index"])
            )
        out.print(t)

    _emit({"members": rows}, as_json, render)


@app.command()
def serve(
    hub: HubDirOpt,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the hub's HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from commonweal.api import create_app
    from commonweal.hub import Hub

    h = Hub.open(hub)
    err.print(f"Serving {h.origin} at http://{host}:{port} (API docs at /docs)")
    from threadpoolctl import threadpool_limits

    # Requests are single inputs: BLAS threads would only contend with the server's own.
    threadpool_limits(1, user_api="blas")
    uvicorn.run(create_app(h, billing=True), host=host, port=port, log_level="info")


@app.command()
def rebuild(hub: HubDirOpt, as_json: JsonOpt = False) -> None:
    """Drop every projection table and recreate it by replaying the log."""
    with _hub_dir(hub) as h:
        counts = h.rebuild()
    _emit(
        counts,
        as_json,
        lambda: out.print(
            "Rebuilt from "
            + str(counts["entries"])
            + " entries: "
            + ", ".join(f"{k} {v}" for k, v in counts.items() if k != "entries")
        ),
    )


# -- ledger ------------------------------------------------------------------------------


@ledger_app.command("checkpoint")
def ledger_checkpoint(hub: HubOpt, as_json: JsonOpt = False) -> None:
    """Print the latest signed checkpoint (a C2SP signed note)."""
    from commonweal.ledger.note import parse_checkpoint

    with _client(hub) as c:
        note, verifier = c.checkpoint(), c.verifier()
    cp = parse_checkpoint(note, verifier)
    data = {
        "origin": cp.origin,
        "size": cp.size,
        "root": cp.root.hex(),
        "note": note,
        "verifier_key": str(verifier),
    }
    _emit(data, as_json, lambda: print(note, end=""))


@ledger_app.command("show")
def ledger_show(
    hub: HubOpt,
    start: Annotated[int, typer.Option(help="First entry.")] = 0,
    end: Annotated[int | None, typer.Option(help="Stop before this entry.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print log entries, decoded."""
    with _client(hub) as c:
        entries = list(c.iter_entries(start, end))

    def render() -> None:
        t = Table("index", "log time", "kind", "actor", "body")
        for e in entries:
            body = json.dumps(e["event"]["body"], ensure_ascii=False)
            t.add_row(
                str(e["index"]),
                e["log_time"],
                e["event"]["kind"],
                e["event"]["actor"][:12] + "…",
                body[:80] + ("…" if len(body) > 80 else ""),
            )
        out.print(t)

    _emit({"entries": entries}, as_json, render)


@ledger_app.command("prove")
def ledger_prove(
    hub: HubOpt,
    index: Annotated[int, typer.Option(help="The entry to prove.")],
    size: Annotated[int | None, typer.Option(help="Tree size (default: latest).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print an inclusion proof for an entry, checked here against the signed checkpoint."""
    from commonweal.ledger.merkle import leaf_hash, verify_inclusion
    from commonweal.ledger.note import parse_checkpoint

    with _client(hub) as c:
        cp = parse_checkpoint(c.checkpoint(), c.verifier())
        proof = c.inclusion(index, size or cp.size)
        page = c.entries(index, index + 1)["entries"]
    if not page:
        raise VerificationFailed(f"the hub did not return entry {index}")
    leaf = base64.b64decode(page[0]["leaf"])
    root = cp.root if proof["size"] == cp.size else bytes.fromhex(proof["root"])
    if leaf_hash(leaf).hex() != proof["leaf_hash"]:
        raise VerificationFailed(f"entry {index}: leaf bytes do not match the proof's leaf hash")
    verify_inclusion(
        leaf_hash(leaf), index, proof["size"], [bytes.fromhex(h) for h in proof["proof"]], root
    )
    proof["verified_against"] = "signed checkpoint" if proof["size"] == cp.size else "root"
    _emit(
        proof,
        as_json,
        lambda: out.print(
            f"Entry {index} is in the tree of size {proof['size']} "
            f"(root {proof['root'][:16]}…): proof of {len(proof['proof'])} hashes verified\n"
            + "\n".join(f"  {h}" for h in proof["proof"])
        ),
    )


@ledger_app.command("export")
def ledger_export(
    hub: HubOpt,
    out_file: Annotated[Path, typer.Option("--out", help="JSONL file to write.")],
    as_json: JsonOpt = False,
) -> None:
    """Write every entry as one JSON line (index, leaf, event), plus FILE.checkpoint and
    FILE.vkey beside it, so anyone can verify the log offline."""
    from commonweal.ledger.note import parse_checkpoint

    with _client(hub) as c:
        note, verifier = c.checkpoint(), c.verifier()
        cp = parse_checkpoint(note, verifier)
        tmp = out_file.with_name(out_file.name + ".part")
        n = 0
        with _progress("exporting", not as_json) as tick, tmp.open("w") as fh:
            for e in c.iter_entries(0, cp.size):
                fh.write(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n")
                n += 1
                if n % 1000 == 0:
                    tick(n, cp.size)
        tmp.replace(out_file)
    Path(f"{out_file}.checkpoint").write_text(note)
    Path(f"{out_file}.vkey").write_text(str(verifier) + "\n")
    data = {
        "entries": n,
        "file": str(out_file),
        "checkpoint": f"{out_file}.checkpoint",
        "verifier_key": f"{out_file}.vkey",
        "size": cp.size,
    }
    _emit(
        data,
        as_json,
        lambda: out.print(
            f"Wrote {n} entries to {out_file}, with {out_file}.checkpoint and {out_file}.vkey"
        ),
    )


def _file_leaves(path: Path) -> Iterator[bytes]:
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield base64.b64decode(json.loads(line)["leaf"], validate=True)
            except (ValueError, KeyError, TypeError):
                raise VerificationFailed(
                    f"{path}:{lineno}: not an exported entry (no base64 'leaf')",
                    index=lineno - 1,
                ) from None


@ledger_app.command("verify")
def ledger_verify(
    hub: Annotated[str | None, typer.Option("--hub", help="Hub directory or URL.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="An exported JSONL log.")] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="The hub's verifier key (default: pinned from the first "
            "run, or the hub's own / FILE.vkey).",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Processes for signatures.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every signature, the Merkle root against the signed checkpoint, consistency
    with the last checkpoint this machine saw, and replay every event through the rules."""
    from commonweal.ledger.note import NoteVerifier
    from commonweal.verify import Witness, verify_log

    if (hub is None) == (file is None):
        raise InvalidInput("give exactly one of --hub or --file")
    witness = Witness()
    with _progress("verifying", not as_json) as tick:
        if file is not None:
            if not file.exists():
                raise ConfigError(f"{file} does not exist")
            note = Path(f"{file}.checkpoint").read_text()
            vkey = NoteVerifier.parse(key or Path(f"{file}.vkey").read_text())
            report = verify_log(
                _file_leaves(file),
                checkpoint_note=note,
                verifier=vkey,
                witness=witness,
                workers=workers,
                progress=tick,
            )
            report.checks.append("projections not compared: a file holds only the log")
        else:
            assert hub is not None
            from commonweal.client import is_remote

            if is_remote(hub):
                report = _verify_remote(hub, key, witness, workers, tick)
            else:
                report = _verify_local(Path(hub), key, witness, workers, tick)
    data = report.to_json()
    _emit(
        data,
        as_json,
        lambda: out.print(
            f"[green]OK[/] {report.origin}: {report.size} entries verified in "
            f"{report.seconds:.2f}s\n"
            + "\n".join(f"  ✓ {c}" for c in report.checks)
            + f"\n  checkpoint remembered in {witness.directory} for the next run"
        ),
    )


def _pick_key(given: str | None, witness: Any, offered: Any) -> Any:
    """The key to trust: the one given, else the one pinned at the first run, else the
    hub's own (trust on first use; it is pinned after a successful run)."""
    from commonweal.ledger.note import NoteVerifier

    if given:
        return NoteVerifier.parse(given)
    return witness.known_key(offered.name) or offered


def _verify_local(
    hub_dir: Path,
    key: str | None,
    witness: Any,
    workers: int | None,
    tick: Callable[[int, int], None],
) -> Any:
    from commonweal.hub import Hub
    from commonweal.verify import verify_hub

    h = Hub.open(hub_dir)
    try:
        verifier = _pick_key(key, witness, h.verifier)
        return verify_hub(h, verifier=verifier, witness=witness, workers=workers, progress=tick)
    finally:
        h.close()


def _verify_remote(
    url: str, key: str | None, witness: Any, workers: int | None, tick: Callable[[int, int], None]
) -> Any:
    from commonweal.client import HubClient
    from commonweal.ledger.note import parse_checkpoint
    from commonweal.verify import verify_log

    with HubClient(url) as c:
        verifier = _pick_key(key, witness, c.verifier())
        note = c.checkpoint()
        size = parse_checkpoint(note, verifier).size
        leaves = (base64.b64decode(e["leaf"]) for e in c.iter_entries(0, size))
        report = verify_log(
            leaves,
            checkpoint_note=note,
            verifier=verifier,
            witness=witness,
            workers=workers,
            progress=tick,
        )
        proj = c.projections()
        if c.entries(0, 0)["size"] == size:
            from commonweal.store.projection import state_rows

            if report.state is not None and state_rows(report.state) != proj:
                raise VerificationFailed("the hub's projections differ from the replayed log")
            report.checks.append("projections equal the replayed state")
        else:
            report.checks.append("projections not compared: the log grew while verifying")
        return report


# -- demo --------------------------------------------------------------------------------


@app.command()
def demo(
    hub: Annotated[Path, typer.Option("--hub", help="Demo hub directory.")] = Path(
        "commonweal-demo"
    ),
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Build it, don't serve it.")] = False,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    as_json: JsonOpt = False,
) -> None:
    """Build (or reuse) a demo community with a few members, verify it, and serve it."""
    from commonweal.demo import build_demo

    summary = build_demo(hub, say=(lambda s: None) if as_json else err.print)
    _emit(
        summary,
        as_json,
        lambda: out.print(
            f"[bold]{summary['name']}[/] in {hub}: {summary['members']} members, "
            f"{summary['size']} log entries, verified OK\n"
            f"  contributions: {summary['contributions']}\n"
            f"  relabelled by review consensus: {summary['relabelled']}; "
            f"flags: {summary['flagged']}\n"
            f"  model versions: "
            + "; ".join(
                f"v{m['version']} {m['items']} items, accuracy {m['metrics']['accuracy']:.3f}"
                for m in summary["models"]
            )
            + f"\n  treasury: {summary['treasury']['balance']} credits "
            f"({summary['treasury']['paid']} paid out to shareholders)\n  shares: "
            + ", ".join(f"{name} {n}" for name, n in summary["shares"].items())
        ),
    )
    if not no_serve:
        serve(hub, host=host, port=port)


@app.command()
def version() -> None:
    """Print Commonweal's version."""
    out.print(__version__)


def main() -> None:
    # They register their commands on the app.
    from commonweal import cli_data, cli_governance, cli_model, cli_rewards  # noqa: F401

    try:
        app()
    except CommonwealError as exc:
        err.print(f"[red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
