"""Files the command line reads: only regular files, only inside the folder they belong
to, within a size cap, and every bad file one line on stderr with a non-zero exit.

An image folder's labels.csv may name ``..``, an absolute path, a symlink out, a device, a
FIFO or a folder; a member may hand any command garbage bytes, text that is not UTF-8, a
folder, a missing or unreadable file. Each is refused before it is read (a FIFO must not
hang the command, /dev/zero must not fill memory), with the file named and no traceback.
"""

from __future__ import annotations

import base64
import csv
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import UnidentifiedImageError

from commonweal.cli.data import iter_items
from commonweal.errors import InvalidInput, TooLarge
from commonweal.files import open_file, read_bytes, text_lines
from tests.kit import Databases, cw, cwj, digit_items

DIGITS = {"kind": "image-classification", "labels": [str(d) for d in range(10)]}
CHARTER = {"task": DIGITS, "limits": {"max_item_bytes": 4096}}
GARBAGE = bytes(range(256)) * 64 + b"\xff\xfe\x00\x80"


def a_png() -> bytes:
    return base64.b64decode(digit_items(0, 1)[0]["image"])


def one_line_failure(proc: subprocess.CompletedProcess[str], words: str) -> None:
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert words in proc.stderr, proc.stderr


# -- a folder's labels.csv -----------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """``scans/`` with one good image, and beside it (outside) a file a row may try to reach."""
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "good.png").write_bytes(a_png())
    (tmp_path / "secret.png").write_bytes(a_png())
    return scans


def label_rows(folder: Path, *names: str) -> None:
    lines = ["file,label", *(f"{n},3" for n in names)]
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")


def escape(folder: Path, kind: str) -> tuple[str, type[Exception], str]:
    """Make the escape ``kind`` in ``folder``: the name labels.csv gives, and the refusal."""
    outside = folder.parent / "secret.png"
    if kind == "dot-dot":
        return "../secret.png", InvalidInput, "outside"
    if kind == "dot-dot inside a path":
        (folder / "sub").mkdir()
        return "sub/../../secret.png", InvalidInput, "outside"
    if kind == "absolute path":
        return str(outside), InvalidInput, "absolute path"
    if kind == "device by absolute path":
        return "/dev/zero", InvalidInput, "absolute path"
    if kind == "symlink out":
        (folder / "link.png").symlink_to(outside)
        return "link.png", InvalidInput, "outside"
    if kind == "symlink to a device":
        (folder / "zero.png").symlink_to("/dev/zero")
        return "zero.png", InvalidInput, "outside"
    if kind == "folder symlinked out":
        (folder / "elsewhere").symlink_to(folder.parent)
        return "elsewhere/secret.png", InvalidInput, "outside"
    if kind == "fifo":
        os.mkfifo(folder / "pipe.png")
        return "pipe.png", InvalidInput, "not a regular file"
    if kind == "folder":
        (folder / "dir.png").mkdir()
        return "dir.png", InvalidInput, "is a folder"
    if kind == "missing":
        return "gone.png", InvalidInput, "does not exist"
    if kind == "symlink loop":
        (folder / "loop.png").symlink_to(folder / "loop.png")
        return "loop.png", InvalidInput, "cannot be read"
    if kind == "too large":
        (folder / "huge.png").write_bytes(a_png() + bytes(5000))
        return "huge.png", TooLarge, "at most 4096"
    raise AssertionError(kind)


ESCAPES = [
    "dot-dot",
    "dot-dot inside a path",
    "absolute path",
    "device by absolute path",
    "symlink out",
    "symlink to a device",
    "folder symlinked out",
    "fifo",
    "folder",
    "missing",
    "symlink loop",
    "too large",
]


@pytest.mark.parametrize("kind", ESCAPES)
def test_labels_csv_cannot_name_a_file_outside_the_folder_or_not_a_regular_file(
    folder: Path, kind: str
) -> None:
    name, error, words = escape(folder, kind)
    label_rows(folder, "good.png", name)
    items = iter_items(folder, CHARTER)
    where, first = next(items)
    assert where.endswith("labels.csv:2 (good.png)")
    assert first["image"] == base64.b64encode(a_png()).decode()
    with pytest.raises(error, match=words) as caught:
        next(items)
    assert "labels.csv:3" in str(caught.value)  # the row that named it


