"""Commands for the community itself: found it (``init``), member keys, joining,
invitations, approving members, the member list, and serving the hub's API."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from commonweal.cli.hubs import connect, hub_directory, new_hub
from commonweal.cli.options import HubDirOpt, HubOpt, JsonOpt, KeyOpt, load_key
from commonweal.cli.output import emit, err, out, print_table
from commonweal.community.charter import Charter, validate_charter
from commonweal.errors import CharterInvalid, InvalidInput
from commonweal.ledger.keys import SigningKey

__all__ = ["read_charter", "register", "serve"]


def register(app: typer.Typer, member: typer.Typer) -> None:
    """Add this area's commands to ``app``, and ``member approve`` to ``member``."""
    key_app = typer.Typer(help="Member keys.", no_args_is_help=True)
    invite_app = typer.Typer(
        help="Invitations, for communities that join by invite.", no_args_is_help=True
    )
    app.command()(init)
    app.command()(join)
    app.command()(members)
    app.command()(serve)
    key_app.command("new")(key_new)
    key_app.command("show")(key_show)
    invite_app.command("create")(invite_create)
    member.command("approve")(member_approve)
    app.add_typer(key_app, name="key")
    app.add_typer(invite_app, name="invite")


def read_charter(path: Path) -> Charter:
    """The charter in a TOML file; CharterInvalid naming the file and the bad field."""
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise CharterInvalid(f"charter file {path} does not exist") from None
    except OSError as exc:
        raise CharterInvalid(f"charter file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CharterInvalid(f"charter file {path} is not valid TOML: {exc}") from None
    return validate_charter(doc, where=str(path))


def _charter_from_options(
    name: str | None, join_policy: str, description: str, task: str | None, labels: str | None
) -> Charter:
    """A charter from ``init``'s options, for a community that needs no charter file."""
    if name is None:
        raise InvalidInput("give the community a --name (or a --charter file)")
    doc: dict[str, Any] = {"name": name, "join_policy": join_policy, "description": description}
    if task is not None:
        doc["task"] = {"kind": task}
        if labels:
            doc["task"]["labels"] = [x.strip() for x in labels.split(",") if x.strip()]
    return validate_charter(doc, where="charter")


def _print_founded(info: dict[str, Any]) -> None:
    out.print(
        f"Created [bold]{info['name']}[/] in {info['hub']}\n"
        f"  origin        {info['origin']}\n"
        f"  verifier key  {info['verifier_key']}\n"
        f"  founder key   {info['founder_key_file']} (keep it safe; it signs your acts)"
    )


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
    ch = (
        read_charter(charter)
        if charter is not None
        else _charter_from_options(name, join_policy, description, task, labels)
    )
    with new_hub(
        hub_dir,
        charter=ch,
        founder_name=founder_name,
        founder_key=founder_key,
        database=database,
        origin=origin,
    ) as (hub, founder, key_file):
        info = {
            "hub": str(hub_dir),
            "name": ch.name,
            "origin": hub.origin,
            "verifier_key": str(hub.verifier),
            "founder": founder.key_id,
            "founder_key_file": str(key_file),
            "checkpoint": hub.log.checkpoint(),
        }
    emit(info, as_json, lambda: _print_founded(info))


def key_new(
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the key (mode 0600).")],
    as_json: JsonOpt = False,
) -> None:
    """Make a new Ed25519 member key."""
    key = SigningKey.generate()
    key.save(out_path)
    emit(
        {"key_id": key.key_id, "file": str(out_path)},
        as_json,
        lambda: out.print(f"Wrote {out_path}\n  key id {key.key_id}"),
    )


def key_show(key: KeyOpt, as_json: JsonOpt = False) -> None:
    """Print a key file's public key id."""
    k = load_key(key)
    emit({"key_id": k.key_id}, as_json, lambda: out.print(k.key_id))


def join(
    hub: HubOpt,
    key: KeyOpt,
    name: Annotated[str, typer.Option(help="Your name in the community.")],
    invite: Annotated[str | None, typer.Option(help="Invite token, if the charter asks.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Join a community: sign a join event with your key and send it to the hub."""
    k = load_key(key)
    with connect(hub) as c:
        res = c.join(k, name, invite=invite)
        me = next((m for m in c.members() if m["key"] == k.key_id), None)
    status = me["status"] if me else "unknown"
    res["status"] = status
    emit(
        res,
        as_json,
        lambda: out.print(
            f"Joined as [bold]{name}[/] (entry {res['entries'][0]['index']}, status {status})"
        ),
    )


def invite_create(hub: HubOpt, key: KeyOpt, as_json: JsonOpt = False) -> None:
    """Register an invite token and print it; give it to the person you invite."""
    k = load_key(key)
    with connect(hub) as c:
        token, res = c.create_invite(k)
    res["token"] = token
    emit(res, as_json, lambda: out.print(f"Invite token (give it to the invitee): {token}"))


def member_approve(
    member: Annotated[str, typer.Argument(help="Key id of the pending member.")],
    hub: HubOpt,
    key: KeyOpt,
    as_json: JsonOpt = False,
) -> None:
    """Admit a pending member (communities whose join policy is approval)."""
    k = load_key(key)
    with connect(hub) as c:
        res = c.approve(k, member)
    emit(res, as_json, lambda: out.print(f"Approved {member[:16]}…"))


def members(hub: HubOpt, as_json: JsonOpt = False) -> None:
    """List the community's members."""
    with connect(hub) as c:
        rows = c.members()
    emit(
        {"members": rows},
        as_json,
        lambda: print_table(
            ("name", "key", "status", "role", "joined at entry"),
            (
                (m["name"], m["key"][:16] + "…", m["status"], m["role"], str(m["joined_index"]))
                for m in sorted(rows, key=lambda r: r["joined_index"])
            ),
        ),
    )


def serve(
    hub: HubDirOpt,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the hub's HTTP API (OpenAPI docs at /docs)."""
    # Imported here, not at the top: the server stack (FastAPI, uvicorn) is slow to import
    # and only this command (and ``demo``) needs it.
    import uvicorn
    from threadpoolctl import threadpool_limits

    from commonweal.api import create_app

    with hub_directory(hub) as h:
        err.print(f"Serving {h.origin} at http://{host}:{port} (API docs at /docs)")
        # Requests are single inputs: BLAS threads would only contend with the server's own.
        threadpool_limits(1, user_api="blas")
        uvicorn.run(create_app(h, billing=True), host=host, port=port, log_level="info")
