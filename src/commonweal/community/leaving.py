"""A member leaves: ``member.leave``, signed by the member themself.

Leaving withdraws everything they contributed (the hub shreds the content in the same
commit, as for a withdrawal, and the next version unlearns it), ends their delegation and
every delegation to them (those members vote for themselves again), and — as the
charter's ``membership.leaving_shares`` says — keeps their shares (they stay an owner and
are still paid out) or gives them up (burned: the others' part grows). The member is
shown as ``left``; they can no longer act, and a later ``member.join`` with the same key
is refused (a new key joins as a new member).
"""

from __future__ import annotations

from typing import Any

from commonweal.community.kinds import Changes, Touched, fields, need_active
from commonweal.community.state import State
from commonweal.errors import Conflict
from commonweal.ledger.event import Leaf

__all__ = ["KINDS", "TOUCHED_AFTER", "erased_on_leaving", "left_items"]

_GONE = ("withdrawn", "removed", "refused")


def left_items(state: State, member: str) -> list[str]:
    """The items a leaving member still has (their content is to be erased)."""
    return sorted(
        c.id for c in state.contributions.values() if c.member == member and c.status not in _GONE
    )


def _leave(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    fields(leaf, {}, {"note": str})
    me = need_active(state, leaf.actor, kind)
    if me.role == "founder" and sum(m.status == "active" for m in state.members.values()) > 1:
        raise Conflict(f"{kind}: the founder cannot leave while other members remain")
    assert state.charter is not None
    contributions = state.contributions.mutate()
    for iid in left_items(state, leaf.actor):
        contributions[iid] = contributions[iid]._replace(
            status="withdrawn", updated_index=leaf.index
        )
    members = state.members.mutate()
    members[leaf.actor] = me._replace(status="left", delegate="", updated_index=leaf.index)
    delegates = state.delegates.mutate()
    delegates.pop(leaf.actor, None)
    for who, to in list(state.delegates.items()):
        if to == leaf.actor:
            del delegates[who]
            members[who] = members[who]._replace(delegate="", updated_index=leaf.index)
    changes: dict[str, Any] = {
        "contributions": contributions.finish(),
        "members": members.finish(),
        "delegates": delegates.finish(),
    }
    held = state.holdings.get(leaf.actor)
    if held is not None and state.charter.membership.leaving_shares == "give-up":
        changes["holdings"] = state.holdings.set(
            leaf.actor, held._replace(shares=0, updated_index=leaf.index)
        )
    return changes


def erased_on_leaving(leaf: Leaf, after: State) -> list[str]:
    """The items a ``member.leave`` withdrew (the hub shreds their content with it)."""
    if leaf.kind != "member.leave":
        return []
    return sorted(
        c.id
        for c in after.contributions.values()
        if c.member == leaf.actor and c.updated_index == leaf.index and c.status == "withdrawn"
    )


def _touched_after(leaf: Leaf, after: State) -> Touched:
    me = leaf.actor
    gone = tuple(
        c.id
        for c in after.contributions.values()
        if c.member == me and c.updated_index == leaf.index
    )
    freed = tuple(k for k, m in after.members.items() if m.updated_index == leaf.index)
    return Touched(
        members=freed, contributions=gone, holdings=(me,) if me in after.holdings else ()
    )


TOUCHED_AFTER = {"member.leave": _touched_after}

KINDS: dict[str, tuple[Any, Any]] = {
    "member.leave": (_leave, lambda lf: Touched(members=(lf.actor,))),
}
