"""Lookalike member names: the hub refuses a name that renders like one already taken.

Two names are confusable when their Unicode TR39 skeletons match (ICU's SpoofChecker,
through PyICU): Cyrillic ``а`` for Latin ``a``, ``rn`` for ``m``. Before the skeleton the
name is NFKC-normalised and casefolded — TR39's skeleton works on NFD and folds neither
fullwidth forms nor case — and combining marks are dropped, so ``Ada`` with a combining
accent collides with ``Ada`` (the price: ``Renée`` and ``Renee`` cannot both join one
community). A name must also pass ICU's moderately restrictive script check: no Latin
mixed with Cyrillic or Greek, no invisible characters, no mixed digit systems.

This is an admission check, not a rule of the log: ICU's confusables data changes between
releases, so a replay on a machine with another ICU could disagree with the hub that
admitted a name, and a verified log would then fail to verify. The log's own rule
(``community.rules``) stays the exact, version-independent one: names are unique after
casefolding, printable and in NFC.
"""

from __future__ import annotations

import unicodedata

import icu

from commonweal.community.state import State
from commonweal.errors import Conflict, InvalidInput

__all__ = ["check_new_name", "skeleton"]

_SPOOF = icu.SpoofChecker()
_SCRIPTS = icu.SpoofChecker()
_SCRIPTS.setChecks(
    icu.USpoofChecks.RESTRICTION_LEVEL | icu.USpoofChecks.INVISIBLE | icu.USpoofChecks.MIXED_NUMBERS
)
_SCRIPTS.setRestrictionLevel(icu.URestrictionLevel.MODERATELY_RESTRICTIVE)


def skeleton(name: str) -> str:
    """What ``name`` looks like: equal skeletons render alike."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    bare = "".join(
        c for c in unicodedata.normalize("NFD", folded) if unicodedata.category(c) != "Mn"
    )
    return str(_SPOOF.getSkeleton(0, bare))


def check_new_name(state: State, name: str, *, kind: str = "member.join") -> None:
    """Raise unless ``name`` may join: not confusable with any member's name (current,
    pending, removed or left: a name once used stays theirs) — said first, naming the
    member — and in one script family."""
    wanted = skeleton(name)
    for member in state.members.values():
        if skeleton(member.name) == wanted:
            raise Conflict(
                f"{kind}: the name {name!r} looks like {member.name!r}, a member's name "
                "already; choose a name that reads differently"
            )
    if _SCRIPTS.check(name) != 0:
        raise InvalidInput(
            f"{kind}: name {name!r} mixes scripts (say Latin with Cyrillic or Greek), digit "
            "systems or invisible characters; write it in one script"
        )
