"""The shape of the ``commonweal`` package, read from its source with ``ast``: which
top-level parts import which, the largest modules and functions, and how many imports sit
inside functions.

```sh
.venv/bin/python bench/layout.py                 # this checkout's src/
.venv/bin/python bench/layout.py /work/base/src  # another checkout, to compare
.venv/bin/python bench/layout.py --json          # the same as one JSON document
```

A *part* is a top-level module (``wire.py`` is ``wire``) or package (``hub/`` is ``hub``)
of ``commonweal``; ``commonweal/__init__.py`` is ``__init__``. An edge ``A -> B`` counts the
import statements in A's files that name something in B, in three kinds: at module level
(class bodies included), inside a function (deferred until called, often to dodge a
cycle), and under ``if TYPE_CHECKING:`` (never run). ``from commonweal import x`` counts
towards part ``x`` when ``x`` is a part, else towards ``__init__``. Imports of a part by
itself are left out of the graph. Nothing is imported or run: this reads the files only.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = "commonweal"
KINDS = ("module", "function", "type_checking")


@dataclass
class Layout:
    parts: list[str]
    # (from part, to part) -> kind -> import statements
    edges: dict[tuple[str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    modules: list[tuple[int, str]] = field(default_factory=list)  # (lines, path)
    functions: list[tuple[int, str]] = field(default_factory=list)  # (lines, path:qualname)
    imports_in_functions: int = 0  # every import statement inside a function
    project_imports_in_functions: int = 0  # those naming commonweal
    imports_under_type_checking: int = 0


def part_of(module: str, parts: set[str]) -> str | None:
    """The part a dotted module name (or ``commonweal.x`` name) belongs to."""
    bits = module.split(".")
    if bits[0] != PACKAGE:
        return None
    if len(bits) == 1:
        return "__init__"
    return bits[1] if bits[1] in parts else "__init__"


def resolve_from(node: ast.ImportFrom, here: list[str], is_package: bool) -> str | None:
    """The absolute module an ``ImportFrom`` reads from (``here`` is the importing module's
    dotted name, split)."""
    if node.level == 0:
        return node.module
    base = here if is_package else here[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def targets(
    node: ast.Import | ast.ImportFrom, here: list[str], is_package: bool, parts: set[str]
) -> set[str]:
    """The parts one import statement names."""
    if isinstance(node, ast.Import):
        return {p for a in node.names if (p := part_of(a.name, parts)) is not None}
    module = resolve_from(node, here, is_package)
    if module is None:
        return set()
    if module == PACKAGE:  # from commonweal import x, y
        return {a.name if a.name in parts else "__init__" for a in node.names}
    p = part_of(module, parts)
    return {p} if p is not None else set()


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def walk(node: ast.AST, kind: str, scope: list[str]) -> Iterator[tuple[ast.AST, str, list[str]]]:
    """Every node under ``node`` with the kind of place it sits in and its qualified scope."""
    for child in ast.iter_child_nodes(node):
        child_kind, child_scope = kind, scope
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            child_kind, child_scope = "function", [*scope, child.name]
        elif isinstance(child, ast.ClassDef):
            child_scope = [*scope, child.name]
        yield child, child_kind, child_scope
        if isinstance(child, ast.If) and is_type_checking(child.test) and kind == "module":
            for stmt in child.body:
                yield stmt, "type_checking", scope
                yield from walk(stmt, "type_checking", scope)
            for stmt in child.orelse:
                yield stmt, kind, scope
                yield from walk(stmt, kind, scope)
            continue
        yield from walk(child, child_kind, child_scope)


def measure(src: Path) -> Layout:
    root = src / PACKAGE
    if not (root / "__init__.py").exists():
        raise SystemExit(f"{root} is not the {PACKAGE} package")
    parts = {p.stem for p in root.glob("*.py") if p.name != "__init__.py"}
    parts |= {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    layout = Layout(parts=[*sorted(parts), "__init__"])
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(src)
        is_package = path.name == "__init__.py"
        dotted = list(rel.with_suffix("").parts)
        if is_package:
            dotted = dotted[:-1]
        here_part = part_of(".".join(dotted), parts) or "__init__"
        text = path.read_text(encoding="utf-8")
        layout.modules.append((len(text.splitlines()), str(rel)))
        tree = ast.parse(text, filename=str(path))
        for node, kind, scope in walk(tree, "module", []):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                layout.functions.append((lines, f"{rel}:{'.'.join(scope)}"))
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = targets(node, dotted, is_package, parts)
            if kind == "function":
                layout.imports_in_functions += 1
                layout.project_imports_in_functions += bool(names)
            elif kind == "type_checking":
                layout.imports_under_type_checking += 1
            for target in names - {here_part}:
                layout.edges[(here_part, target)][kind] += 1
    layout.modules.sort(reverse=True)
    layout.functions.sort(reverse=True)
    return layout


def to_json(layout: Layout, src: Path, top: int) -> dict[str, Any]:
    edges = [
        {"from": a, "to": b, **{k: layout.edges[(a, b)][k] for k in KINDS}}
        for a, b in sorted(layout.edges)
    ]
    module_level = {(a, b) for (a, b), c in layout.edges.items() if c["module"]}
    return {
        "src": str(src),
        "parts": layout.parts,
        "edges": edges,
        "module_level_cycles": sorted(
            [a, b] for a, b in module_level if a < b and (b, a) in module_level
        ),
        "any_level_cycles": sorted(
            [a, b] for a, b in layout.edges if a < b and (b, a) in layout.edges
        ),
        "modules": len(layout.modules),
        "largest_modules": [{"lines": n, "module": m} for n, m in layout.modules[:top]],
        "functions": len(layout.functions),
        "largest_functions": [{"lines": n, "function": f} for n, f in layout.functions[:top]],
        "functions_over_60_lines": sum(n > 60 for n, _ in layout.functions),
        "modules_over_600_lines": sum(n > 600 for n, _ in layout.modules),
        "imports_in_functions": layout.imports_in_functions,
        "project_imports_in_functions": layout.project_imports_in_functions,
        "imports_under_type_checking": layout.imports_under_type_checking,
    }


def text(doc: dict[str, Any]) -> str:
    out = [f"commonweal layout of {doc['src']}", ""]
    out.append(f"parts ({len(doc['parts'])}): {' '.join(doc['parts'])}")
    out.append("")
    out.append("import graph between parts (import statements: module / function / TYPE_CHECKING)")
    importers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in doc["edges"]:
        importers[e["from"]].append(e)
    for part in doc["parts"]:
        if part not in importers:
            out.append(f"  {part:<16} -> (nothing of the project)")
            continue
        cells = []
        for e in importers[part]:
            counts = "/".join(str(e[k]) for k in KINDS)
            cells.append(f"{e['to']}({counts})")
        out.append(f"  {part:<16} -> " + " ".join(cells))
    totals = {k: sum(e[k] for e in doc["edges"]) for k in KINDS}
    out.append(
        f"  edges: {len(doc['edges'])} pairs; statements module {totals['module']}, "
        f"function {totals['function']}, TYPE_CHECKING {totals['type_checking']}"
    )
    cycles = ", ".join(f"{a}<->{b}" for a, b in doc["module_level_cycles"]) or "none"
    out.append(f"  mutual imports at module level: {cycles}")
    cycles = ", ".join(f"{a}<->{b}" for a, b in doc["any_level_cycles"]) or "none"
    out.append(f"  mutual imports at any level:    {cycles}")
    out.append("")
    out.append(
        f"largest modules (of {doc['modules']}; {doc['modules_over_600_lines']} over 600 lines)"
    )
    out.extend(f"  {m['lines']:>5}  {m['module']}" for m in doc["largest_modules"])
    out.append("")
    out.append(
        f"largest functions (of {doc['functions']}; {doc['functions_over_60_lines']} over 60 lines)"
    )
    out.extend(f"  {f['lines']:>5}  {f['function']}" for f in doc["largest_functions"])
    out.append("")
    out.append(
        f"imports inside functions: {doc['imports_in_functions']} "
        f"({doc['project_imports_in_functions']} of them of commonweal); "
        f"under TYPE_CHECKING: {doc['imports_under_type_checking']}"
    )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(__file__).resolve().parent.parent / "src"
    ap.add_argument("src", nargs="?", type=Path, default=default, help="the src/ directory")
    ap.add_argument("--json", action="store_true", help="JSON instead of text")
    ap.add_argument("--top", type=int, default=5, help="how many largest modules/functions")
    args = ap.parse_args()
    doc = to_json(measure(args.src), args.src, args.top)
    print(json.dumps(doc, indent=2) if args.json else text(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
