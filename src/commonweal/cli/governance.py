"""Commands for governance: propose actions, vote (and reveal a secret vote), delegate,
list proposals, and execute a passed one. Also ``parse_actions``, which reads the actions
of a proposal from the command line."""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from platformdirs import user_config_dir
from rich.table import Table

from commonweal.cards.charter_words import charter_diff
from commonweal.cli.hubs import connect, hub_directory
from commonweal.cli.ids import resolve_items, resolve_member
from commonweal.cli.options import HubOpt, JsonOpt, KeyOpt, load_key
from commonweal.cli.output import emit, out
from commonweal.community.charter import ACTION_TYPES
from commonweal.community.governance import commitment
from commonweal.errors import CommonwealError, InvalidInput, NotFound
from commonweal.files import DOCUMENT_BYTES, read_text
from commonweal.ledger.files import write_private

__all__ = ["parse_actions", "register"]

_MEMBER_FIELDS = {"member", "to"}


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command()(propose)
    app.command()(vote)
    app.command()(reveal)
    app.command()(delegate)
    app.command()(proposals)
    app.command()(execute)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = doc
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def _charter_file(path: Path) -> Any:
    """A whole charter from a .toml (else JSON) file, for ``charter.amend file=...``."""
    text = read_text(path, str(path), max_bytes=DOCUMENT_BYTES)
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError is a ValueError
        raise InvalidInput(f"{path} is not a valid charter file: {exc}") from None


def parse_actions(
    tokens: list[str],
    charter: dict[str, Any],
    members: list[dict[str, Any]],
    items: Callable[[list[str]], list[str]] | None = None,
) -> list[dict[str, Any]]:
    """``TYPE key=value ... TYPE key=value ...`` into actions. Values are JSON where they
    parse (numbers, true, lists), else text; ``items=a,b`` is a list; member fields take
    names. ``charter.amend`` takes dotted charter paths (``rewards.data_pct=60``) applied to
    the current charter, or ``file=amended.toml``: the action carries the whole new charter."""
    actions: list[dict[str, Any]] = []
    for tok in tokens:
        if "=" not in tok:
            if tok not in ACTION_TYPES:
                raise InvalidInput(f"unknown action {tok!r}; actions: {', '.join(ACTION_TYPES)}")
            actions.append({"type": tok})
            if tok == "charter.amend":
                actions[-1]["charter"] = json.loads(json.dumps(charter))
            continue
        if not actions:
            raise InvalidInput(f"{tok!r} comes before any action type")
        key, _, raw = tok.partition("=")
        a = actions[-1]
        if a["type"] == "charter.amend":
            if key == "file":
                a["charter"] = _charter_file(Path(raw))
            else:
                _set_path(a["charter"], key, _value(raw))
        elif key == "items":
            listed = [i for i in raw.split(",") if i]
            a[key] = items(listed) if items is not None else listed
        elif key in _MEMBER_FIELDS and raw != "shareholders":
            a[key] = resolve_member(members, raw)
        else:
            a[key] = _value(raw)
    if not actions:
        raise InvalidInput('name at least one action, e.g. `signal text="..."`')
    return actions


