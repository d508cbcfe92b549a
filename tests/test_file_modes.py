"""What the hub and the command line write that holds secrets or private data is the
user's alone: files 0600, directories 0700, from the moment they exist — and ``serve``
names, one line each, anything it finds open to others, with the chmod that closes it.

Each test runs under a permissive umask (022, the usual default), so a file created
without an explicit mode would come out 0644 and fail here."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from commonweal.client import HubClient
from commonweal.community.charter import validate_charter
from commonweal.hub import Hub
from commonweal.ledger.files import exposed, write_private
from commonweal.ledger.keys import SigningKey
from tests.kit import cw, cwj, make_hub


@pytest.fixture(autouse=True)
def _permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def text_hub(directory: Path, database_url: str) -> tuple[Hub, SigningKey]:
    """A community that takes labelled text (the hub is open: close it)."""
    charter = validate_charter(
        {"name": "Modes", "task": {"kind": "text-classification", "labels": ["a", "b"]}}
    )
    return Hub.init(directory, charter=charter, founder_name="Ada", database=database_url)


def test_a_new_hub_its_keys_database_and_vault_keys_are_private(
    tmp_path: Path, database_url: str
) -> None:
    directory = tmp_path / "hub"
    hub, founder = text_hub(directory, database_url)
    try:
        with HubClient(str(directory)) as c:
            c.contribute(
                founder, [{"text": "hello", "label": "a"}, {"text": "world", "label": "b"}]
            )
        assert mode(directory) == 0o700
        for name in ("hub.toml", "hub.key", "founder.key"):
            assert mode(directory / name) == 0o600, name
        assert mode(directory / "vault-keys") == 0o700
        keks = list((directory / "vault-keys").iterdir())
        assert keks and all(mode(k) == 0o600 for k in keks)
        if make_url(database_url).get_backend_name() == "sqlite":
            db = Path(make_url(database_url).database or "")
            files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
            assert all(f.exists() for f in files)
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert hub.exposed() == []
    finally:
        hub.close()


def test_member_key_files_and_their_new_folders_are_private(tmp_path: Path) -> None:
    out = tmp_path / "keys" / "mine" / "ada.key"
    made = cwj("key", "new", "--out", out)
    assert made["file"] == str(out)
    assert mode(out) == 0o600
    assert mode(out.parent) == 0o700 and mode(out.parent.parent) == 0o700
    # What the demo does for each member (members/<name>.key), through the same call.
    SigningKey.generate().save(tmp_path / "demo" / "members" / "grace.key", name="Grace")
    assert mode(tmp_path / "demo" / "members") == 0o700
    assert mode(tmp_path / "demo" / "members" / "grace.key") == 0o600


def test_a_members_export_is_private(tmp_path: Path, database_url: str) -> None:
    directory = tmp_path / "hub"
    hub, founder = text_hub(directory, database_url)
    hub.close()
    with HubClient(str(directory)) as c:
        c.contribute(founder, [{"text": "my private words", "label": "a"}])
    out = tmp_path / "exports" / "ada"
    cw("export", "--hub", directory, "--key", directory / "founder.key", "--out", out)
    assert mode(out) == 0o700 and mode(out.parent) == 0o700
    for name in ("contributions.jsonl", "events.jsonl"):
        assert mode(out / name) == 0o600, name
    assert "my private words" in (out / "contributions.jsonl").read_text()


def test_a_secret_ballot_kept_until_reveal_is_private(tmp_path: Path, database_url: str) -> None:
    directory = tmp_path / "hub"
    charter = validate_charter({"name": "Ballots", "governance": {"secret_ballot": True}})
    hub, _ = Hub.init(directory, charter=charter, founder_name="Ada", database=database_url)
    hub.close()
    key = directory / "founder.key"
    shown = cwj(
        "propose", "signal", "text=hello", "--title", "Hi", "--hub", directory, "--key", key
    )
    cwj("vote", str(shown["proposal"]), "for", "--hub", directory, "--key", key)
    ballots = list((tmp_path / "config" / "ballots").rglob("*.json"))
    assert len(ballots) == 1 and json.loads(ballots[0].read_text())["choice"] == "for"
    assert mode(ballots[0]) == 0o600
    assert mode(ballots[0].parent) == 0o700 and mode(tmp_path / "config" / "ballots") == 0o700


def test_private_writes_are_atomic_and_never_widen(tmp_path: Path) -> None:
    path = tmp_path / "claims.json"
    write_private(path, "first")
    write_private(path, "second")  # replaced whole, still 0600
    assert path.read_text() == "second" and mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["claims.json"]  # no temporary left
    with pytest.raises(FileExistsError):
        write_private(path, "third", replace=False)
    assert path.read_text() == "second"


def test_exposed_names_what_others_can_read(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    write_private(d / "ok", "x")
    (d / "open").write_text("x")  # 0644 under the test's umask
    (d / "open").chmod(0o644)
    assert exposed([d, tmp_path / "missing"]) == [(d / "open", 0o644)]


def test_serve_warns_once_per_exposed_path_with_the_chmod_to_run(
    tmp_path: Path, database_url: str
) -> None:
    directory = tmp_path / "hub"
    hub, _ = make_hub(directory, database_url)
    hub.close()
    directory.chmod(0o755)
    (directory / "hub.key").chmod(0o644)
    sqlite = make_url(database_url).get_backend_name() == "sqlite"
    db = Path(make_url(database_url).database or "")  # the tests' SQLite file lives apart
    if sqlite:
        db.chmod(0o640)
    proc = subprocess.Popen(
        [sys.executable, "-m", "commonweal", "serve", "--hub", str(directory), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line or line.startswith("Serving"):
                break
            lines.append(line.rstrip("\n"))
    finally:
        proc.terminate()
        proc.wait(30)
    expected = [
        f"Warning: {directory} is open to other users (mode 755); run: chmod 700 {directory}",
        f"Warning: {directory / 'hub.key'} is open to other users (mode 644); "
        f"run: chmod 600 {directory / 'hub.key'}",
    ]
    if sqlite:  # SQLite gives its -wal and -shm files the database file's mode
        expected += [
            f"Warning: {f} is open to other users (mode 640); run: chmod 600 {f}"
            for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm"))
        ]
    assert sorted(lines) == sorted(expected)
