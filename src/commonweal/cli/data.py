"""Commands for contributed data and peer review: contribute, list and show items,
review them, withdraw them, export your own, and the hub's pool-wide quality scan. The
readers of item files (``iter_items`` and its kin) live in ``commonweal.files``, shared
with a federated node, which reads its private data the same way."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from commonweal.cli.hubs import connect, hub_directory
from commonweal.cli.ids import (
    ITEM_MIN,
    KEY_MIN,
    resolve_item,
    resolve_items,
    resolve_member,
    short_ids,
)
from commonweal.cli.options import HubDirOpt, HubOpt, JsonOpt, KeyOpt, load_key
from commonweal.cli.output import emit, err, out, print_table, progress
from commonweal.cli.review import review_loop
from commonweal.errors import InvalidInput
from commonweal.files import file_limits, iter_items, read_items
from commonweal.ledger.files import open_private, private_directory

__all__ = ["check_items", "file_limits", "iter_items", "read_items", "register"]

LabelOpt = Annotated[str | None, typer.Option(help="The new label, for relabel.")]
ReasonOpt = Annotated[str | None, typer.Option(help="What is wrong, for flag.")]


def register(app: typer.Typer) -> None:
    """Add this area's commands, and the ``review`` and ``quality`` commands, to ``app``."""
    review_app = typer.Typer(help="Review other members' items.", no_args_is_help=True)
    quality_app = typer.Typer(
        help="Pool-wide data-quality checks the hub runs.", no_args_is_help=True
    )
    app.command()(contribute)
    app.command()(contributions)
    app.command()(contribution)
    app.command()(withdraw)
    app.command("export")(export_data)
    review_app.command("next")(review_next)
    review_app.command("submit")(review_submit)
    review_app.command("reliability")(review_reliability)
    quality_app.command("scan")(quality_scan)
    app.add_typer(review_app, name="review")
    app.add_typer(quality_app, name="quality")


def check_items(charter: dict[str, Any], file: Path) -> int:
    """Check every item of ``file`` as the hub will, before anything is signed or sent (a
    bad row stops the upload with its line, instead of after the batches before it went);
    the number of items. Streams the file: nothing is kept but the count."""
    # The item checks load numpy (and Pillow for images): only this command needs them.
    from commonweal.community.charter import validate_charter
    from commonweal.items import check_item

    rules = validate_charter(charter)
    count = 0
    for where, item in iter_items(file, charter):
        if rules.task is not None:  # else the hub says why it takes no data
            check_item(rules, item, where)
        count += 1
    return count


