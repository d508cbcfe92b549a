"""Naming members and items the way people type them: a member by name (any case), key id
or a unique prefix of it; an item by id or a unique prefix; and the shortest prefixes a
table may show, so that an id copied from a table always names exactly one thing.

The CLI and the web app's member pages both resolve names here, so ``grace``, ``Grace``
and ``3f9a1c07`` name the same member everywhere. A prefix that names more than one thing
is refused in one line that lists them (up to a few), so the person can type one more
character. Pure: it reads the candidates it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from commonweal.errors import InvalidInput, NotFound

__all__ = ["ITEM_MIN", "KEY_MIN", "pick", "resolve_member", "short_ids"]

ITEM_MIN = 8  # shortest item-id prefix a table shows (and a user may type)
KEY_MIN = 8  # the same for members' key ids
_LISTED = 6  # candidates named in an ambiguity message


def short_ids(ids: Iterable[str], minimum: int = ITEM_MIN) -> dict[str, str]:
    """Each id's shortest prefix of at least ``minimum`` characters that no other id in
    ``ids`` shares (the whole id when it is the prefix of another)."""
    unique = sorted(set(ids))
    shown: dict[str, str] = {}
    for n, full in enumerate(unique):
        need = minimum
        for other in (unique[n - 1] if n else "", unique[n + 1] if n + 1 < len(unique) else ""):
            common = 0
            while common < min(len(full), len(other)) and full[common] == other[common]:
                common += 1
            need = max(need, common + 1)
        shown[full] = full[: min(need, len(full))]
    return shown


def pick(what: str, given: str, candidates: Sequence[str], names: Mapping[str, str]) -> str:
    """The one candidate ``given`` names; NotFound when none, InvalidInput (one line,
    listing them) when several. ``names`` labels candidates in the message."""
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise NotFound(f"no {what} matches {given!r}")
    short = short_ids(candidates, len(given) + 1)
    listed = ", ".join(
        short[c] + (f" ({names[c]})" if names.get(c) else "") for c in sorted(candidates)[:_LISTED]
    )
    more = f" and {len(candidates) - _LISTED} more" if len(candidates) > _LISTED else ""
    raise InvalidInput(
        f"{given!r} matches {len(candidates)} {what}s: {listed}{more}; type more of the id"
    )


def resolve_member(members: Iterable[Mapping[str, Any]], who: str) -> str:
    """A member's key from their name (any case), their key id, or a unique prefix of it
    (at least ``KEY_MIN`` characters). ``members`` are mappings with ``key`` and ``name``."""
    members = list(members)
    by_name = [m["key"] for m in members if m["name"].casefold() == who.casefold()]
    if len(by_name) == 1:
        return str(by_name[0])
    names = {m["key"]: m["name"] for m in members}
    if by_name:
        return pick("member", who, by_name, names)
    exact = [m["key"] for m in members if m["key"] == who]
    if exact:
        return str(exact[0])
    if len(who) < KEY_MIN:
        raise NotFound(
            f"no member is named {who!r} (a key-id prefix needs at least {KEY_MIN} characters)"
        )
    found = [m["key"] for m in members if m["key"].startswith(who.lower())]
    if not found:
        raise NotFound(f"no member is named {who!r} or has a key starting with it")
    return pick("member", who, found, names)
