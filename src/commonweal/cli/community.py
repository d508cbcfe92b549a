"""Commands for the community itself: found it (``init``), member keys, joining,
invitations, approving members, the member list, and serving the hub's API."""

from __future__ import annotations

import signal
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from commonweal.cli.hubs import connect, hub_directory, new_hub
from commonweal.cli.ids import KEY_MIN, resolve_member, short_ids
from commonweal.cli.options import HubDirOpt, HubOpt, JsonOpt, KeyOpt, load_key
from commonweal.cli.output import emit, err, out, print_table
from commonweal.client import HubClient, is_remote
from commonweal.community.charter import (
    FEDERATED_TASKS,
    Charter,
    validate_charter,
    with_federated_app,
)
from commonweal.errors import CharterInvalid, ConfigError, Conflict, InvalidInput
from commonweal.files import DOCUMENT_BYTES, read_text
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
    app.command()(leave)
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
        doc = tomllib.loads(read_text(path, f"charter file {path}", max_bytes=DOCUMENT_BYTES))
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
    if labels is not None and task is None:
        raise InvalidInput(
            "--labels needs a --task (e.g. --task text-classification), "
            "or the labels would be dropped"
        )
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
    """Create a community: its database, the hub's key, the founder's key and the charter.
    `commonweal charter template` prints a charter file with every setting explained."""
    if charter is not None and (labels is not None or task is not None):
        raise InvalidInput("--task and --labels go in the --charter file, not beside it")
    ch = (
        read_charter(charter)
        if charter is not None
        else _charter_from_options(name, join_policy, description, task, labels)
    )
    if ch.task is not None and ch.task.kind in FEDERATED_TASKS:
        # The Flower app this Commonweal ships is the one members' nodes will run, until a
        # vote names another: logged from the start, so enabling federation needs no hash.
        from commonweal.federated.bundle import app_sha256

        ch = with_federated_app(ch, app_sha256())
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
    """Register an invite token and print it alone on stdout (the note goes to stderr);
    give it to the person you invite."""
    k = load_key(key)
    with connect(hub) as c:
        token, res = c.create_invite(k)
    res["token"] = token

    def render() -> None:
        err.print("Invite token (give it to the invitee; they join with --invite TOKEN):")
        print(token)
        err.print(_join_link(hub, token), highlight=False, soft_wrap=True)

    emit(res, as_json, render)


def _join_link(hub: str, token: str) -> str:
    """Where the invitee joins in a browser: the hub's own page when the hub is a URL; for
    a hub directory, the path to open on the hub ``commonweal serve`` serves."""
    path = f"/join?invite={quote(token, safe='')}"
    if is_remote(hub):
        return f"Join link: {hub.rstrip('/')}{path}"
    return (
        f"Join link: open {path} on the served hub (commonweal serve --hub {hub}), "
        f"e.g. http://127.0.0.1:8000{path}"
    )


def member_approve(
    member: Annotated[
        str, typer.Argument(help="The pending member: name, key id or a unique prefix of it.")
    ],
    hub: HubOpt,
    key: KeyOpt,
    as_json: JsonOpt = False,
) -> None:
    """Admit a pending member (communities whose join policy is approval)."""
    k = load_key(key)
    with connect(hub) as c:
        who = resolve_member(c.members(), member)
        res = c.approve(k, who)
    res["member"] = who
    emit(res, as_json, lambda: out.print(f"Approved {who}"))


def members(hub: HubOpt, as_json: JsonOpt = False) -> None:
    """List the community's members."""
    with connect(hub) as c:
        rows = c.members()
    short = short_ids((m["key"] for m in rows), KEY_MIN)
    emit(
        {"members": rows},
        as_json,
        lambda: print_table(
            ("name", "key", "status", "role", "joined at entry"),
            (
                (m["name"], short[m["key"]], m["status"], m["role"], str(m["joined_index"]))
                for m in sorted(rows, key=lambda r: r["joined_index"])
            ),
        ),
    )