def propose(
    actions: Annotated[
        list[str],
        typer.Argument(
            help="Actions: TYPE key=value ... (e.g. price.set price_per_call=2; "
            "charter.amend rewards.data_pct=60 rewards.review_pct=30; "
            "treasury.pay to=Grace amount=100; signal text='...')."
        ),
    ],
    hub: HubOpt,
    key: KeyOpt,
    title: Annotated[str, typer.Option("--title", help="What the proposal is, in a line.")],
    description: Annotated[str, typer.Option("--description", help="Why.")] = "",
    options: Annotated[
        list[str] | None,
        typer.Option("--option", help="An option, for approval or ranked-choice (repeat)."),
    ] = None,
    choice: Annotated[
        str, typer.Option("--choice", help="basic (For/Against/Abstain), approval, ranked-choice")
    ] = "basic",
    secret: Annotated[
        bool,
        typer.Option(
            "--secret", help="A secret ballot (commit, then reveal), where the charter allows it."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Propose actions for the community to vote on; the hub carries them out if it passes.
    A charter.amend proposal shows what it would change."""
    k = load_key(key)
    with connect(hub) as c:
        charter = c.community()["charter"]
        acts = parse_actions(actions, charter, c.members(), lambda ids: resolve_items(c, ids))
        changes = _amendments(acts, charter)
        body = _proposal_body(title, description, acts, options, choice)
        if secret:
            # The rules refuse it, saying why, where the charter does not allow it
            # (governance.secret_per_proposal) — the same answer the web app shows.
            body["secret"] = True
        res = c.submit([c.sign(k, "proposal.create", body)])
        number = res["entries"][0]["index"]
        shown = c.proposal(number)
    shown["changes"] = changes
    emit(shown, as_json, lambda: _print_proposed(shown, changes))


def _proposal_body(
    title: str, description: str, acts: list[dict[str, Any]], options: list[str] | None, choice: str
) -> dict[str, Any]:
    body: dict[str, Any] = {"title": title, "actions": acts}
    if description:
        body["description"] = description
    if options:
        body["options"] = options
        body["choice"] = choice if choice != "basic" else "approval"
    elif choice != "basic":
        raise InvalidInput(f"a {choice} vote needs options (--option, at least two)")
    return body


def _amendments(acts: list[dict[str, Any]], charter: dict[str, Any]) -> list[str]:
    """What the charter.amend actions among ``acts`` change, one line per setting."""
    return [
        line
        for a in acts
        if a["type"] == "charter.amend" and isinstance(a.get("charter"), dict)
        for line in charter_diff(charter, a["charter"])
    ]


def _print_proposed(shown: dict[str, Any], changes: list[str]) -> None:
    out.print(
        f"Proposal [bold]{shown['proposal']}[/]: {shown['title']} — voting from "
        f"{shown['starts']} to {shown['ends']}; {shown['weighting']} weighting, "
        f"{shown['approval']} to pass" + ("; secret ballot" if shown.get("secret") else "")
    )
    if any(a["type"] == "charter.amend" for a in shown["actions"]):
        _print_changes(changes)


def _print_changes(changes: list[str], indent: str = "  ") -> None:
    if not changes:
        out.print(f"{indent}it changes nothing in the charter as it stands", highlight=False)
    for line in changes:
        out.print(f"{indent}{line}", highlight=False)


def _ballot_file(origin: str, number: int, key_id: str) -> Path:
    """Where a secret vote's choice and salt are kept until it is revealed: the user's
    config dir (``COMMONWEAL_CONFIG_DIR`` overrides it), one file per vote."""
    base = Path(os.environ.get("COMMONWEAL_CONFIG_DIR") or user_config_dir("commonweal"))
    return base / "ballots" / origin.replace("/", "_") / f"{number}-{key_id[:16]}.json"


def vote(
    proposal: Annotated[int, typer.Argument(help="The proposal's number.")],
    choice: Annotated[
        str,
        typer.Argument(
            help="for, against or abstain; or options, comma-separated (approval: the ones "
            "you approve; ranked-choice: best first)."
        ),
    ],
    hub: HubOpt,
    key: KeyOpt,
    as_json: JsonOpt = False,
) -> None:
    """Vote on a proposal. On a secret ballot this commits to your vote (kept on this
    machine); reveal it with `commonweal reveal` once voting ends."""
    k = load_key(key)
    with connect(hub) as c:
        p = c.proposal(proposal)
        picked: Any = choice if p["choice"] == "basic" else [x for x in choice.split(",") if x]
        if p["secret"]:
            salt = secrets.token_hex(16)
            path = _ballot_file(c.community()["origin"], proposal, k.key_id)
            # A secret ballot until revealed: 0600 from creation, not chmod'ed after.
            write_private(path, json.dumps({"choice": picked, "salt": salt}))
            body = {
                "proposal": proposal,
                "commitment": commitment(proposal, k.key_id, picked, salt),
            }
            res = c.submit([c.sign(k, "vote.commit", body)])
            said = f"Committed to a secret vote on proposal {proposal}; reveal it after {p['ends']}"
        else:
            res = c.submit([c.sign(k, "vote.cast", {"proposal": proposal, "choice": picked})])
            said = f"Voted {choice} on proposal {proposal}"
    emit(res, as_json, lambda: out.print(said))


def reveal(
    proposal: Annotated[int, typer.Argument(help="The proposal's number.")],
    hub: HubOpt,
    key: KeyOpt,
    as_json: JsonOpt = False,
) -> None:
    """Reveal your secret vote (the choice and salt this machine kept when you voted)."""
    k = load_key(key)
    with connect(hub) as c:
        path = _ballot_file(c.community()["origin"], proposal, k.key_id)
        if not path.exists():
            raise NotFound(f"no secret vote on proposal {proposal} was made from this machine")
        try:
            kept = json.loads(read_text(path, str(path), max_bytes=DOCUMENT_BYTES))
        except (ValueError, RecursionError):
            raise InvalidInput(f"{path} is not the ballot this machine kept (not JSON)") from None
        body = {"proposal": proposal, "choice": kept["choice"], "salt": kept["salt"]}
        res = c.submit([c.sign(k, "vote.reveal", body)])
    emit(res, as_json, lambda: out.print(f"Revealed your vote on proposal {proposal}"))


def delegate(
    hub: HubOpt,
    key: KeyOpt,
    to: Annotated[
        str | None, typer.Option("--to", help="The member (name or key id) to vote for you.")
    ] = None,
    none: Annotated[bool, typer.Option("--none", help="Stop delegating.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delegate your vote to another member (they vote for you wherever you don't vote
    yourself; transitive), or stop delegating."""
    if (to is None) == (not none):
        raise InvalidInput("give exactly one of --to MEMBER or --none")
    k = load_key(key)
    with connect(hub) as c:
        target = None if none else resolve_member(c.members(), str(to))
        res = c.submit([c.sign(k, "delegate.set", {"to": target})])
    emit(
        res,
        as_json,
        lambda: out.print("No longer delegating." if none else f"Delegated your vote to {to}."),
    )


def _tally_text(p: dict[str, Any]) -> str:
    t = p.get("tally")
    if t is None:
        return f"hidden ({p.get('commitments', 0)} sealed votes)" if p["secret"] else "-"
    counts = ", ".join(f"{k} {v}" for k, v in t["counts"].items())
    return f"{counts}; {'passes' if t.get('passed') else 'fails'}"


def _amends(rows: list[dict[str, Any]]) -> bool:
    return any(a["type"] == "charter.amend" for p in rows for a in p["actions"])


def _pending_changes(p: dict[str, Any], charter: dict[str, Any]) -> list[str]:
    """What a charter.amend proposal changes in the charter in force now (an executed
    one is the charter in force, so it shows no change)."""
    if p["phase"] == "executed":
        return ["(executed: the charter now reads so)"]
    try:
        return _amendments(p["actions"], charter)
    except CommonwealError as exc:
        return [f"(the amended charter is not valid now: {exc.message})"]


def proposals(hub: HubOpt, as_json: JsonOpt = False) -> None:
    """Every proposal: its phase, tally, quorum and time left."""
    with connect(hub) as c:
        rows = c.proposals()
        charter = c.community()["charter"] if _amends(rows) else {}
    for p in rows:
        if _amends([p]):
            p["changes"] = _pending_changes(p, charter)

    def render() -> None:
        if not rows:
            out.print("No proposals yet: `commonweal propose --title ... ACTION ...`.")
            return
        t = Table("#", "title", "actions", "phase", "tally", "quorum", "time left")
        for p in rows:
            left = p.get("seconds_left")
            t.add_row(
                str(p["proposal"]),
                p["title"],
                ", ".join(a["type"] for a in p["actions"]),
                p["phase"],
                _tally_text(p),
                "yes" if p.get("quorum_reached") else ("-" if p["choice"] != "basic" else "no"),
                "" if left is None else f"{left // 3600}h {left % 3600 // 60}m {left % 60}s",
            )
        out.print(t)
        for p in rows:
            if "changes" in p:
                out.print(f"Proposal {p['proposal']} amends the charter:")
                _print_changes(p["changes"])

    emit(rows, as_json, render)


def execute(
    proposal: Annotated[int, typer.Argument(help="The proposal's number.")],
    hub: HubOpt,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Sign as this member (default: the hub signs; --hub DIR)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Carry out a passed proposal whose timelock has run out (the server also does it on
    its own)."""
    if key is None:
        with hub_directory(hub, reason="without --key the hub signs") as h:
            res = h.governance.execute(proposal)
    else:
        k = load_key(key)
        with connect(hub) as c:
            tally = c.proposal(proposal)["tally"]
            done = c.submit([c.sign(k, "proposal.execute", {"proposal": proposal, "tally": tally})])
            res = {**c.proposal(proposal), "entry": done["entries"][0]["index"]}
    emit(
        res,
        as_json,
        lambda: out.print(f"Proposal {proposal} executed (log entry {res['entry']})"),
    )
