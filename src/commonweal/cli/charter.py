"""Commands for reading the charter: ``charter show`` (the rules in plain words) and
``charter template`` (a TOML file with every setting commented, for ``init --charter``).
``charter_diff`` (the lines a ``charter.amend`` proposal changes) lives in
``commonweal.cards.charter_words``, where the web app reads it too."""

from __future__ import annotations

import json
import textwrap
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from commonweal.cards.charter_words import (
    SECTIONS,
    charter_diff,
    charter_sections,
    duration,
    sentence,
)
from commonweal.cli.hubs import connect
from commonweal.cli.options import JsonOpt
from commonweal.cli.output import emit, out
from commonweal.community.charter import Charter
from commonweal.errors import InvalidInput

__all__ = ["charter_diff", "register", "template_text"]

_WIDTH = 88


def register(app: typer.Typer) -> None:
    """Add the ``charter`` commands to ``app``."""
    charter_app = typer.Typer(help="The community's charter: its rules.", no_args_is_help=True)
    charter_app.command("show")(charter_show)
    charter_app.command("template")(charter_template)
    app.add_typer(charter_app, name="charter")


# -- charter show -------------------------------------------------------------------------


def plain_words(doc: dict[str, Any]) -> list[str]:
    """The charter ``doc`` as headed paragraphs for the terminal."""
    lines: list[str] = []
    for i, (heading, sentences) in enumerate(charter_sections(doc)):
        lines += ([""] if i else []) + [f"[bold]{heading}[/]", *(f"  {x}" for x in sentences)]
    return lines


def charter_show(
    hub: Annotated[
        str | None, typer.Option("--hub", help="Hub directory, or http(s) URL of a hub.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A charter TOML file, instead of a hub's.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the community's charter in plain words: every section, and what each setting
    means for members."""
    from commonweal.cli.community import read_charter

    if (hub is None) == (file is None):
        raise InvalidInput("give exactly one of --hub or --file")
    if file is not None:
        doc = read_charter(file).to_json()
    else:
        with connect(str(hub)) as c:
            doc = c.community()["charter"]
    emit(doc, as_json, lambda: out.print("\n".join(plain_words(doc)), highlight=False))


# -- charter template ---------------------------------------------------------------------

_EXAMPLE_TASK = {"kind": "text-classification", "labels": ["spam", "not-spam"]}
_TASK_NOTES = [
    "kind: text-classification, tabular-classification, tabular-regression or "
    "image-classification.",
    "labels: at least two, for a classification task (none for regression).",
    "A tabular task also lists its columns, and names the column to predict:",
    '  columns = [{name = "age", type = "numeric"}, {name = "town", type = "categorical", '
    'categories = ["A", "B"]}]',
    '  target = "target"',
    "An image task gives the largest image size: image_width = 8, image_height = 8.",
]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def _choices(model: type[BaseModel], name: str) -> str:
    ann = model.model_fields[name].annotation
    args = typing.get_args(ann)
    if typing.get_origin(ann) is typing.Literal:
        return f" One of: {', '.join(map(str, args))}."
    if args and typing.get_origin(args[0]) is typing.Literal:
        return f" Each one of: {', '.join(map(str, typing.get_args(args[0])))}."
    return ""


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, _WIDTH - 2, initial_indent="# ", subsequent_indent="# ")


def _section_text(model: type[BaseModel], doc: dict[str, Any], prefix: str) -> list[str]:
    """One TOML table: its scalar settings, each under its sentence, then its sub-tables."""
    lines: list[str] = []
    tables: list[str] = []
    for name, field in model.model_fields.items():
        path, value = prefix + name, doc.get(name)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            title = SECTIONS.get(path, path)
            head = ["", f"# == {title} ==", *_comment(ann.__doc__ or ""), f"[{path}]"]
            tables += head + _section_text(ann, value or {}, path + ".")
        elif path == "task":
            tables += ["", "# == What the model learns ==", *_comment(" ".join(_TASK_NOTES[:2]))]
            tables += [*(f"# {n}" for n in _TASK_NOTES[2:]), "[task]"]
            tables += [f"{k} = {_toml(v)}" for k, v in _EXAMPLE_TASK.items()]
        elif path == "governance.rules":
            note = "Per kind of action, a rule that differs from the default, e.g.:"
            tables += ["", *_comment(note), '# [governance.rules."treasury.pay"]']
            tables += ['# weighting = "shares"', '# approval = "two-thirds"']
        else:
            shown = duration(value) if path.endswith("_seconds") and value else None
            said = sentence(path, value) + (f" ({value} s = {shown})" if shown else "")
            lines += [*_comment(said + _choices(model, name)), f"{name} = {_toml(value)}"]
    return lines + tables


def template_text() -> str:
    """A charter TOML with every setting at its default, each under a comment saying
    what it means; ``init --charter`` takes it as it is."""
    defaults = Charter(name="My Community").to_full_json()
    head = [
        "# A Commonweal charter: the community's rules, fixed in the first entry of its log.",
        "# Change what you need, then: commonweal init HUB_DIR --charter THIS_FILE",
        "# Every setting below is at its default; a setting left out keeps its default.",
        "# After founding, only a charter.amend vote changes the charter.",
        "",
    ]
    return "\n".join(head + _section_text(Charter, defaults, "")) + "\n"


def charter_template(
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Print a charter TOML template with every setting commented (for init --charter)."""
    text = template_text()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"Wrote {output}", err=True)
