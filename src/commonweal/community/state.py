"""The community's state: what replaying the log up to some size gives.

``State`` is immutable and built on persistent maps (HAMTs, from ``immutables``), so
``apply`` returns a new state that shares almost everything with the old one. That makes a
batch all-or-nothing for free — the hub keeps the old state until the batch commits — and
keeps replay of a long log fast.

The records are named tuples rather than dataclasses: replay makes one or more per log
entry, and a tuple is built and read several times faster, which `ledger verify` feels.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from immutables import Map

from commonweal.community.charter import Charter

__all__ = [
    "CONTRIBUTION_COLUMNS",
    "INVITE_COLUMNS",
    "MEMBER_COLUMNS",
    "REVIEW_COLUMNS",
    "Contribution",
    "Invite",
    "Member",
    "MemberStats",
    "MemberStatus",
    "Review",
    "State",
]

MemberStatus = Literal["active", "pending"]


class Member(NamedTuple):
    """A member, in the column order of the ``members`` projection."""

    key: str
    name: str
    status: MemberStatus
    role: Literal["founder", "member"]
    joined_index: int
    updated_index: int

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class Invite(NamedTuple):
    """An invitation, in the column order of the ``invites`` projection."""

    token_hash: str
    created_by: str
    created_index: int
    used_by: str | None = None
    used_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class Contribution(NamedTuple):
    """One contributed item: what the log knows of it (never its content)."""

    id: str
    member: str
    batch_index: int
    commitment: str
    label: str | None
    license: str
    consent: str  # comma-separated scopes, in charter order
    status: str  # screening | in_review | refused | accepted | rejected | withdrawn
    flags: str  # comma-separated quality flags
    reasons: str  # why it was refused, if it was
    reviews_needed: int
    reviews: int
    decided_label: str | None
    updated_index: int
    reviewers: frozenset[str] = frozenset()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)[:-1]  # reviewers live in the reviews table

    def to_json(self) -> dict[str, Any]:
        return dict(zip(CONTRIBUTION_COLUMNS, self.row(), strict=True))


class Review(NamedTuple):
    """One member's verdict on one item, logged at entry ``entry``."""

    entry: int  # the review's own log index
    item: str
    reviewer: str
    verdict: str  # accept | reject | relabel | flag
    label: str | None
    reason: str | None

    def row(self) -> tuple[Any, ...]:
        return tuple(self)

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


class MemberStats(NamedTuple):
    """Per-member counters the rules need: accepted items (the newcomer rule) and items
    submitted on the current UTC day (the rate limit)."""

    accepted: int = 0
    day: str = ""
    day_items: int = 0


MEMBER_COLUMNS = Member._fields
INVITE_COLUMNS = Invite._fields
CONTRIBUTION_COLUMNS = Contribution._fields[:-1]
REVIEW_COLUMNS = Review._fields
_EMPTY: Any = Map()  # immutable, so one instance serves every default


class State(NamedTuple):
    """Replay of the first ``size`` log entries."""

    size: int = 0
    charter: Charter | None = None
    origin: str = ""
    hub_key: str = ""
    founder: str = ""
    members: Map[str, Member] = _EMPTY
    names: Map[str, str] = _EMPTY  # casefolded name -> member key
    nonces: Map[str, int] = _EMPTY  # "actor:nonce" -> index
    invites: Map[str, Invite] = _EMPTY
    contributions: Map[str, Contribution] = _EMPTY
    reviews: Map[int, Review] = _EMPTY  # by log index
    batches: Map[int, tuple[str, ...]] = _EMPTY  # submit index -> item ids awaiting screening
    stats: Map[str, MemberStats] = _EMPTY  # per member

    def evolve(self, changes: dict[str, Any]) -> State:
        """A copy with ``changes`` applied (cheaper than ``_replace`` on the replay hot
        path). The maps are shared, not copied."""
        values = list(self)
        for name, value in changes.items():
            values[_INDEX[name]] = value
        return tuple.__new__(State, values)

    def is_active(self, key: str) -> bool:
        m = self.members.get(key)
        return m is not None and m.status == "active"


_INDEX = {name: i for i, name in enumerate(State._fields)}
