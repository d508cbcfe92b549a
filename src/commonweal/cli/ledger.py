"""Commands for the community's log: its signed checkpoint, its entries, inclusion
proofs, an offline export, verification (of a hub directory, a URL or an exported file),
and rebuilding a hub's projections from it."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from commonweal.cli.hubs import connect, hub_directory
from commonweal.cli.ids import KEY_MIN, short_ids
from commonweal.cli.options import HubDirOpt, HubOpt, JsonOpt
from commonweal.cli.output import emit, out, print_table, progress
from commonweal.client import is_remote
from commonweal.errors import ConfigError, InvalidInput, VerificationFailed
from commonweal.files import DOCUMENT_BYTES, open_file, read_text
from commonweal.ledger.merkle import leaf_hash, verify_inclusion
from commonweal.ledger.note import NoteVerifier, parse_checkpoint

if TYPE_CHECKING:
    from commonweal.verify import VerifyReport, Witness

__all__ = ["register"]

Tick = Callable[[int, int], None]


def register(app: typer.Typer) -> None:
    """Add ``rebuild`` and the ``ledger`` commands to ``app``."""
    ledger_app = typer.Typer(
        help="Read, prove, export and verify the community's log.", no_args_is_help=True
    )
    app.command()(rebuild)
    ledger_app.command("checkpoint")(ledger_checkpoint)
    ledger_app.command("show")(ledger_show)
    ledger_app.command("prove")(ledger_prove)
    ledger_app.command("export")(ledger_export)
    ledger_app.command("verify")(ledger_verify)
    app.add_typer(ledger_app, name="ledger")


def rebuild(hub: HubDirOpt, as_json: JsonOpt = False) -> None:
    """Drop every projection table and recreate it by replaying the log."""
    with hub_directory(hub) as h:
        counts = h.rebuild()
    emit(
        counts,
        as_json,
        lambda: out.print(
            "Rebuilt from "
            + str(counts["entries"])
            + " entries: "
            + ", ".join(f"{k} {v}" for k, v in counts.items() if k != "entries")
        ),
    )


def ledger_checkpoint(hub: HubOpt, as_json: JsonOpt = False) -> None:
    """Print the latest signed checkpoint (a C2SP signed note)."""
    with connect(hub) as c:
        note, verifier = c.checkpoint(), c.verifier()
    cp = parse_checkpoint(note, verifier)
    data = {
        "origin": cp.origin,
        "size": cp.size,
        "root": cp.root.hex(),
        "note": note,
        "verifier_key": str(verifier),
    }
    emit(data, as_json, lambda: print(note, end=""))


def ledger_show(
    hub: HubOpt,
    start: Annotated[int, typer.Option(help="First entry.")] = 0,
    end: Annotated[int | None, typer.Option(help="Stop before this entry.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print log entries, decoded."""
    with connect(hub) as c:
        entries = list(c.iter_entries(start, end))
        people = {m["key"]: m["name"] for m in c.members()}
        hub_key = c.community().get("hub_key", "")
    actors = short_ids({e["event"]["actor"] for e in entries} | set(people), KEY_MIN)
    names = {**people, hub_key: "(hub)"} if hub_key else people

    def row(e: dict[str, Any]) -> tuple[str, ...]:
        body = json.dumps(e["event"]["body"], ensure_ascii=False)
        return (
            str(e["index"]),
            e["log_time"],
            e["event"]["kind"],
            names.get(e["event"]["actor"]) or actors[e["event"]["actor"]],
            body[:80] + ("…" if len(body) > 80 else ""),
        )

    emit(
        {"entries": entries},
        as_json,
        lambda: print_table(
            ("index", "log time", "kind", "actor", "body"), (row(e) for e in entries)
        ),
    )


