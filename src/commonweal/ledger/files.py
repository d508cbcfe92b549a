"""Private files: what the hub and the CLI write that holds secrets or private data.

Such a file is created with mode 0600 and its directory, when we make it, with 0700, both
by the ``mode`` argument of the call that creates them — never by a ``chmod`` afterwards,
which would leave a moment when another user could open the file. ``write_private`` writes
atomically (a temporary file in the same directory, fsynced, renamed over the target, the
directory fsynced), so a crash leaves the old content or the new, never half of either.
``exposed`` finds files and directories that others can read, for ``serve`` to warn about.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO

__all__ = ["exposed", "fsync_directory", "open_private", "private_directory", "write_private"]

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def private_directory(path: str | os.PathLike[str]) -> Path:
    """``path`` as a directory, creating it and any missing parents with mode 0700. A
    directory that already exists is left as it is (``serve`` warns if it is open)."""
    p = Path(path)
    missing: list[Path] = []
    q = p
    while not q.exists():
        missing.append(q)
        q = q.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by someone else
            d.mkdir(mode=DIRECTORY_MODE)
    return p


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: str | os.PathLike[str], data: bytes | str, *, replace: bool = True) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (missing parents 0700).
    ``replace=False`` refuses an existing file (FileExistsError)."""
    p = Path(path)
    private_directory(p.parent)
    raw = data.encode() if isinstance(data, str) else data
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, p)
        else:
            os.link(tmp, p)  # fails if ``p`` exists, unlike a rename
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(p.parent)


def open_private(path: str | os.PathLike[str], mode: str = "w") -> IO[str]:
    """A new or truncated text file at ``path``, created 0600, for writing in a stream
    (``mode`` "w" or "a"). An existing file keeps its mode (``serve`` warns if open)."""
    if mode not in ("w", "a"):
        raise ValueError(f"open_private writes only: mode {mode!r}")
    p = Path(path)
    private_directory(p.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if mode == "w" else os.O_APPEND)
    return os.fdopen(os.open(p, flags, FILE_MODE), mode, encoding="utf-8", newline="")


def exposed(paths: Iterable[Path]) -> list[tuple[Path, int]]:
    """Those of ``paths`` (and, for a directory, what it holds directly) that exist and
    that the group or others may read, write or enter, with their mode bits."""
    seen: set[Path] = set()
    out: list[tuple[Path, int]] = []

    def look(p: Path) -> None:
        # One warning per file, however it was named (the hub directory may be relative
        # and the database URL absolute).
        key = Path(os.path.abspath(p))
        if key in seen:
            return
        seen.add(key)
        try:
            st = p.lstat()
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode):
            return  # the target is checked where it lives, if it is ours
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            out.append((p, mode))

    for path in paths:
        look(path)
        if path.is_dir() and not path.is_symlink():
            for child in sorted(path.iterdir()):
                look(child)
    return out
