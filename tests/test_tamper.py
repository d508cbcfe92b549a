"""``ledger verify`` catches every kind of tampering in ``tests/kit/tamper.py`` — in the
hub's database (on SQLite and PostgreSQL) and in an exported log — and its message names
what was altered. A hub refuses to sign a checkpoint over a stored tree node it has not
checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from commonweal.errors import HubError
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import Frontier
from tests.kit import Databases, copied_hub, cw
from tests.kit.tamper import (
    DATABASE_KINDS,
    EXPORT_KINDS,
    DatabaseKind,
    ExportKind,
    build_community,
    detected,
    export_log,
    hub_tampering,
    read_lines,
    verify_command,
    write_lines,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, module_databases: Databases) -> Path:
    """The community every kind tampers with a copy of, built once per database kind."""
    return build_community(tmp_path_factory.mktemp("tamper") / "hub", module_databases.new())


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Iterator[Path]:
    with copied_hub(built, tmp_path / "hub") as directory:
        yield directory


def test_the_untouched_community_verifies(copy: Path) -> None:
    report, message = verify_command("--hub", str(copy))
    assert report is not None, message
    checks = "\n".join(report["checks"])
    assert "stored tree nodes recomputed from the leaves" in checks
    assert "stored artifacts of 1 model version(s)" in checks
    assert "the log head is the latest signed checkpoint" in checks
    assert "no entry or tree node stored past" in checks


@pytest.mark.parametrize("kind", DATABASE_KINDS, ids=lambda k: k.name)
def test_database_tampering_is_detected_and_named(kind: DatabaseKind, copy: Path) -> None:
    if kind.seen_first:
        assert verify_command("--hub", str(copy))[0] is not None
    with hub_tampering(copy) as t:
        words = kind.tamper(t)
    report, message = verify_command("--hub", str(copy))
    assert report is None, f"{kind.name}: not detected"
    assert detected(message, words), f"{kind.name}: {message!r} lacks {words}"


@pytest.mark.parametrize("kind", EXPORT_KINDS, ids=lambda k: k.name)
def test_export_tampering_is_detected_and_named(
    kind: ExportKind, built: Path, tmp_path: Path
) -> None:
    out = export_log(built, tmp_path / "log.jsonl")
    if kind.seen_first:
        assert verify_command("--file", str(out))[0] is not None
    lines = read_lines(out)
    words = kind.tamper(lines, out, built)
    write_lines(out, lines)
    report, message = verify_command("--file", str(out))
    assert report is None, f"{kind.name}: not detected"
    assert detected(message, words), f"{kind.name}: {message!r} lacks {words}"


def test_an_untouched_export_verifies_and_says_its_lines_agree(built: Path, tmp_path: Path) -> None:
    out = export_log(built, tmp_path / "log.jsonl")
    write_lines(out, read_lines(out))  # parsed and written back the same: still honest
    report, message = verify_command("--file", str(out))
    assert report is not None, message
    assert "decoded event, index, log time and signature are its leaf's" in "\n".join(
        report["checks"]
    )


def test_a_hub_appends_nothing_over_an_altered_frontier_node(copy: Path) -> None:
    with hub_tampering(copy) as t:
        size = t.size
        level, idx = Frontier.keys_for(size)[-1]
        t.set_node(level, idx, b"\x02" * 32)
    hub = Hub.open(copy)
    try:
        before = hub.log.checkpoint()
        join = sign_event(
            SigningKey.generate(), "member.join", {"name": "Newcomer"}, hub=hub.origin
        )
        with pytest.raises(HubError, match="do not fold to the root of the hub's signed"):
            hub.append([join])
        assert hub.log.checkpoint() == before and hub.log.size() == size
    finally:
        hub.close()


def test_a_hub_appends_after_another_process_appended(copy: Path) -> None:
    """The check on a frontier read back from the database passes for an honest one: two
    hub objects on one database take turns appending, each catching up on the other."""
    first, second = Hub.open(copy), Hub.open(copy)
    try:
        for n in range(3):
            for hub in (first, second):
                hub.append(
                    [
                        sign_event(
                            SigningKey.generate(),
                            "member.join",
                            {"name": f"p{n}{id(hub)}"},
                            hub=first.origin,
                        )
                    ]
                )
        assert first.log.size() == second.log.size()
    finally:
        first.close()
        second.close()
    report, message = verify_command("--hub", str(copy))
    assert report is not None, message


def test_every_kind_is_listed_once() -> None:
    names = [k.name for k in DATABASE_KINDS] + [f"export: {k.name}" for k in EXPORT_KINDS]
    assert len(names) == len(set(names))


def test_the_command_line_names_an_edited_export_line_on_one_line(
    built: Path, tmp_path: Path
) -> None:
    out = export_log(built, tmp_path / "log.jsonl")
    lines = read_lines(out)
    lines[1]["event"]["body"]["name"] = "Mallory"
    write_lines(out, lines)
    proc = cw("ledger", "verify", "--file", out, ok=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "log.jsonl:2: the decoded 'event' of entry 1 does not match its leaf" in proc.stderr
