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

__all__ = ["NameIndex", "skeleton"]

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


class NameIndex:
    """The skeleton of every member's name, for one hub, so admitting a member costs one
    skeleton and one lookup rather than a skeleton per member (a bulk join of thousands
    would otherwise be quadratic).

    Members are never dropped from the state (a removed or departed member keeps their
    row), so the index is complete whenever it holds as many keys as the state has
    members; when another process appended joins, the next check scans for the new ones."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}  # member key -> skeleton of their name
        self._names: dict[str, str] = {}  # skeleton -> the first member name with it

    def _sync(self, state: State) -> None:
        if len(self._by_key) == len(state.members):
            return
        for key, member in state.members.items():
            if key not in self._by_key:
                self._add(key, member.name)

    def _add(self, key: str, name: str) -> None:
        sk = skeleton(name)
        self._by_key[key] = sk
        self._names.setdefault(sk, name)

    def check(self, state: State, key: str, name: str, *, kind: str = "member.join") -> None:
        """Raise unless ``name`` may join ``state``'s community as ``key``: not
        confusable with any member's name (current, pending, removed or left: a name once
        used stays theirs) — said first, naming the member — and in one script family.
        Once it passes, the index counts it (call it only just before the join applies)."""
        self._sync(state)
        taken = self._names.get(skeleton(name))
        if taken is not None:
            raise Conflict(
                f"{kind}: the name {name!r} looks like {taken!r}, a member's name "
                "already; choose a name that reads differently"
            )
        if _SCRIPTS.check(name) != 0:
            raise InvalidInput(
                f"{kind}: name {name!r} mixes scripts (say Latin with Cyrillic or Greek), "
                "digit systems or invisible characters; write it in one script"
            )

    def admitted(self, key: str, name: str) -> None:
        """Count a member the rules just admitted (before the batch commits: a batch that
        fails leaves an extra entry, which only makes the index refuse a name once more
        and is cleared by :meth:`reset`)."""
        self._add(key, name)

    def reset(self) -> None:
        self._by_key.clear()
        self._names.clear()
