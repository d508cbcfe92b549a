"""What the command line reads from disk: regular files only, within a size cap, text as
strict UTF-8, and every problem one ``InvalidInput``/``TooLarge`` naming the file.

A path a member gives (or that a folder's ``labels.csv`` names) may be a directory, a
device (``/dev/zero`` never ends), a FIFO (opening it blocks), a symlink out of the folder,
an unreadable file, a file of gigabytes or of garbage bytes. So each file is opened once,
here: the path is resolved (symlinks followed) and, when it must lie inside a folder,
checked to; it is opened without following a last symlink and without blocking, and its
``fstat`` (of the open file, so it cannot be swapped in between) must be a regular file
within the cap before a byte is read. Text is decoded strictly, line by line, so a bad
byte is reported with its line, and long files are streamed, never held whole.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from commonweal.errors import InvalidInput, TooLarge

__all__ = ["DOCUMENT_BYTES", "open_file", "read_bytes", "read_text", "text_lines"]

# A charter, a ballot kept on this machine, a checkpoint: documents a person could write.
DOCUMENT_BYTES = 1 << 20

# Universal newlines as Python's text mode (and csv) knows them: \r\n, \r or \n.
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def open_file(path: Path, what: str, *, max_bytes: int, inside: Path | None = None) -> BinaryIO:
    """Open ``path`` for reading bytes: a regular file of at most ``max_bytes`` (and, with
    ``inside``, one that resolves inside that folder), or InvalidInput/TooLarge saying why
    not. ``what`` names the file in messages (its path, or a labels.csv row)."""
    if inside is not None and Path(path).is_absolute():
        raise InvalidInput(f"{what}: names an absolute path; name a file inside {inside}")
    full = (inside / path) if inside is not None else Path(path)
    try:
        real = full.resolve(strict=True)
    except FileNotFoundError:
        raise InvalidInput(f"{what} does not exist") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise InvalidInput(f"{what} cannot be read: {_why(exc)}") from None
    if inside is not None and not real.is_relative_to(inside.resolve()):
        raise InvalidInput(f"{what}: resolves to {real}, outside {inside}; name a file inside it")
    # O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: the resolved path
    # must not have become a symlink since.
    # (Windows has neither flag; there the fstat checks below still hold.)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise InvalidInput(f"{what} cannot be read: {_why(exc)}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InvalidInput(f"{what} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"{what} is not a regular file (a device, FIFO or socket)")
        if st.st_size > max_bytes:
            raise TooLarge(f"{what} is {st.st_size} bytes; at most {max_bytes} are read")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path, what: str, *, max_bytes: int, inside: Path | None = None) -> bytes:
    """The whole of a small file (see :func:`open_file`)."""
    with open_file(path, what, max_bytes=max_bytes, inside=inside) as fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise InvalidInput(f"{what} cannot be read: {_why(exc)}") from None
    if len(data) > max_bytes:  # it grew after it was measured
        raise TooLarge(f"{what} is over {max_bytes} bytes; at most {max_bytes} are read")
    return data


def read_text(path: Path, what: str, *, max_bytes: int) -> str:
    """The whole of a small UTF-8 text file (a byte-order mark is dropped)."""
    return "".join(line for _, line in text_lines(path, what, max_bytes=max_bytes))


def text_lines(
    path: Path, what: str, *, max_bytes: int, max_line: int | None = None
) -> Iterator[tuple[int, str]]:
    """``(line number, line with its ending)`` of a UTF-8 text file, read as it is used:
    a line over ``max_line`` bytes, a byte that is not UTF-8, or more than ``max_bytes`` in
    all stop with the line's number. Lines end at \\r\\n, \\r or \\n, as in text mode."""
    longest = max_line if max_line is not None else max_bytes
    with open_file(path, what, max_bytes=max_bytes) as fh:
        number = 0
        total = 0
        while True:
            try:
                raw = fh.readline(longest + 1)
            except OSError as exc:
                raise InvalidInput(f"{what} cannot be read: {_why(exc)}") from None
            if not raw:
                return
            total += len(raw)
            if total > max_bytes:
                raise TooLarge(f"{what} is over {max_bytes} bytes; at most {max_bytes} are read")
            if len(raw) > longest:
                raise TooLarge(
                    f"{what}:{number + 1}: a line over {longest} bytes (is it a text file?)"
                )
            try:
                text = raw.decode("utf-8-sig" if number == 0 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(
                    f"{what}:{number + 1}: not UTF-8 text (byte 0x{raw[exc.start]:02x}, "
                    f"{exc.start + 1} bytes into the line); save the file as UTF-8"
                ) from None
            for piece in _LINES.findall(text):
                number += 1
                yield number, piece


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, RuntimeError):
        return "a symlink loop"
    return str(exc) or type(exc).__name__