def test_a_symlink_that_stays_inside_the_folder_is_read(folder: Path) -> None:
    (folder / "again.png").symlink_to(folder / "good.png")
    (folder / "deeper").mkdir()
    (folder / "deeper" / "up.png").symlink_to(Path("..") / "good.png")
    label_rows(folder, "again.png", "deeper/up.png", "deeper/../good.png")
    assert len(list(iter_items(folder, CHARTER))) == 3


def test_devices_fifos_and_folders_are_refused_before_a_byte_is_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    for path, words in [
        (Path("/dev/zero"), "not a regular file"),
        (tmp_path / "pipe", "not a regular file"),  # and returns at once: no writer needed
        (tmp_path, "is a folder"),
        (tmp_path / "nothing", "does not exist"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            open_file(path, str(path), max_bytes=1 << 20)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(2000))
    with pytest.raises(TooLarge, match="2000 bytes; at most 1000"):
        read_bytes(big, str(big), max_bytes=1000)


def test_text_is_read_line_by_line_strictly(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_bytes(b"\xef\xbb\xbfa,b\r\none\rtwo\nthree \xe9t\xe9\n")
    lines = text_lines(f, "t.csv", max_bytes=1000)
    assert [next(lines), next(lines), next(lines)] == [(1, "a,b\r\n"), (2, "one\r"), (3, "two\n")]
    with pytest.raises(InvalidInput, match=r"t.csv:4: not UTF-8 text \(byte 0xe9"):
        next(lines)
    f.write_bytes(b"short\n" + b"x" * 100 + b"\n")
    with pytest.raises(TooLarge, match=r"t\.csv:2: a line over 50 bytes"):
        list(text_lines(f, "t.csv", max_bytes=1000, max_line=50))
    with pytest.raises(TooLarge, match="at most 80"):
        list(text_lines(f, "t.csv", max_bytes=80))


# -- every command that takes a file, given a bad one --------------------------------------------


@pytest.fixture(scope="module")
def digits_hub(
    tmp_path_factory: pytest.TempPathFactory, module_databases: Databases
) -> Iterator[tuple[Path, Path]]:
    """An image hub (on each database) and its founder's key file."""
    hub = tmp_path_factory.mktemp("files") / "hub"
    info = cwj(
        "init",
        hub,
        "--name",
        "Digits",
        "--task",
        "image-classification",
        "--labels",
        ",".join(DIGITS["labels"]),
        "--database",
        module_databases.new(),
    )
    yield hub, Path(info["founder_key_file"])


def bad_files(tmp_path: Path, suffix: str) -> dict[str, tuple[Path, str]]:
    """Bad files of each kind, named with ``suffix``: the path and words the error holds."""
    made = tmp_path / f"bad{suffix.replace('.', '-')}"
    made.mkdir()
    garbage = made / f"garbage{suffix}"
    garbage.write_bytes(GARBAGE)
    latin = made / f"latin1{suffix}"
    latin.write_bytes("caf\u00e9,3\nfile,label\n".encode("latin-1"))
    folder = made / f"folder{suffix}"
    folder.mkdir()
    loop = made / f"loop{suffix}"
    loop.symlink_to(loop)
    fifo = made / f"fifo{suffix}"
    os.mkfifo(fifo)
    kinds = {
        "garbage bytes": (garbage, "garbage"),
        "latin-1 text": (latin, "not UTF-8"),
        "a folder": (folder, "is a folder"),
        "missing": (made / f"missing{suffix}", "does not exist"),
        "a symlink loop": (loop, "cannot be read"),
        "a fifo": (fifo, "not a regular file"),
    }
    if os.geteuid() != 0:  # root reads whatever the mode says
        locked = made / f"locked{suffix}"
        locked.write_text("file,label\n")
        locked.chmod(0)
        kinds["unreadable"] = (locked, "Permission denied")
    return kinds


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_contribute_given_a_bad_file_fails_in_one_line(
    digits_hub: tuple[Path, Path], tmp_path: Path, suffix: str
) -> None:
    hub, key = digits_hub
    for kind, (path, words) in bad_files(tmp_path, suffix).items():
        proc = cw("contribute", path, "--hub", hub, "--key", key, ok=False, timeout=60)
        one_line_failure(proc, words if kind != "garbage bytes" else path.name)
    if suffix == ".csv":
        # A quoted field running over many short lines: longer than any line may be.
        runaway = tmp_path / "runaway.csv"
        runaway.write_text('file,label\n"' + ("x" * 1000 + "\n") * 100)
        proc = cw("contribute", runaway, "--hub", hub, "--key", key, ok=False)
        one_line_failure(proc, "not CSV: field larger than field limit")


def test_predict_given_a_bad_file_fails_in_one_line(
    digits_hub: tuple[Path, Path], tmp_path: Path
) -> None:
    hub, _ = digits_hub
    for suffix in (".txt", ".png"):
        for kind, (path, words) in bad_files(tmp_path, suffix).items():
            if suffix == ".png" and kind in ("garbage bytes", "latin-1 text"):
                # Bytes are all an image is; the garbage is over an item's size, the
                # short file reaches the hub (which has no model yet to refuse it with).
                words = "at most 8192" if kind == "garbage bytes" else "no model"
            elif kind == "garbage bytes":
                words = "not UTF-8"
            proc = cw("predict", "--hub", hub, path, ok=False, timeout=60)
            one_line_failure(proc, words)


def test_the_other_commands_given_a_bad_file_fail_in_one_line(tmp_path: Path) -> None:
    # The files are refused before storage is reached: one database kind suffices here.
    info = cwj(
        "init",
        tmp_path / "hub",
        "--name",
        "Files",
        "--task",
        "text-classification",
        "--labels",
        "a,b",
    )
    hub, key = tmp_path / "hub", Path(info["founder_key_file"])
    for kind, (path, words) in bad_files(tmp_path, ".toml").items():
        if kind == "garbage bytes":
            words = "not UTF-8"
        one_line_failure(cw("init", tmp_path / "new", "--charter", path, ok=False), words)
        amend = f"file={path}"
        one_line_failure(
            cw(
                "propose",
                "charter.amend",
                amend,
                "--title",
                "t",
                "--hub",
                hub,
                "--key",
                key,
                ok=False,
            ),
            words,
        )
    export = tmp_path / "log.jsonl"
    cw("ledger", "export", "--hub", hub, "--out", export)
    cw("ledger", "verify", "--file", export)  # this machine now keeps the log's checkpoint
    (kept,) = (Path(os.environ["COMMONWEAL_CONFIG_DIR"]) / "witnessed").glob("*.json")
    kept.write_bytes(GARBAGE)
    proc = cw("ledger", "verify", "--file", export, ok=False)
    one_line_failure(proc, "this machine's record of log")
    kept.unlink()
    for kind, (path, words) in bad_files(tmp_path, ".jsonl").items():
        for beside in (".checkpoint", ".vkey"):  # what verify reads first, good
            Path(f"{path}{beside}").write_bytes(Path(f"{export}{beside}").read_bytes())
        if kind == "garbage bytes":
            words = "not an exported entry"
        one_line_failure(cw("ledger", "verify", "--file", path, ok=False), words)
    for kind, (path, words) in bad_files(tmp_path, ".key").items():
        if kind in ("garbage bytes", "latin-1 text"):
            words = "not readable JSON"
        one_line_failure(cw("contributions", "--hub", hub, "--key", path, ok=False), words)
    one_line_failure(cw("contributions", "--hub", hub, "--key", "/dev/zero", ok=False), "regular")


# -- whatever escapes a command ------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        csv.Error("field larger than field limit (131072)"),
        OSError(errno.EIO, "Input/output error", "items.csv"),
        PermissionError(errno.EACCES, "Permission denied", "items.csv"),
        UnidentifiedImageError("cannot identify image file"),
        json.JSONDecodeError("Expecting value", "{x", 1),
        MemoryError(),
        RecursionError("maximum recursion depth exceeded"),
        ValueError("a message\nover two lines, with [bold]markup[/] and [/] in it"),
        InvalidInput("a Commonweal error\nwritten over two lines"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_no_exception_escapes_the_command_line_as_a_traceback(
    exc: BaseException, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import commonweal.cli as cli

    def command() -> None:
        raise exc

    monkeypatch.setattr(cli, "app", command)
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    if isinstance(exc, OSError) and exc.filename:
        assert "items.csv: " in err
    if isinstance(exc, ValueError) and "markup" in str(exc):
        assert "[bold]markup[/] and [/]" in err  # printed as written, not as styles
