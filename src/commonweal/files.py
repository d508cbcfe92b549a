"""What the command line and a federated node read from disk: regular files only, within a
size cap, text as strict UTF-8, and every problem one ``InvalidInput``/``TooLarge`` naming the
file; and the files of items (CSV, JSONL, an image folder) read within the charter's bounds.

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

import base64
import csv
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from commonweal.errors import InvalidInput, TooLarge

__all__ = [
    "DOCUMENT_BYTES",
    "file_limits",
    "iter_items",
    "open_file",
    "read_bytes",
    "read_items",
    "read_text",
    "text_lines",
]

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


# -- files of items (contributions, prediction inputs, a federated node's data) ------

# What a member may contribute in a day, twice over for a file format's overhead (CSV
# quoting, JSON spacing and escapes): a larger file cannot be contributed, so it is refused
# before any of it is read. One line (a CSV row, a JSONL item) may take eight times an
# item's bytes (every character a \uXXXX escape) and at least 64 KiB.
_DAY_ITEMS, _ITEM_BYTES = 100_000, 8192  # the charter's defaults, for a charter without limits


def file_limits(charter: dict[str, Any]) -> tuple[int, int, int]:
    """``(file bytes, line bytes, item bytes)`` a contribution file is read within."""
    limits = charter.get("limits") or {}
    item = int(limits.get("max_item_bytes", _ITEM_BYTES))
    day = int(limits.get("max_items_per_member_per_day", _DAY_ITEMS))
    return 2 * day * item + (1 << 20), max(1 << 16, 8 * item), item


def read_items(
    path: Path, charter: dict[str, Any], *, max_items: int | None = None
) -> list[dict[str, Any]]:
    """Every item of a file (see :func:`iter_items`), at most ``max_items`` of them."""
    items = []
    for n, (_, item) in enumerate(iter_items(path, charter), 1):
        if max_items is not None and n > max_items:
            raise TooLarge(f"{path} holds more than {max_items} items; send at most {max_items}")
        items.append(item)
    return items


def iter_items(path: Path, charter: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, item)`` from a CSV or JSONL file, or (images) a folder with a labels.csv
    file, read as they are used (never the whole file at once) within ``file_limits``."""
    task = charter.get("task") or {}
    max_file, max_line, max_item = file_limits(charter)
    if path.is_dir():
        yield from _image_folder(path, task, max_file, max_line, max_item)
        return
    if path.suffix == ".jsonl":
        for n, line in text_lines(path, str(path), max_bytes=max_file, max_line=max_line):
            if line.strip():
                yield f"{path}:{n}", _shape(_json_line(line, f"{path}:{n}"), task, f"{path}:{n}")
    elif path.suffix == ".csv":
        for n, row in _csv_rows(path, max_file, max_line):
            yield f"{path}:{n}", _shape(row, task, f"{path}:{n}")
    else:
        open_file(path, str(path), max_bytes=max_file).close()  # missing, a folder…: say so
        raise InvalidInput(f"{path}: contribute takes a .csv or .jsonl file, or an image folder")


def _json_line(line: str, where: str) -> Any:
    try:
        return json.loads(line, parse_float=str)
    except RecursionError:
        raise InvalidInput(f"{where}: JSON nested too deeply") from None
    except ValueError:
        raise InvalidInput(f"{where}: not a JSON object") from None


def _csv_rows(path: Path, max_file: int, max_line: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of a CSV file with a header, streamed."""
    # A field may be as long as a line (the module's default stops at 128 KiB).
    csv.field_size_limit(max_line)
    lines = text_lines(path, str(path), max_bytes=max_file, max_line=max_line)
    reader = csv.DictReader(line for _, line in lines)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise InvalidInput(f"{path}:{reader.line_num}: not CSV: {exc}") from None


def _image_folder(
    path: Path, task: dict[str, Any], max_file: int, max_line: int, max_item: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    labels = path / "labels.csv"
    if task.get("kind") != "image-classification" or not labels.exists():
        raise InvalidInput(
            f"{path} is a folder: for an image task it needs labels.csv (file,label[,caption])"
        )
    for n, row in _csv_rows(labels, max_file, max_line):
        if not row.get("file") or "label" not in row:
            raise InvalidInput(f"{labels}:{n}: needs columns file and label")
        where = f"{labels}:{n} ({row['file']})"
        # Only a regular file inside the folder, no larger than an item can be: "..", an
        # absolute path, a symlink out, a device or a FIFO is refused before it is read.
        raw = read_bytes(Path(row["file"]), where, max_bytes=max_item, inside=path)
        item = {"image": base64.b64encode(raw).decode(), "label": row["label"]}
        if row.get("caption"):
            item["caption"] = row["caption"]
        yield where, item


def _shape(row: Any, task: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise InvalidInput(f"{where}: not an object")
    kind = task.get("kind", "")
    if kind == "text-classification":
        return {"text": row.get("text"), "label": row.get("label")}
    if kind.startswith("tabular"):
        if "features" in row:
            return row
        target = task.get("target", "target")
        cols = [c["name"] for c in task.get("columns", [])]
        return {"features": {c: row.get(c) for c in cols}, "target": row.get(target)}
    return row
