"""The charter: a community's constitution, saved in the log's first event.

It is a pydantic model that refuses unknown fields, so a typo in a charter file or an
amendment is an error that names the field rather than a rule silently ignored. Later parts
add their sections (task, review, rewards, governance) here as optional fields with defaults,
so that charters written today still validate tomorrow.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from commonweal.errors import CharterInvalid

__all__ = ["CHARTER_VERSION", "Charter", "JoinPolicy", "charter_from_file", "validate_charter"]

CHARTER_VERSION = 1
JoinPolicy = Literal["open", "invite", "approval"]


class Charter(BaseModel):
    """The community's rules. Field docs are what `commonweal init --help` and the API show."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1] = Field(default=1, description="charter format version")
    name: str = Field(min_length=1, max_length=100, description="the community's name")
    description: str = Field(default="", max_length=2000)
    join_policy: JoinPolicy = Field(
        default="open",
        description=(
            "open: anyone with a key may join; invite: a member's invite token is needed; "
            "approval: a join waits until an active member approves it"
        ),
    )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def validate_charter(doc: Any, *, where: str = "charter") -> Charter:
    """Validate a whole charter document; the error names the first bad field and value."""
    if not isinstance(doc, dict):
        raise CharterInvalid(f"{where} must be an object")
    try:
        return Charter.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        given = err.get("input")
        shown = "" if err["type"] == "missing" else f" (got {given!r})"
        raise CharterInvalid(
            f"{where}.{loc}: {err['msg']}{shown}",
            detail=[{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()],
        ) from None


def charter_from_file(path: str | Path) -> Charter:
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise CharterInvalid(f"charter file {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise CharterInvalid(f"charter file {p} is not valid TOML: {exc}") from None
    return validate_charter(doc, where=str(p))