def serve(
    hub: HubDirOpt,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="Serve HTTPS with this certificate (PEM); needs --tls-key."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="The certificate's private key (PEM).")
    ] = None,
    federated: Annotated[
        bool,
        typer.Option(
            "--federated",
            help="Also run the federation's Flower SuperLink (TLS, only enrolled members' "
            "nodes may connect) and keep its registered nodes in step with the log.",
        ),
    ] = False,
    federated_port: Annotated[
        int, typer.Option(help="With --federated: the SuperLink's port.")
    ] = 9092,
    federated_name: Annotated[
        list[str] | None,
        typer.Option(
            help="With --federated: a host name or IP members' nodes use to reach this "
            "machine (its certificate names it); repeat for several."
        ),
    ] = None,
) -> None:
    """Serve the hub: the members' web app at /, the HTTP API under /api/v1 (docs at /docs).

    Browsers make and use members' keys only in a secure context: http://localhost and
    http://127.0.0.1 are one; a hub that others reach over a network needs HTTPS
    (--tls-cert and --tls-key)."""
    # Imported here, not at the top: the server stack (FastAPI, uvicorn) is slow to import
    # and only this command (and ``demo``) needs it.
    import uvicorn
    from threadpoolctl import threadpool_limits

    from commonweal.api import create_app

    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("give both --tls-cert and --tls-key to serve HTTPS, or neither")
    for f in (tls_cert, tls_key):
        if f is not None and not f.is_file():
            raise ConfigError(f"{f} is not a readable file")
    scheme = "https" if tls_cert else "http"
    with hub_directory(hub) as h:
        for path, mode in h.exposed():
            # One line per path, whatever the terminal's width: the command is copyable.
            want = "700" if path.is_dir() else "600"
            sys.stderr.write(
                f"Warning: {path} is open to other users (mode {mode:03o}); "
                f"run: chmod {want} {path}\n"
            )
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        err.print(
            f"Serving {h.origin}: open {scheme}://{shown}:{port}/ in a browser (API docs at /docs)",
            highlight=False,
        )
        if scheme == "http" and host not in ("127.0.0.1", "localhost", "::1"):
            err.print(
                "Warning: over plain HTTP, browsers on other machines cannot make or use "
                "members' keys (WebCrypto needs a secure context); serve with --tls-cert "
                "and --tls-key.",
                highlight=False,
                soft_wrap=True,
            )
        # Requests are single inputs: BLAS threads would only contend with the server's own.
        threadpool_limits(1, user_api="blas")
        federation = None
        if federated:
            from commonweal.federated.service import Federation

            names = list(federated_name or [])
            federation = Federation(h, host=host, port=federated_port, hosts=names)
            federation.start(serve=True)
            h.federation.trainer = federation.train
            err.print(
                f"Federation: Flower SuperLink on {federation.link.address} (TLS; enrolled "
                "nodes only); members start theirs with `commonweal node run`",
                highlight=False,
            )
        if federation is not None:
            # uvicorn re-raises SIGTERM once it has shut down; with the default handler the
            # process would die there, before the SuperLink (its own process group) stops.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            uvicorn.run(
                create_app(h, billing=True, limited=True),
                host=host,
                port=port,
                log_level="info",
                ssl_certfile=str(tls_cert) if tls_cert else None,
                ssl_keyfile=str(tls_key) if tls_key else None,
            )
        finally:
            if federation is not None:
                federation.stop()


def _leaving_terms(c: HubClient, key_id: str) -> dict[str, Any]:
    """What leaving would do to the member ``key_id``: items erased, delegations ended,
    shares kept or given up (as the charter says)."""
    me = next((m for m in c.members() if m["key"] == key_id), None)
    if me is None or me["status"] != "active":
        status = "not a member" if me is None else me["status"]
        raise Conflict(f"this key is {status} here: only an active member can leave")
    items = [
        r["id"]
        for r in c.contributions(member=key_id)
        if r["status"] not in ("withdrawn", "removed", "refused")
    ]
    delegations = c.delegations()
    holders = c.shares().get("holders", [])
    shares = next((h["shares"] for h in holders if h["member"] == key_id), 0)
    return {
        "name": me["name"],
        "items": len(items),
        "delegates_to": delegations.get(key_id),
        "delegated_by": sorted(k for k, to in delegations.items() if to == key_id),
        "shares": shares,
        "leaving_shares": c.community()["charter"]["membership"]["leaving_shares"],
    }


def _say_terms(t: dict[str, Any]) -> None:
    kept = (
        "you keep them: you stay an owner and are still paid out"
        if t["leaving_shares"] == "keep"
        else "you give them up: they are burned, and the other owners' part grows"
    )
    err.print(
        f"Leaving the community as {t['name']} cannot be undone:\n"
        f"  - every item you gave ({t['items']}) is withdrawn and its content deleted; "
        "the next model version unlearns it\n"
        f"  - your delegation ends{' (you delegate your vote)' if t['delegates_to'] else ''}, "
        f"and so do the {len(t['delegated_by'])} delegation(s) to you\n"
        f"  - your {t['shares']} shares: {kept} (the charter's membership.leaving_shares)\n"
        "  - this key can no longer act here; a new key would join as a new member",
        highlight=False,
    )


def leave(
    hub: HubOpt,
    key: KeyOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Leave the community: your items are withdrawn and erased, delegations end, and your
    shares are kept or given up as the charter says. Asks first, unless --yes."""
    k = load_key(key)
    with connect(hub) as c:
        terms = _leaving_terms(c, k.key_id)
        if not yes:
            if as_json:
                raise InvalidInput("with --json, confirm with --yes")
            _say_terms(terms)
            if not typer.confirm("Leave now?", default=False, err=True):
                raise InvalidInput("not left: nothing was signed")
        res = c.leave(k)
    res["terms"] = terms
    emit(
        res,
        as_json,
        lambda: out.print(
            f"You have left (log entry {res['entries'][0]['index']}): {terms['items']} items "
            f"erased; shares {'kept' if terms['leaving_shares'] == 'keep' else 'given up'}."
        ),
    )
