"""Commands for what contributions were worth and who owns the community: valuations
and item values, reward epochs and on-chain claims, shares and transfers, payouts, a
member's statement, and the address their claims go to."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from commonweal.cli.hubs import connect, hub_directory
from commonweal.cli.ids import resolve_member
from commonweal.cli.options import HubDirOpt, HubOpt, JsonOpt, KeyOpt, load_key
from commonweal.cli.output import emit, out, print_table, stages
from commonweal.community.claims import distributor_json
from commonweal.errors import InvalidInput
from commonweal.ledger.files import write_private

__all__ = ["register"]


def register(app: typer.Typer, member: typer.Typer) -> None:
    """Add this area's commands, and the ``rewards`` commands, to ``app``, and
    ``member address`` to ``member``."""
    rewards_app = typer.Typer(
        help="Reward epochs: mint shares for contributions, reviews and compute.",
        no_args_is_help=True,
    )
    app.command()(value)
    app.command()(values)
    app.command()(shares)
    app.command()(payout)
    app.command()(statement)
    app.command("transfer")(transfer)
    rewards_app.command("close-epoch")(rewards_close_epoch)
    rewards_app.command("export-claims")(rewards_export_claims)
    member.command("address")(member_address)
    app.add_typer(rewards_app, name="rewards")


_VALUATION_COLUMNS = (
    "member",
    "sent",
    "trained on",
    "relabelled",
    "% of data",
    "value",
    "% of value",
    "negative",
)


def _short(value: str) -> str:
    return f"{float(value):+.6f}"


def value(
    hub: HubDirOpt,
    model: Annotated[
        str, typer.Option("--model", help="The version to value: a number, or latest.")
    ] = "latest",
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Also write every item's value to this CSV file."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Value every contribution a model version trained on, against its evaluation set,
    with the charter's method; log the valuation and flag items of negative value."""
    with hub_directory(hub) as h, stages(not as_json) as progress:
        res = h.ownership.value(version=model, progress=progress)
        if out_file is not None:
            _write_values(h, res["valuation"], out_file)

    emit(res, as_json, lambda: _print_valuation(res, out_file))


def _print_valuation(res: dict[str, Any], out_file: Path | None) -> None:
    out.print(
        f"Valuation [bold]{res['valuation']}[/] of model version {res['model']} "
        f"({res['method']}, {json.dumps(res['params'])}), log entry {res['entry']}: "
        f"{res['values']['count']} items on {res['evaluation']['count']} evaluation items; "
        f"total {_short(res['total'])}"
    )
    print_table(
        _VALUATION_COLUMNS,
        (
            (
                m["name"] or m["member"],
                str(m["sent"]),
                str(m["trained"]),
                str(m["relabelled"]),
                f"{m['items_pct']:.1f}",
                _short(m["value"]),
                f"{m['value_pct']:.1f}",
                str(m["negative"]),
            )
            for m in res["members"]
        ),
    )
    if res["uncredited"]:
        out.print(
            f"{res['uncredited']} items relabelled by review are credited to no one: the "
            "reviewers who fixed them earn from the review pool."
        )
    if res["negative"]:
        out.print(
            f"{res['negative']} items of negative value are flagged for review "
            "(`commonweal contributions --flag negative-value`)."
        )
    if out_file is not None:
        out.print(f"Every item's value: {out_file}")


def _write_values(h: Any, number: int, path: Path) -> None:
    rows = h.ownership.stored_values(number)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item", "member", "value"])
        w.writerows(rows)


