"""The house's floors: which part of the package may import which.

``../shared/ARCHITECTURE.md`` draws the layers — the log at the bottom, the pure rules on
it, storage and the hub above, the shells (API, CLI, verifier, cards) on top — and this
test holds the code to the drawing. It reads every module's imports with ``ast`` (module
level and inside functions alike: an import hidden in a function is still a dependency),
so a new shortcut through the floors fails here with the file and line that took it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "commonweal"

# Third-party libraries the pure rules must never reach for: storage, web, ML, images.
NOT_PURE = {
    "sqlalchemy",
    "fastapi",
    "starlette",
    "httpx",
    "uvicorn",
    "numpy",
    "scipy",
    "sklearn",
    "PIL",
    "datasketch",
    "imagehash",
    "cleanlab",
    "skops",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. commonweal.hub.core
    target: str  # what it imports, e.g. commonweal.store.log
    where: str  # file:line, for the failure message
    in_function: bool


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> list[Import]:
    out: list[Import] = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        functions = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        inside = {id(n) for f in functions for n in ast.walk(f) if n is not f}
        typing_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue  # annotations only: no import happens at run time
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                out.append(
                    Import(
                        module,
                        name,
                        f"{path.relative_to(SRC.parent)}:{node.lineno}",
                        id(node) in inside,
                    )
                )
    return out


IMPORTS = _imports()


def _ours(target: str) -> str | None:
    """The part of the package ``target`` names (``commonweal.store``), or None."""
    parts = target.split(".")
    if parts[0] != "commonweal" or len(parts) == 1:
        return None
    return ".".join(parts[:2])


def _is_module(target: str) -> bool:
    rel = Path(*target.split("."))
    return (SRC.parent / rel).with_suffix(".py").exists() or (SRC.parent / rel).is_dir()


def _violations(part: str, allowed: set[str], *, third_party: set[str] = frozenset()) -> list:
    bad = []
    for imp in IMPORTS:
        if imp.module != part and not imp.module.startswith(part + "."):
            continue
        ours = _ours(imp.target)
        if ours is not None and _is_module(ours):
            if ours != part and ours not in allowed:
                bad.append(f"{imp.where}: {imp.module} imports {imp.target}")
        elif imp.target.split(".")[0] in third_party:
            bad.append(f"{imp.where}: {imp.module} imports {imp.target}")
    return sorted(set(bad))


def test_the_ledger_imports_nothing_else_of_ours() -> None:
    assert _violations("commonweal.ledger", {"commonweal.errors"}) == []


def test_errors_and_wire_are_leaves() -> None:
    assert _violations("commonweal.errors", set()) == []
    assert _violations("commonweal.wire", {"commonweal.ledger", "commonweal.errors"}) == []


def test_the_rules_are_pure() -> None:
    allowed = {"commonweal.ledger", "commonweal.errors", "commonweal.wire"}
    assert _violations("commonweal.community", allowed, third_party=NOT_PURE) == []


def test_numerical_work_knows_nothing_of_the_community() -> None:
    # ``images`` is the one bounded image decoder, itself a leaf on ``errors``.
    assert _violations("commonweal.ml", {"commonweal.errors", "commonweal.images"}) == []


def test_the_image_decoder_is_a_leaf() -> None:
    assert _violations("commonweal.images", {"commonweal.errors"}) == []


def test_file_readers_are_a_leaf() -> None:
    assert _violations("commonweal.files", {"commonweal.errors"}) == []


def test_a_federated_node_sits_on_the_hub_side_never_on_the_shells() -> None:
    allowed = {
        "commonweal.hub",
        "commonweal.ml",
        "commonweal.community",
        "commonweal.ledger",
        "commonweal.errors",
        "commonweal.wire",
        "commonweal.items",
        "commonweal.files",
    }
    assert _violations("commonweal.federated", allowed) == []


def test_storage_sits_on_the_rules() -> None:
    allowed = {"commonweal.ledger", "commonweal.community", "commonweal.errors"}
    assert _violations("commonweal.store", allowed) == []


def test_the_hub_does_not_reach_up_into_its_shells() -> None:
    shells = {"commonweal.api", "commonweal.cli", "commonweal.client", "commonweal.verify"}
    allowed = {
        "commonweal.ledger",
        "commonweal.community",
        "commonweal.ml",
        "commonweal.store",
        "commonweal.errors",
        "commonweal.wire",
        "commonweal.items",
    }
    assert not allowed & shells
    assert _violations("commonweal.hub", allowed) == []


def test_the_api_goes_through_the_hub() -> None:
    """Routes import ``commonweal.hub`` (the Hub and its namespaces), never storage or a
    service module behind it."""
    allowed = {
        "commonweal.hub",
        "commonweal.cards",
        "commonweal.ledger",
        "commonweal.errors",
        "commonweal.wire",
        "commonweal.web",  # the app mounts the members' pages beside its routes
    }
    bad = _violations("commonweal.api", allowed)
    bad += [
        f"{imp.where}: {imp.module} imports {imp.target}"
        for imp in IMPORTS
        if imp.module.startswith("commonweal.api")
        and imp.target.startswith("commonweal.hub.")
        and imp.target.split(".")[2] not in ("Hub",)
    ]
    assert bad == []


def test_the_web_app_is_a_shell_on_the_hub() -> None:
    """Pages read the hub (and the pure rules' views and words), like the API's routes;
    never storage, the numerical work or a service module behind the hub."""
    allowed = {
        "commonweal.api",  # its dependencies: the hub of the request, the signed member
        "commonweal.hub",
        "commonweal.cards",
        "commonweal.community",
        "commonweal.items",
        "commonweal.ledger",
        "commonweal.errors",
        "commonweal.wire",
    }
    bad = _violations("commonweal.web", allowed)
    bad += [
        f"{imp.where}: {imp.module} imports {imp.target}"
        for imp in IMPORTS
        if imp.module.startswith("commonweal.web")
        and imp.target.startswith("commonweal.hub.")
        and imp.target.split(".")[2] not in ("Hub",)
    ]
    assert bad == []


def test_the_sdk_is_light() -> None:
    """The client needs only the log, the errors and the shared wire rules; a hub directory
    (embedded mode) is the one place it loads the server, on demand."""
    allowed = {"commonweal.ledger", "commonweal.errors", "commonweal.wire"}
    bad = [
        v
        for v in _violations("commonweal.client", allowed)
        if not v.endswith("imports commonweal.embedded")
        and not v.endswith("imports commonweal.embedded.open_embedded")
    ]
    assert bad == []
    embedded = [
        i for i in IMPORTS if i.module == "commonweal.client" and i.target == "commonweal.embedded"
    ]
    assert all(i.in_function for i in embedded)


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("commonweal.client", ["fastapi", "sqlalchemy", "PIL", "datasketch", "sklearn", "numpy"]),
        ("commonweal.ledger", ["commonweal.hub", "commonweal.community", "sqlalchemy", "fastapi"]),
        ("commonweal.wire", ["commonweal.hub", "sqlalchemy", "fastapi"]),
    ],
)
def test_importing_a_light_part_loads_nothing_heavy(module: str, absent: list[str]) -> None:
    code = f"import sys, {module}; print(sorted(m for m in {absent!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", f"import {module} loaded {out.stdout.strip()}"


def test_the_outsiders_tools_sit_on_the_hub() -> None:
    below_hub = {"commonweal.ledger", "commonweal.community", "commonweal.store"}
    verify = {"commonweal.hub", "commonweal.errors", *below_hub}
    assert _violations("commonweal.verify", verify) == []
    pure = {"commonweal.community", "commonweal.errors", "commonweal.ledger"}
    assert _violations("commonweal.cards", pure, third_party=NOT_PURE) == []
    items = {
        "commonweal.community",
        "commonweal.errors",
        "commonweal.images",
        "commonweal.ledger",
        "commonweal.wire",
    }
    assert _violations("commonweal.items", items) == []
    assert _violations("commonweal.embedded", {"commonweal.api", "commonweal.hub"}) == []


def test_the_cli_talks_to_hubs_through_the_sdk_and_one_helper() -> None:
    """Commands use the client (a directory or a URL alike); only ``cli/hubs.py`` opens a
    hub directory for the operator's own jobs, and the shells a command starts (the
    server, the verifier, the demo) load inside that command, never at start-up."""
    allowed = {
        "commonweal.client",
        "commonweal.ledger",
        "commonweal.errors",
        "commonweal.wire",
        "commonweal.community",
        "commonweal.cards",  # the charter in plain words, shared with the web app
        "commonweal.files",  # what a member's machine reads: documents, files of items
    }
    started_inside = {
        "commonweal.cli.hubs": {"commonweal.hub"},
        "commonweal.cli.community": {"commonweal.api", "commonweal.federated"},
        "commonweal.cli.model": {"commonweal.federated"},
        "commonweal.cli.ledger": {"commonweal.verify"},
        "commonweal.cli.demo": {"commonweal.demo"},
        "commonweal.cli.data": {"commonweal.items"},
        "commonweal.cli.review": {"commonweal.images"},
        "commonweal.cli.node": {"commonweal.federated"},
    }
    bad = []
    for imp in IMPORTS:
        if imp.module != "commonweal.cli" and not imp.module.startswith("commonweal.cli."):
            continue
        ours = _ours(imp.target)
        if ours is None or not _is_module(ours) or ours == "commonweal.cli" or ours in allowed:
            continue
        if ours in started_inside.get(imp.module, set()) and imp.in_function:
            continue
        bad.append(f"{imp.where}: {imp.module} imports {imp.target}")
    assert bad == []
