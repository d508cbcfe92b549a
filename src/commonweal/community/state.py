"""The community's state: what replaying the log up to some size gives.

``State`` is immutable and built on persistent maps (HAMTs, from ``immutables``), so
``apply`` returns a new state that shares almost everything with the old one. That makes a
batch all-or-nothing for free — the hub keeps the old state until the batch commits — and
keeps replay of a long log fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from immutables import Map

from commonweal.community.charter import Charter

__all__ = ["Invite", "Member", "MemberStatus", "State"]

MemberStatus = Literal["active", "pending"]


@dataclass(frozen=True, slots=True)
class Member:
    key: str
    name: str
    status: MemberStatus
    role: Literal["founder", "member"]
    joined_index: int
    updated_index: int

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "status": self.status,
            "role": self.role,
            "joined_index": self.joined_index,
            "updated_index": self.updated_index,
        }


@dataclass(frozen=True, slots=True)
class Invite:
    token_hash: str
    created_by: str
    created_index: int
    used_by: str | None = None
    used_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "token_hash": self.token_hash,
            "created_by": self.created_by,
            "created_index": self.created_index,
            "used_by": self.used_by,
            "used_index": self.used_index,
        }


@dataclass(frozen=True, slots=True)
class State:
    """Replay of the first ``size`` log entries."""

    size: int = 0
    charter: Charter | None = None
    origin: str = ""
    hub_key: str = ""
    founder: str = ""
    members: Map[str, Member] = field(default_factory=Map)
    names: Map[str, str] = field(default_factory=Map)  # casefolded name -> member key
    nonces: Map[str, int] = field(default_factory=Map)  # "actor:nonce" -> index
    invites: Map[str, Invite] = field(default_factory=Map)

    def evolve(self, changes: dict[str, Any]) -> State:
        """A copy with ``changes`` applied; several times cheaper than
        ``dataclasses.replace`` on the replay hot path. The maps are shared, not copied."""
        new = object.__new__(State)
        for name in _FIELDS:
            _set(new, name, changes.get(name, _get(self, name)))
        return new

    def is_active(self, key: str) -> bool:
        m = self.members.get(key)
        return m is not None and m.status == "active"

    def community_json(self) -> dict[str, Any]:
        return {
            "name": self.charter.name if self.charter else "",
            "origin": self.origin,
            "hub_key": self.hub_key,
            "founder": self.founder,
            "charter": self.charter.to_json() if self.charter else None,
        }


_FIELDS = tuple(f.name for f in fields(State))
_set = object.__setattr__
_get = object.__getattribute__
