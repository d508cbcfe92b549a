"""The one way the CLI opens a hub.

A member's command talks to a hub through the SDK: ``connect(hub)`` takes an http(s) URL
(a remote hub) or a hub directory (the real app, in-process). An operator's command —
train, value, close an epoch, pay out, serve, … — works on the hub's own database, so it
needs the directory: ``hub_directory(hub)`` opens it, and says in one line that the
command needs the directory when it is given a URL. ``new_hub`` creates one (``init``).

``commonweal.hub`` is imported inside these functions: it loads SQLAlchemy and the rules,
which a member's command against a remote hub never needs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from commonweal.client import RETRIES, HubClient, is_remote
from commonweal.errors import CommonwealError, ConfigError
from commonweal.ledger.keys import SigningKey

if TYPE_CHECKING:
    from commonweal.community.charter import Charter
    from commonweal.hub import Hub

__all__ = ["connect", "hub_directory", "new_hub"]


def _undo(directory: Path, before: set[Path] | None) -> None:
    """Remove what a failed ``init`` made: the directory it created, or the files it added
    to one that was there."""
    if before is None:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for path in set(directory.iterdir()) - before:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _database_error(exc: Exception, database: str | None) -> Exception:
    """A failure to create the hub as one line: a database that cannot be reached names
    the URL (without its password) and the driver's first line; other errors pass."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    if isinstance(exc, CommonwealError) or not isinstance(exc, SQLAlchemyError):
        return exc
    try:
        shown = make_url(database).render_as_string(hide_password=True) if database else "SQLite"
    except ArgumentError:
        shown = "the --database URL"
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return ConfigError(
        f"cannot create the hub's database at {shown}: {cause[0] if cause else type(exc).__name__}"
        "; nothing was created"
    )


def connect(hub: str) -> HubClient:
    """A client for the hub at ``hub``: an http(s) URL, or a hub directory (embedded).
    Use it as a context manager. A request the hub rate-limits is retried after the wait
    it asks for (a few times at most), and the wait is shown on stderr."""
    return HubClient(hub, on_wait=_say_wait)


def _say_wait(seconds: float, attempt: int, message: str) -> None:
    from commonweal.cli.output import err

    err.print(
        f"{message} — waiting {seconds:g} s and retrying ({attempt} of {RETRIES})", markup=False
    )


@contextmanager
def hub_directory(hub: str, *, reason: str | None = None) -> Iterator[Hub]:
    """The hub in the local directory ``hub``, closed afterwards; for the operator's own
    jobs. ConfigError when ``hub`` is a URL (``reason`` says why the directory is needed,
    when the command has one of its own) or not a hub directory."""
    if is_remote(hub):
        why = f"{reason}: " if reason else ""
        raise ConfigError(
            f"{why}this command needs the hub directory (on the hub's own machine), "
            f"not the URL {hub}"
        )
    from commonweal.hub import Hub

    h = Hub.open(hub)
    try:
        yield h
    finally:
        h.close()


@contextmanager
def new_hub(
    directory: Path,
    *,
    charter: Charter,
    founder_name: str,
    founder_key: Path | None,
    database: str | None,
    origin: str | None,
) -> Iterator[tuple[Hub, SigningKey, Path]]:
    """Create a hub in ``directory`` and log its founding, by the member whose key is in
    ``founder_key`` (default: a new key, saved in the directory). Yields the hub, the
    founder's key and the file that holds it; the hub is closed afterwards."""
    from commonweal.hub import FOUNDER_KEY_FILE, Hub

    key = SigningKey.load(founder_key) if founder_key else None
    before = set(directory.iterdir()) if directory.is_dir() else None
    try:
        hub, founder = Hub.init(
            directory,
            charter=charter,
            founder_name=founder_name,
            founder_key=key,
            database=database,
            origin=origin,
        )
    except Exception as exc:
        _undo(directory, before)
        raise _database_error(exc, database) from None
    try:
        yield hub, founder, founder_key or directory / FOUNDER_KEY_FILE
    finally:
        hub.close()
