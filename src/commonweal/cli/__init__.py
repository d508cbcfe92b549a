"""The ``commonweal`` command line.

Thin over the SDK: a member's key stays on their machine and signs here; ``--hub`` is an
http(s) URL (a remote hub) or a hub directory (embedded: the real app, in-process). Every
command that prints data takes ``--json`` and then writes one JSON document to stdout and
nothing else; every failure prints one line on stderr and exits non-zero.

One module per area (``community``, ``ledger``, ``demo``, ``data``, ``governance``,
``model``, ``ownership``), each with a ``register`` function that adds its commands to the
app; ``output`` and ``options`` hold what they share, and ``hubs`` is the one way to open a
hub. The order of the ``register`` calls below is the order of ``commonweal --help``.
"""

from __future__ import annotations

import typer

from commonweal import __version__
from commonweal.cli import (
    charter,
    community,
    data,
    demo,
    governance,
    ledger,
    model,
    ownership,
)
from commonweal.cli.output import err, out
from commonweal.errors import CommonwealError

__all__ = ["app", "build_app", "main"]


def version() -> None:
    """Print Commonweal's version."""
    out.print(__version__)


def build_app() -> typer.Typer:
    """The ``commonweal`` app with every area's commands."""
    app = typer.Typer(
        help="Commonweal: a hub for community-owned AI, on a log anyone can verify.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    # `member approve` (community) and `member address` (ownership) share one group.
    member = typer.Typer(help="Act on other members.", no_args_is_help=True)
    community.register(app, member)
    charter.register(app)
    app.add_typer(member, name="member")
    ledger.register(app)
    demo.register(app)
    app.command()(version)
    data.register(app)
    governance.register(app)
    model.register(app)
    ownership.register(app, member)
    return app


app = build_app()


def main() -> None:
    """Run the command line: a Commonweal error is one line on stderr and exit status 1."""
    try:
        app()
    except CommonwealError as exc:
        err.print(f"[red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
