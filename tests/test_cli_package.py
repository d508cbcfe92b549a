"""The ``cli`` package: a charter file founds a community, operator commands refuse a URL
in one line that shows it intact, the help lists every area's commands, and the package
opens a hub only through ``cli.hubs``."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import commonweal.cli
from commonweal.cli import app
from commonweal.errors import ConfigError

CLI_DIR = Path(commonweal.cli.__file__).parent


def cw(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it: a separate process."""
    proc = subprocess.run(
        [sys.executable, "-m", "commonweal", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    if ok:
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc


def cwj(*args: str | Path) -> Any:
    return json.loads(cw(*args, "--json").stdout)


def assert_one_line_failure(proc: subprocess.CompletedProcess[str], words: str) -> None:
    assert proc.returncode == 1, proc
    assert words in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "Traceback" not in proc.stderr


CHARTER = """\
name = "Bird Song Commons"
join_policy = "approval"
description = "Recordings of birds, labelled by the people who heard them."

[task]
kind = "text-classification"
labels = ["robin", "wren", "blackbird"]
"""


def test_init_with_a_charter_file_founds_that_community(tmp_path: Path, database_url: str) -> None:
    charter = tmp_path / "charter.toml"
    charter.write_text(CHARTER)
    hub = tmp_path / "hub"
    info = cwj("init", hub, "--charter", charter, "--database", database_url)
    assert info["name"] == "Bird Song Commons"
    founding = cwj("ledger", "show", "--hub", hub)["entries"][0]["event"]
    assert founding["kind"] == "community.found"
    logged = founding["body"]["charter"]
    assert logged["name"] == "Bird Song Commons"
    assert logged["join_policy"] == "approval"
    assert logged["task"]["kind"] == "text-classification"
    assert logged["task"]["labels"] == ["robin", "wren", "blackbird"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('name = "X"\nvoting = "yes"\n', "voting"),
        ('name = "X\n', "is not valid TOML"),
        ('name = "X"\n[task]\nkind = "text-classification"\nlabels = ["a"]\n', "two labels"),
        (None, "does not exist"),
        ("folder", "is a folder, not a file"),
    ],
)
def test_an_invalid_charter_file_fails_in_one_line_and_leaves_no_hub(
    tmp_path: Path, content: str | None, words: str
) -> None:
    charter = tmp_path / "charter.toml"
    if content == "folder":
        charter.mkdir()
    elif content is not None:
        charter.write_text(content)
    hub = tmp_path / "hub"
    proc = cw("init", hub, "--charter", charter, ok=False)
    assert_one_line_failure(proc, words)
    assert str(charter) in proc.stderr
    assert not hub.exists()


URL = "http://127.0.0.1:9/some/hub"
OPERATOR_COMMANDS = [
    ["train"],
    ["value"],
    ["rewards", "close-epoch"],
    ["rewards", "export-claims", "--epoch", "1"],
    ["payout"],
    ["revenue", "close"],
    ["quality", "scan"],
    ["rebuild"],
    ["serve"],
    ["model", "export"],
    ["execute", "1"],
]


@pytest.mark.parametrize("command", OPERATOR_COMMANDS, ids=" ".join)
def test_an_operator_command_given_a_url_says_it_needs_the_directory(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--hub", URL])
    assert isinstance(result.exception, ConfigError), result.output
    message = result.exception.message
    assert "needs the hub directory" in message and message.endswith(f"the URL {URL}")


def test_the_url_message_is_one_line_on_stderr_with_the_url_intact() -> None:
    proc = cw("train", "--hub", URL, ok=False)
    assert_one_line_failure(
        proc, f"needs the hub directory (on the hub's own machine), not the URL {URL}"
    )
    proc = cw("execute", "3", "--hub", URL, ok=False)
    assert_one_line_failure(proc, "without --key the hub signs")
    assert URL in proc.stderr


AREAS = {
    "community": ["init", "join", "leave", "members", "serve", "key", "invite", "member"],
    "charter": ["charter"],
    "ledger": ["rebuild", "ledger"],
    "demo": ["demo"],
    "__init__": ["version"],
    "data": [
        "contribute",
        "contributions",
        "contribution",
        "withdraw",
        "export",
        "review",
        "quality",
    ],
    "governance": ["propose", "vote", "reveal", "delegate", "proposals", "execute"],
    "model": ["train", "models", "lineage", "card", "predict", "apikey", "revenue", "model"],
    "ownership": ["value", "values", "shares", "payout", "statement", "transfer", "rewards"],
    "node": ["node"],
}
GROUPS = {
    "charter": ["show", "template"],
    "ledger": ["checkpoint", "show", "prove", "export", "verify"],
    "key": ["new", "show"],
    "invite": ["create"],
    "member": ["approve", "address"],
    "review": ["next", "submit", "reliability"],
    "quality": ["scan"],
    "apikey": ["create", "revoke", "list"],
    "revenue": ["close", "treasury"],
    "model": ["export"],
    "rewards": ["close-epoch", "export-claims"],
    "node": ["enroll", "run", "withdraw"],
}


def _listed(help_text: str) -> list[str]:
    """The command names in a help screen's command panel."""
    names = []
    for line in help_text.splitlines():
        # A name starts right after the panel's border; a wrapped description is indented.
        cells = line.strip("│ ").split()
        if line.startswith("│ ") and line[2:3] != " " and not cells[0].startswith("-"):
            names.append(cells[0])
    return names


def test_help_lists_every_areas_commands() -> None:
    listed = _listed(cw("--help").stdout)
    expected = [name for names in AREAS.values() for name in names]
    assert sorted(listed) == sorted(expected)
    runner = CliRunner()
    for group, commands in GROUPS.items():
        result = runner.invoke(app, [group, "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        assert _listed(result.output) == commands, group


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every import in a module, at any depth: (module, names imported from it)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
    return found


def test_the_cli_opens_a_hub_only_through_its_hubs_module() -> None:
    modules = sorted(CLI_DIR.glob("*.py"))
    assert {p.stem for p in modules} >= {"__init__", "output", "options", "hubs", *AREAS}
    for path in modules:
        for module, names in _imports(path):
            where = f"{path.name} imports {module}"
            assert not module.startswith("commonweal.store"), where
            assert not module.startswith("commonweal.hub."), where
            if module == "commonweal.hub":
                assert path.name == "hubs.py", where
            if module.startswith("commonweal.api"):
                assert path.name == "community.py", where  # `serve`, and only it
            if module.startswith("commonweal.cli."):
                private = [n for n in names if n.startswith("_")]
                assert not private, f"{where}: {private}"