def contribute(
    file: Annotated[Path, typer.Argument(help="CSV or JSONL file, or an image folder.")],
    hub: HubOpt,
    key: KeyOpt,
    license: Annotated[str, typer.Option(help="SPDX license id for these items.")] = "CC-BY-4.0",
    consent: Annotated[
        str, typer.Option(help="Comma-separated: train,evaluate,commercial,publish.")
    ] = "train,evaluate",
    batch_size: Annotated[int, typer.Option(help="Items per signed batch.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Give the community data: each batch is signed by you, checked, and put up for review."""
    k = load_key(key)
    if batch_size < 1:
        raise InvalidInput("--batch-size must be at least 1")
    scopes = [c.strip() for c in consent.split(",") if c.strip()]
    counts = {"in_review": 0, "refused": 0}
    # The file is read twice, a batch at a time: once to check every item, once to sign
    # and send; memory holds one batch, and the receipts wait on disk for --json.
    with connect(hub) as c, tempfile.TemporaryFile("w+", encoding="utf-8") as receipts:
        charter = c.community()["charter"]
        total = check_items(charter, file)
        sent = 0
        with progress("contributing", not as_json) as tick:
            for batch in _batches(iter_items(file, charter), batch_size):
                r = c.contribute(k, batch, license=license, consent=scopes, charter=charter)
                for status in counts:
                    counts[status] += sum(i["status"] == status for i in r["items"])
                receipts.write(("," if sent else "") + json.dumps(r, ensure_ascii=False))
                sent += len(batch)
                tick(sent, total)
                if not as_json:
                    _print_receipt(r)
        if as_json:
            # The summary of old, with its batches copied from disk rather than memory.
            head = {"items": sent, **counts}
            sys.stdout.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "batches": [')
            receipts.seek(0)
            shutil.copyfileobj(receipts, sys.stdout)
            sys.stdout.write("]}\n")
            return
    out.print(f"{sent} items: {counts['in_review']} in review, {counts['refused']} refused")


def _batches(
    items: Iterator[tuple[str, dict[str, Any]]], size: int
) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for _, item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _print_receipt(r: dict[str, Any]) -> None:
    ok = sum(i["status"] == "in_review" for i in r["items"])
    flagged = sum(bool(i["flags"]) for i in r["items"])
    out.print(
        f"batch at entry {r['batch']}: {ok} in review ({flagged} flagged), "
        f"{len(r['items']) - ok} refused"
    )
    for i in r["items"]:
        if i["status"] == "refused":
            out.print(f"  refused {i['id']}: {'; '.join(i['reasons'])}")


def contributions(
    hub: HubOpt,
    member: Annotated[
        str | None, typer.Option(help="Only this member's items (name, key id or prefix).")
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Only your own items.")] = None,
    status: Annotated[str | None, typer.Option(help="in_review, accepted, refused, …")] = None,
    flag: Annotated[
        str | None, typer.Option(help="Only items with this flag (e.g. negative-value).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List contributed items (metadata only)."""
    if key is not None:
        member = load_key(key).key_id
    with connect(hub) as c:
        people = c.members()
        if member is not None and key is None:
            member = resolve_member(people, member)
        rows = c.contributions(member=member, status=status, flag=flag)
        # A prefix shown must be unique among all items, not only the ones listed.
        every = rows if (member, status, flag) == (None, None, None) else c.contributions()
    items = short_ids((r["id"] for r in every), ITEM_MIN)
    emit({"contributions": rows}, as_json, lambda: _contributions_table(rows, items, people))


def _contributions_table(
    rows: list[dict[str, Any]], items: dict[str, str], people: list[dict[str, Any]]
) -> None:
    keys = short_ids((m["key"] for m in people), KEY_MIN)
    names = {m["key"]: m["name"] for m in people}
    print_table(
        ("id", "member", "label", "status", "reviews", "flags"),
        (
            (
                items[r["id"]],
                names.get(r["member"]) or keys.get(r["member"], r["member"]),
                str(r["decided_label"] or r["label"] or ""),
                r["status"],
                f"{r['reviews']}/{r['reviews_needed']}",
                r["flags"],
            )
            for r in rows
        ),
    )


def contribution(
    item: Annotated[str, typer.Argument(help="Item id, or a unique prefix of it.")],
    hub: HubOpt,
    as_json: JsonOpt = False,
) -> None:
    """Show one item's metadata and quality report."""
    with connect(hub) as c:
        row = c.contribution(resolve_item(c, item))
    emit(row, as_json, lambda: out.print_json(data=row))


def review_next(
    hub: HubOpt,
    key: KeyOpt,
    verdict: Annotated[
        str | None,
        typer.Option(help="Answer one item without a prompt: accept, reject, relabel, flag."),
    ] = None,
    label: LabelOpt = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Review the items waiting for you, one after another, until none is left or you
    quit (a accept, r reject, f flag, s skip, q quit, 1-9 relabel). With --verdict, answer
    the next item only."""
    k = load_key(key)
    with connect(hub) as c:
        if verdict is None and not as_json:
            done = review_loop(c, k)
            said = ", ".join(f"{n} {v}" for v, n in done.items()) or "nothing"
            err.print(f"This session: {said}.")
            return
        if verdict is None:
            raise InvalidInput("with --json, give the --verdict")
        item = c.next_review(k)
        if item is None:
            emit({"item": None}, as_json, lambda: out.print("Nothing waits for your review."))
            return
        res = c.review(k, item["id"], verdict, label=label, reason=reason)
    res["item"] = item["id"]
    emit(res, as_json, lambda: out.print(f"Recorded your {verdict} of {item['id']}"))


def review_submit(
    item: Annotated[str, typer.Argument(help="Item id, or a unique prefix of it.")],
    verdict: Annotated[str, typer.Argument(help="accept, reject, relabel or flag.")],
    hub: HubOpt,
    key: KeyOpt,
    label: LabelOpt = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record your verdict on an item (its id, or a unique prefix of it)."""
    k = load_key(key)
    with connect(hub) as c:
        item = resolve_item(c, item)
        res = c.review(k, item, verdict, label=label, reason=reason)
    res["item"] = item
    emit(res, as_json, lambda: out.print(f"Recorded your {verdict} of {item}"))


def review_reliability(hub: HubOpt, as_json: JsonOpt = False) -> None:
    """Each reviewer's estimated reliability (from the consensus model)."""
    with connect(hub) as c:
        rows = c.reliability()

    short = short_ids((r["key"] for r in rows), KEY_MIN)
    emit(
        {"reviewers": rows},
        as_json,
        lambda: print_table(
            ("reviewer", "key", "reliability %"),
            ((r["name"], short[r["key"]], f"{r['reliability_pct']:.1f}") for r in rows),
        ),
    )


def withdraw(
    items: Annotated[
        list[str] | None, typer.Argument(help="Item ids (or unique prefixes) to withdraw.")
    ] = None,
    hub: HubOpt = "",
    key: KeyOpt = Path(),
    all_items: Annotated[bool, typer.Option("--all", help="Withdraw everything you gave.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Take items back: their content and keys are deleted, and no future model uses them."""
    k = load_key(key)
    with connect(hub) as c:
        ids = resolve_items(c, list(items or []))
        if all_items:
            ids = [r["id"] for r in c.contributions(member=k.key_id) if r["status"] != "withdrawn"]
        if not ids:
            raise InvalidInput("name the items to withdraw, or pass --all")
        res = c.withdraw(k, ids)
    res["withdrawn"] = ids
    emit(res, as_json, lambda: out.print(f"Withdrew {len(ids)} items; their content is deleted"))


def export_data(
    hub: HubOpt,
    key: KeyOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write into.")],
    as_json: JsonOpt = False,
) -> None:
    """Everything you contributed, and every log entry about you (data portability)."""
    k = load_key(key)
    with connect(hub) as c:
        doc = c.export(k)
    # A member's own data: the folder (if new) 0700 and each file 0600 from creation.
    private_directory(out_dir)
    with open_private(out_dir / "contributions.jsonl") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in doc["contributions"])
    with open_private(out_dir / "events.jsonl") as fh:
        fh.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in doc["events"])
    info = {
        "out": str(out_dir),
        "contributions": len(doc["contributions"]),
        "events": len(doc["events"]),
    }
    emit(
        info,
        as_json,
        lambda: err.print(
            f"Wrote {info['contributions']} contributions and {info['events']} events to {out_dir}"
        ),
    )


def quality_scan(
    hub: HubDirOpt,
    as_json: JsonOpt = False,
) -> None:
    """Find suspected label errors (confident learning) and flag them for reviewers."""
    with hub_directory(hub) as h:
        res = h.data.scan_labels()
    emit(
        res,
        as_json,
        lambda: out.print(
            f"Scanned {res['scanned']} items: {res['suspected']} suspected label errors, "
            f"{len(res['flagged'])} newly flagged for reviewers"
        ),
    )
