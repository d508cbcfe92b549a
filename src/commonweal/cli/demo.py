"""The ``demo`` command: build (or reuse) a demo community, print what happened in it,
and serve it. The story itself is told in ``commonweal.demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from commonweal.cli.community import serve
from commonweal.cli.options import JsonOpt
from commonweal.cli.output import emit, err, out

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command()(demo)


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
    # Imported here: the demo builds a hub in-process, which loads the whole server stack.
    from commonweal.demo import build_demo

    summary = build_demo(hub, say=(lambda s: None) if as_json else err.print)
    emit(summary, as_json, lambda: _print_summary(summary, hub))
    if not no_serve:
        serve(str(hub), host=host, port=port)


def _print_summary(summary: dict[str, Any], hub: Path) -> None:
    out.print(
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
    )
