"""The shape every event kind shares: what a rule returns, which projection rows it
touches, and the checks most rules start with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commonweal.community.state import Member, State
from commonweal.errors import Forbidden, InvalidInput, UnknownMember
from commonweal.ledger.event import Leaf

__all__ = ["Changes", "Touched", "fields", "need_active", "need_hub"]

# What a rule returns: the State fields it changes, with their new values.
Changes = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Touched:
    """Which projection rows an event changes: the storage shell upserts exactly these."""

    members: tuple[str, ...] = ()
    invites: tuple[str, ...] = ()
    community: bool = False
    contributions: tuple[str, ...] = ()
    reviews: tuple[int, ...] = ()
    models: tuple[int, ...] = ()
    apikeys: tuple[str, ...] = ()
    treasury: bool = False
    valuations: tuple[int, ...] = ()
    epochs: tuple[int, ...] = ()
    holdings: tuple[str, ...] = ()
    payouts: tuple[int, ...] = ()
    proposals: tuple[int, ...] = ()
    nodes: tuple[str, ...] = ()


def fields(
    leaf: Leaf, required: dict[str, type], optional: dict[str, type] | None = None
) -> dict[str, Any]:
    body, kind = leaf.body, leaf.kind
    allowed = required | (optional or {})
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise InvalidInput(f"{kind}: unexpected body field(s) {extra}; allowed {sorted(allowed)}")
    for name, typ in allowed.items():
        if name not in body:
            if name in required:
                raise InvalidInput(f"{kind}: body field {name!r} is missing")
            continue
        if type(body[name]) is not typ:
            raise InvalidInput(
                f"{kind}: body field {name!r} must be a {typ.__name__}, "
                f"got {type(body[name]).__name__}"
            )
    return body


def need_active(state: State, actor: str, kind: str) -> Member:
    m = state.members.get(actor)
    if m is None:
        raise UnknownMember(
            f"{kind}: actor {actor[:16]}… is not a member of this community; join first"
        )
    if m.status != "active":
        raise Forbidden(f"{kind}: member {m.name!r} is {m.status}, not active")
    return m


def need_hub(state: State, leaf: Leaf) -> None:
    """Hub-attested kinds (screening results, review decisions) are signed by the hub."""
    if leaf.actor != state.hub_key:
        raise Forbidden(f"{leaf.kind}: only the hub ({state.hub_key[:16]}…) records this")