def ledger_prove(
    hub: HubOpt,
    index: Annotated[int, typer.Option(help="The entry to prove.")],
    size: Annotated[int | None, typer.Option(help="Tree size (default: latest).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print an inclusion proof for an entry, checked here against the signed checkpoint."""
    with connect(hub) as c:
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
    emit(
        proof,
        as_json,
        lambda: out.print(
            f"Entry {index} is in the tree of size {proof['size']} "
            f"(root {proof['root'][:16]}…): proof of {len(proof['proof'])} hashes verified\n"
            + "\n".join(f"  {h}" for h in proof["proof"])
        ),
    )


def ledger_export(
    hub: HubOpt,
    out_file: Annotated[Path, typer.Option("--out", help="JSONL file to write.")],
    as_json: JsonOpt = False,
) -> None:
    """Write every entry as one JSON line (index, leaf, event), plus FILE.checkpoint and
    FILE.vkey beside it, so anyone can verify the log offline."""
    with connect(hub) as c:
        note, verifier = c.checkpoint(), c.verifier()
        cp = parse_checkpoint(note, verifier)
        tmp = out_file.with_name(out_file.name + ".part")
        n = 0
        with progress("exporting", not as_json) as tick, tmp.open("w") as fh:
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
    emit(
        data,
        as_json,
        lambda: out.print(
            f"Wrote {n} entries to {out_file}, with {out_file}.checkpoint and {out_file}.vkey"
        ),
    )


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
    # Imported here: verifying a hub directory loads the hub and its database layer, which
    # the other ledger commands never need.
    from commonweal.verify import Witness

    if (hub is None) == (file is None):
        raise InvalidInput("give exactly one of --hub or --file")
    witness = Witness()
    with progress("verifying", not as_json) as tick:
        if file is not None:
            report = _verify_file(file, key, witness, workers, tick)
        elif is_remote(str(hub)):
            report = _verify_remote(str(hub), key, witness, workers, tick)
        else:
            report = _verify_directory(str(hub), key, witness, workers, tick)
    emit(
        report.to_json(),
        as_json,
        lambda: out.print(
            f"[green]OK[/] {report.origin}: {report.size} entries verified in "
            f"{report.seconds:.2f}s\n"
            + "\n".join(f"  ✓ {c}" for c in report.checks)
            + f"\n  checkpoint remembered in {witness.directory} for the next run"
        ),
    )


def _pick_key(given: str | None, witness: Witness, offered: NoteVerifier) -> NoteVerifier:
    """The key to trust: the one given, else the one pinned at the first run, else the
    hub's own (trust on first use; it is pinned after a successful run)."""
    if given:
        return NoteVerifier.parse(given)
    return witness.known_key(offered.name) or offered


def _verify_file(
    file: Path, key: str | None, witness: Witness, workers: int | None, tick: Tick
) -> VerifyReport:
    from commonweal.verify import ExportReader, verify_log

    open_file(file, str(file), max_bytes=sys.maxsize).close()  # a regular file, readable
    note = _beside(file, ".checkpoint", "the signed checkpoint the log is checked against")
    vkey = NoteVerifier.parse(key or _beside(file, ".vkey", "the hub's verifier key (or --key)"))
    reader = ExportReader(file)
    report = verify_log(
        reader,
        checkpoint_note=note,
        verifier=vkey,
        witness=witness,
        workers=workers,
        progress=tick,
    )
    report.checks.append(reader.check())
    report.checks.append("projections not compared: a file holds only the log")
    return report


def _beside(file: Path, suffix: str, what: str) -> str:
    """The text of ``FILE{suffix}``, written by ``ledger export`` beside the log; a
    ConfigError naming it and what it holds when it is missing."""
    path = Path(f"{file}{suffix}")
    if not path.exists():
        raise ConfigError(
            f"{path} is missing: it holds {what}; `ledger export` writes it beside {file}"
        )
    return read_text(path, str(path), max_bytes=DOCUMENT_BYTES)


def _verify_directory(
    hub: str, key: str | None, witness: Witness, workers: int | None, tick: Tick
) -> VerifyReport:
    from commonweal.verify import verify_hub

    with hub_directory(hub) as h:
        verifier = _pick_key(key, witness, h.verifier)
        return verify_hub(h, verifier=verifier, witness=witness, workers=workers, progress=tick)


def _verify_remote(
    url: str, key: str | None, witness: Witness, workers: int | None, tick: Tick
) -> VerifyReport:
    """Verify a hub's log over HTTP, and compare its projections with the replayed state
    when they are of the same size as the checkpoint verified."""
    from commonweal.verify import verify_log

    with connect(url) as c:
        verifier = _pick_key(key, witness, c.verifier())
        note = c.checkpoint()
        size = parse_checkpoint(note, verifier).size
        # The projections are read before the log, and compared only if the log has not
        # grown meanwhile: then they describe the same entries as the checkpoint.
        projections = c.projections()
        same_size = c.entries(0, 0)["size"] == size
        leaves = (base64.b64decode(e["leaf"]) for e in c.iter_entries(0, size))
        report = verify_log(
            leaves,
            checkpoint_note=note,
            verifier=verifier,
            witness=witness,
            projections=projections if same_size else None,
            workers=workers,
            progress=tick,
        )
    if not same_size:
        report.checks.append("projections not compared: the log grew while verifying")
    return report
