"""What the CLI prints, and where: results on stdout (``out``), progress and notes on
stderr (``err``). ``emit`` writes one JSON document for ``--json`` or else runs a
rendering, so that a command with ``--json`` prints nothing else on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

__all__ = ["emit", "err", "out", "print_table", "progress", "stages"]

out = Console(soft_wrap=True)
err = Console(stderr=True)


def emit(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print ``data`` as one JSON document (``--json``), or else call ``render``."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        render()


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print a table with these column headings, one row per item of ``rows``."""
    t = Table(*columns)
    for row in rows:
        t.add_row(*row)
    out.print(t)


@contextmanager
def stages(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
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
def progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar for work with one stage: ``update(done, total)``."""
    with stages(enabled) as update:
        yield lambda done, total: update(label, done, total)