def values(
    hub: HubOpt,
    valuation: Annotated[
        int | None, typer.Option("--valuation", help="Which valuation (default: the latest).")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write CSV here instead of standard output.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export every item's value from a logged valuation (checked against its root)."""
    with connect(hub) as c:
        if valuation is None:
            listed = c.valuations()
            if not listed:
                raise InvalidInput("there is no valuation yet; run `commonweal value` first")
            valuation = listed[-1]["valuation"]
        res = c.values(valuation)
    if as_json:
        emit(res, True, lambda: None)
        return
    f = out_file.open("w", newline="") if out_file else sys.stdout
    try:
        w = csv.writer(f)
        w.writerow(["item", "member", "value"])
        for r in res["values"]:
            w.writerow([r["item"], r["member"], r["value"]])
    finally:
        if out_file:
            f.close()


def rewards_close_epoch(hub: HubDirOpt, as_json: JsonOpt = False) -> None:
    """Mint the charter's shares for the next epoch, split into the data, review and
    compute pools, on the newest valuation not yet rewarded."""
    with hub_directory(hub) as h:
        res = h.ownership.close_epoch()

    def render() -> None:
        out.print(
            f"Epoch [bold]{res['epoch']}[/] closed on valuation {res['valuation']} (log entry "
            f"{res['entry']}): {res['shares']} shares minted"
        )
        t = Table("pool", "minted", "member", "shares")
        for name, pool in res["pools"].items():
            if not pool["awards"]:
                t.add_row(name, str(pool["amount"]), "(no one to pay: not minted)", "")
            for n, a in enumerate(pool["awards"]):
                t.add_row(
                    name if n == 0 else "",
                    str(pool["amount"]) if n == 0 else "",
                    a["name"],
                    str(a["shares"]),
                )
        out.print(t)

    emit(res, as_json, render)


def rewards_export_claims(
    hub: HubDirOpt,
    epoch: Annotated[int, typer.Option("--epoch", help="The reward epoch to export.")],
    fmt: Annotated[
        str, typer.Option("--format", help="Only merkle-distributor (Uniswap's).")
    ] = "merkle-distributor",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the document here (default: stdout).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write an epoch's shares as Uniswap MerkleDistributor claims for the members who
    registered an EVM address, and log the Merkle root."""
    if fmt != "merkle-distributor":
        raise InvalidInput(f"unknown claims format {fmt!r}; the one format is merkle-distributor")
    with hub_directory(hub) as h:
        res = h.ownership.export_claims(epoch)
    text = distributor_json(res["document"])
    if out_file is None:
        sys.stdout.write(text + "\n")
        return
    # Members' addresses and awards: 0600 until the operator publishes them.
    write_private(out_file, text)
    doc = res["document"]
    summary = {
        "epoch": epoch,
        "merkleRoot": doc["merkleRoot"],
        "tokenTotal": doc["tokenTotal"],
        "claims": len(doc["claims"]),
        "entry": res["entry"],
        "file": str(out_file),
    }
    emit(
        summary,
        as_json,
        lambda: out.print(
            f"{summary['claims']} claims, root {summary['merkleRoot']}, written to {out_file}"
            + (
                f" (root logged at entry {res['entry']})"
                if res["entry"] is not None
                else " (root already logged)"
            )
        ),
    )


def shares(hub: HubOpt, as_json: JsonOpt = False) -> None:
    """The cap table: who owns the community, and how they earned it."""
    with connect(hub) as c:
        res = c.shares()

    def render() -> None:
        if not res["holders"]:
            out.print("No shares yet: close a reward epoch with `commonweal rewards close-epoch`.")
            return
        t = Table("member", "shares", "%", "from data", "from review", "from compute", "credits")
        for r in res["holders"]:
            t.add_row(
                r["name"] or r["member"],
                str(r["shares"]),
                f"{r['percent']:.2f}",
                str(r["data"]),
                str(r["review"]),
                str(r["compute"]),
                str(r["credits"]),
            )
        out.print(t)
        out.print(
            f"{res['total_shares']} shares after {res['epochs']} epoch(s); "
            f"{'transferable' if res['transferable'] else 'not transferable'}. "
            f"Treasury balance {res['treasury']['balance']} credits."
        )

    emit(res, as_json, render)


def payout(
    hub: HubDirOpt,
    amount: Annotated[
        int | None, typer.Option("--amount", help="Credits to pay (default: the whole balance).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pay the treasury's credits to shareholders pro rata to the shares they hold now."""
    with hub_directory(hub) as h:
        res = h.ownership.pay_out(amount)

    def render() -> None:
        out.print(
            f"Payout [bold]{res['payout']}[/] (log entry {res['entry']}): {res['amount']} "
            f"credits over {res['shares_total']} shares; treasury balance now {res['balance']}"
        )
        t = Table("member", "shares", "credits")
        for p in res["parts"]:
            t.add_row(p["name"], str(p["shares"]), str(p["credits"]))
        out.print(t)

    emit(res, as_json, render)


def statement(hub: HubOpt, key: KeyOpt, as_json: JsonOpt = False) -> None:
    """Your account: shares held and earned, each epoch's awards and each payout to you."""
    k = load_key(key)
    with connect(hub) as c:
        res = c.statement(k.key_id)

    def render() -> None:
        out.print(
            f"[bold]{res['name']}[/]: {res['shares']} shares (earned from data "
            f"{res['earned']['data']}, review {res['earned']['review']}, compute "
            f"{res['earned']['compute']}); {res['credits']} credits paid to you"
            + (f"; claims address {res['address']}" if res["address"] else "")
        )
        if res["epochs"]:
            t = Table("epoch", "entry", "data", "review", "compute", "shares")
            for e in res["epochs"]:
                t.add_row(
                    *(str(e[c]) for c in ("epoch", "entry", "data", "review", "compute")),
                    str(e["shares"]),
                )
            out.print(t)
        if res["payouts"]:
            t = Table("payout", "entry", "your shares", "of", "credits", "of")
            for p in res["payouts"]:
                t.add_row(
                    *(
                        str(p[c])
                        for c in ("payout", "entry", "shares", "of_shares", "credits", "of_amount")
                    )
                )
            out.print(t)

    emit(res, as_json, render)


def member_address(
    address: Annotated[str, typer.Argument(help="Your EVM address (0x…, EIP-55 or lower case).")],
    hub: HubOpt,
    key: KeyOpt,
    as_json: JsonOpt = False,
) -> None:
    """Register the EVM address your on-chain reward claims go to."""
    k = load_key(key)
    with connect(hub) as c:
        res = c.register_address(k, address)
    emit(res, as_json, lambda: out.print(f"Claims address registered: {address}"))


def transfer(
    to: Annotated[
        str, typer.Argument(help="The receiving member: name, key id or a unique prefix.")
    ],
    amount: Annotated[int, typer.Option("--shares", help="How many shares to give.")],
    hub: HubOpt,
    key: KeyOpt,
    as_json: JsonOpt = False,
) -> None:
    """Give shares to another member (only when the charter makes shares transferable)."""
    k = load_key(key)
    with connect(hub) as c:
        who = resolve_member(c.members(), to)
        res = c.transfer_shares(k, who, amount)
    res["to"] = who
    emit(res, as_json, lambda: out.print(f"Transferred {amount} shares to {to} ({who})"))
