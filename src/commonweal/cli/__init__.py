"""The ``commonweal`` command line.

Thin over the SDK: a member's key stays on their machine and signs here; ``--hub`` is an
http(s) URL (a remote hub) or a hub directory (embedded: the real app, in-process). Every
command that prints data takes ``--json`` and then writes one JSON document to stdout and
nothing else; every failure prints one line on stderr and exits non-zero.

One module per area (``community``, ``ledger``, ``demo``, ``data``, ``governance``,
``model``, ``ownership``, ``node``), each with a ``register`` function that adds its commands to the
app; ``output`` and ``options`` hold what they share, and ``hubs`` is the one way to open a
hub. The order of the ``register`` calls below is the order of ``commonweal --help``.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer
from rich.markup import escape

from commonweal import __version__
from commonweal.cli import (
    charter,
    community,
    data,
    demo,
    governance,
    ledger,
    model,
    node,
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
    node.register(app)
    return app


app = build_app()


def main() -> None:
    """Run the command line. Every failure is one line on stderr and a non-zero exit: a
    Commonweal error with its message (status 1), anything else that escaped a command —
    a file that is not text, a disk error, memory running out, a library's own exception
    — named by its class and message (status 1 too, 130 for Ctrl-C). Never a traceback."""
    try:
        app()
    except CommonwealError as exc:
        _fail(exc.message)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokenPipeError:
        # stdout closed early (`| head`): nothing more can be said there, nor needs to be;
        # point it at /dev/null so that the interpreter's last flush does not fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except UnicodeError as exc:
        _fail(f"not UTF-8 text: {exc}")
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}")
    except MemoryError:
        _fail("out of memory; give a smaller file or batch")
    except Exception as exc:  # the last resort: a bug or an unexpected library error
        _fail(f"{type(exc).__name__}: {exc}")


def _fail(message: str) -> NoReturn:
    # One line whatever the message holds; escaped, so a "[" in a file name is not markup.
    line = " ".join(message.split())
    err.print(f"[red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise SystemExit(1)
