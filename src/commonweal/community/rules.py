"""The rules: what each event kind means and when it is allowed.

``apply(state, leaf)`` raises if the event may not be appended next, and otherwise returns
the new state. It is pure: no I/O, no clock, no randomness — the only time it sees is the
leaf's, which the log fixed. The hub calls it before appending; ``ledger verify`` calls it
again on every entry, so a hub that appended something the rules forbid is caught by
anyone who replays its log.

Event kinds (part 1):

- ``community.found`` — entry 0 only, by the founder: the charter, the hub's key and origin.
- ``member.join`` — by the newcomer's own key: their name, and an invite token if the
  charter's join policy is ``invite``. Under ``approval``, or when the charter asks for
  ``membership.approvals_required`` approvals, the member waits as ``pending``.
- ``member.approve`` — an active member approves a pending one; the newcomer becomes
  active once enough distinct members have (one under ``approval`` at least).
- ``invite.create`` — an active member registers the SHA-256 of a secret invite token, at
  most ``membership.invites_per_member`` in any ``invite_period_seconds``.

Every entry's times are checked here too (part 9): the event's ``time`` and the leaf's
``log_time`` must be real instants, and — from charter version 3 — no further apart than
``events.max_clock_skew_seconds``. Both are in the entry, so replay checks them as well.

What is *not* here: the lookalike-name check. It compares Unicode confusable skeletons,
whose data changes with each ICU release, so a replay on another machine could disagree
with the hub that admitted a name; it is a hub admission check (``hub.names``) instead,
and the log's rule stays the exact casefolded-name one below.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from commonweal.community import (
    contributions,
    federated,
    governance,
    leaving,
    models,
    ownership,
    serving,
    valuations,
)
from commonweal.community.charter import validate_charter
from commonweal.community.kinds import Changes, Touched, fields, need_active
from commonweal.community.state import Invite, Member, State
from commonweal.errors import Conflict, Forbidden, InvalidInput, Replay
from commonweal.ledger.event import Leaf, instant
from commonweal.ledger.keys import is_key_id

__all__ = ["KINDS", "Touched", "apply", "approvals_needed", "erased_items", "replay", "touched"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ORIGIN = re.compile(r"^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$")
MAX_NAME = 64


def _check_name(kind: str, name: str) -> str:
    if not 1 <= len(name) <= MAX_NAME or name != name.strip():
        raise InvalidInput(
            f"{kind}: name {name!r} must be 1-{MAX_NAME} characters, without leading or "
            "trailing spaces"
        )
    # isprintable() refuses control, format and separator characters other than the
    # ASCII space: names are shown to people and must not hide or reorder text.
    if not name.isprintable():
        raise InvalidInput(f"{kind}: name {name!r} holds control or invisible characters")
    if not name.isascii() and not unicodedata.is_normalized("NFC", name):
        raise InvalidInput(f"{kind}: name {name!r} is not in Unicode NFC form")
    return name.casefold()


# -- community.found ---------------------------------------------------------------------


def _found(state: State, leaf: Leaf) -> Changes:
    body = fields(leaf, {"charter": dict, "hub_key": str, "origin": str, "founder_name": str})
    if state.size != 0:
        raise Conflict("community.found: the community already exists; it is entry 0 only")
    charter = validate_charter(body["charter"], where="community.found.charter")
    if not is_key_id(body["hub_key"]):
        raise InvalidInput("community.found: hub_key must be 64 lowercase hex digits")
    if not _ORIGIN.match(body["origin"]) or len(body["origin"]) > 200:
        raise InvalidInput(f"community.found: origin {body['origin']!r} is not a log origin")
    folded = _check_name(leaf.kind, body["founder_name"])
    founder = Member(leaf.actor, body["founder_name"], "active", "founder", leaf.index, leaf.index)
    return {
        "joined_at": state.joined_at.set(leaf.actor, leaf.log_time),
        "charter": charter,
        "origin": body["origin"],
        "hub_key": body["hub_key"],
        "founder": leaf.actor,
        "members": state.members.set(leaf.actor, founder),
        "names": state.names.set(folded, leaf.actor),
    }


# -- members -----------------------------------------------------------------------------


def _join(state: State, leaf: Leaf) -> Changes:
    body = leaf.body
    if len(body) != 1 or type(body.get("name")) is not str:  # else the general check says why
        body = fields(leaf, {"name": str}, {"invite": str})
    actor = leaf.actor
    existing = state.members.get(actor)
    if existing is not None:
        raise Conflict(f"member.join: this key already joined as {existing.name!r}")
    folded = _check_name(leaf.kind, body["name"])
    if folded in state.names:
        holder = state.members[state.names[folded]].name
        raise Conflict(
            f"member.join: the name {body['name']!r} is taken (by {holder!r}); choose another"
        )
    assert state.charter is not None
    policy = state.charter.join_policy
    invites = state.invites
    status: Any = "active"
    if policy == "invite":
        token = body.get("invite")
        if token is None:
            raise Forbidden("member.join: this community joins by invitation; pass --invite TOKEN")
        th = hashlib.sha256(token.encode()).hexdigest()
        inv = invites.get(th)
        if inv is None:
            raise Forbidden("member.join: the invite token is not one this community issued")
        if inv.used_by is not None:
            raise Conflict("member.join: the invite token was already used")
        invites = invites.set(th, inv._replace(used_by=actor, used_index=leaf.index))
    elif "invite" in body:
        raise InvalidInput(f"member.join: the join policy is {policy!r}; drop the invite token")
    if approvals_needed(state) > 0:
        status = "pending"
    member = Member(actor, body["name"], status, "member", leaf.index, leaf.index)
    return {
        "members": state.members.set(actor, member),
        "joined_at": state.joined_at.set(actor, leaf.log_time),
        "names": state.names.set(folded, actor),
        "invites": invites,
    }


def _approve(state: State, leaf: Leaf) -> Changes:
    body = fields(leaf, {"member": str})
    need_active(state, leaf.actor, leaf.kind)
    target = state.members.get(body["member"])
    if target is None:
        raise InvalidInput(f"member.approve: {body['member'][:16]}… has not asked to join")
    if target.status != "pending":
        raise Conflict(f"member.approve: {target.name!r} is already {target.status}")
    given = state.approvals.get(target.key, frozenset())
    if leaf.actor in given:
        raise Conflict(f"member.approve: you already approved {target.name!r}")
    given = given | {leaf.actor}
    if len(given) < approvals_needed(state):
        return {"approvals": state.approvals.set(target.key, given)}
    updated = target._replace(status="active", updated_index=leaf.index)
    return {
        "members": state.members.set(target.key, updated),
        "approvals": state.approvals.delete(target.key)
        if target.key in state.approvals
        else state.approvals,
    }


def approvals_needed(state: State) -> int:
    """How many distinct active members must approve a newcomer: the charter's
    ``membership.approvals_required`` (at least one under the ``approval`` policy), but
    never more than there are active members — a founder alone admits the first ones."""
    assert state.charter is not None
    needed = state.charter.membership.approvals_required
    if state.charter.join_policy == "approval":
        needed = max(needed, 1)
    if needed <= 1:
        return needed
    return min(needed, sum(1 for m in state.members.values() if m.status == "active"))


def _recent_invites(state: State, member: str, log_time: str) -> tuple[str, ...]:
    """``member``'s invites logged within the invite period before ``log_time``."""
    assert state.charter is not None
    period = state.charter.membership.invite_period_seconds
    now = instant(log_time)
    assert now is not None  # apply checked it
    return tuple(
        t
        for t in state.invite_times.get(member, ())
        if (now - instant(t)).total_seconds() < period  # type: ignore[operator]
    )


def _invite(state: State, leaf: Leaf) -> Changes:
    body = fields(leaf, {"token_hash": str})
    need_active(state, leaf.actor, leaf.kind)
    th = body["token_hash"]
    if not _HEX64.match(th):
        raise InvalidInput("invite.create: token_hash must be the hex SHA-256 of the token")
    if th in state.invites:
        raise Conflict("invite.create: that invite token is already registered")
    assert state.charter is not None
    cfg = state.charter.membership
    recent = _recent_invites(state, leaf.actor, leaf.log_time)
    if cfg.invites_per_member and len(recent) >= cfg.invites_per_member:
        days = cfg.invite_period_seconds / 86400
        raise Forbidden(
            f"invite.create: you created {len(recent)} invites in the last {days:g} days; "
            f"this community allows {cfg.invites_per_member} per member "
            "(membership.invites_per_member); wait, or ask another member"
        )
    inv = Invite(th, leaf.actor, leaf.index)
    return {
        "invites": state.invites.set(th, inv),
        "invite_times": state.invite_times.set(leaf.actor, (*recent, leaf.log_time)),
    }


# -- dispatch ----------------------------------------------------------------------------

_Rule = Callable[[State, Leaf], Changes]


@dataclass(frozen=True)
class _Kind:
    rule: _Rule
    touched: Callable[[Leaf], Touched] = field(default=lambda leaf: Touched())


def _invite_hash(leaf: Leaf) -> tuple[str, ...]:
    tok = leaf.body.get("invite")
    return (hashlib.sha256(tok.encode()).hexdigest(),) if isinstance(tok, str) else ()


KINDS: dict[str, _Kind] = {
    "community.found": _Kind(_found, lambda lf: Touched(members=(lf.actor,), community=True)),
    "member.join": _Kind(_join, lambda lf: Touched(members=(lf.actor,), invites=_invite_hash(lf))),
    "member.approve": _Kind(_approve, lambda lf: Touched(members=(lf.body["member"],))),
    "invite.create": _Kind(_invite, lambda lf: Touched(invites=(lf.body["token_hash"],))),
    **{
        name: _Kind(rule, touch)
        for module in (
            contributions,
            models,
            serving,
            valuations,
            ownership,
            governance,
            leaving,
            federated,
        )
        for name, (rule, touch) in module.KINDS.items()
    },
}


def apply(state: State, leaf: Leaf) -> State:
    """Check ``leaf`` against ``state`` and return the state after it. Raises if refused."""
    if leaf.index != state.size:
        raise Conflict(f"entry {leaf.index} cannot follow a log of size {state.size}")
    event = leaf.event
    kind = KINDS.get(event["kind"])
    if kind is None:
        raise InvalidInput(f"unknown event kind {event['kind']!r}; known kinds: {sorted(KINDS)}")
    if state.size == 0 and event["kind"] != "community.found":
        raise Conflict("the first entry of a log must be community.found")
    _check_hub(state, leaf)
    nonce_key = f"{event['actor']}:{event['nonce']}"
    seen = state.nonces.get(nonce_key)
    if seen is not None:
        raise Replay(
            f"{leaf.kind}: nonce {leaf.event['nonce']!r} was already used by this actor "
            f"(entry {seen}); sign the event again with a fresh nonce"
        )
    changes = kind.rule(state, leaf)
    _check_times(state, leaf)
    changes["size"] = state.size + 1
    changes["nonces"] = state.nonces.set(nonce_key, leaf.index)
    return state.evolve(changes)


def _check_hub(state: State, leaf: Leaf) -> None:
    """A version 2 event names the log it was signed for: anything else is an event lifted
    from another community's (public) log. Version 1 events name none and stay valid in
    the logs that hold them; the hub refuses new ones at admission (``Hub.append``)."""
    hub = leaf.event.get("hub")
    if hub is None:
        return
    # Entry 0 declares the origin it is signed for, so it must agree with itself.
    origin = state.origin if state.size else leaf.body.get("origin")
    if hub != origin:
        raise Forbidden(
            f"{leaf.kind}: this event was signed for another hub: {hub!r}, not this "
            f"log's {origin!r}; sign it again for this hub"
        )


_last_log_time: tuple[str, Any] = ("", None)


def _log_instant(t: str) -> Any:
    """``instant(t)``, remembering the last answer: a batch's entries share one log time,
    and replay reads them in order (a pure cache: same input, same output)."""
    global _last_log_time
    last = _last_log_time  # one read: another thread may replace the pair meanwhile
    if last[0] != t:
        last = _last_log_time = (t, instant(t))
    return last[1]


def _check_times(state: State, leaf: Leaf) -> None:
    """Both times of an entry are real instants, and the event's is within the charter's
    skew of the log's. The log time is the hub's clock when it appended the entry, so the
    bound stops a member back- or forward-dating what they sign, and replay can check it."""
    event_time, log_time = instant(leaf.event["time"]), _log_instant(leaf.log_time)
    if event_time is None:
        raise InvalidInput(
            f"{leaf.kind}: time {leaf.event['time']!r} is not a real RFC 3339 UTC instant "
            "like 2026-01-31T12:00:00Z"
        )
    if log_time is None:
        raise InvalidInput(f"entry {leaf.index}: log_time {leaf.log_time!r} is not a real instant")
    if state.charter is None:  # community.found: the founder's own hub stamps both
        return
    skew = state.charter.events.max_clock_skew_seconds
    if skew and abs((event_time - log_time).total_seconds()) > skew:
        raise InvalidInput(
            f"{leaf.kind}: the event's time {leaf.event['time']} is more than {skew} s from "
            f"the hub's time {leaf.log_time} (events.max_clock_skew_seconds); set your "
            "computer's clock right and sign the event again"
        )


def touched(leaf: Leaf, after: State | None = None) -> Touched:
    """The projection rows ``leaf`` changed; some kinds need the state ``after`` it."""
    late = governance.TOUCHED_AFTER.get(leaf.kind) or leaving.TOUCHED_AFTER.get(leaf.kind)
    if late is not None and after is not None:
        return late(leaf, after)
    return KINDS[leaf.kind].touched(leaf)


def erased_items(leaf: Leaf, after: State) -> list[str]:
    """The items whose content ``leaf`` erases: a withdrawal's, a vote's removals, a
    leaving member's. The hub shreds them in the same commit as the event."""
    if leaf.kind == "contribution.withdraw":
        return list(leaf.body["items"])
    return governance.removed_items(leaf, after) + leaving.erased_on_leaving(leaf, after)


def replay(leaves: Any, state: State | None = None) -> State:
    """Apply every leaf in order, from ``state`` (default: the empty community).

    A caller replaying a long log should pause the garbage collector around this
    (``commonweal.store.projection.gc_paused``): it changes no result, only the time."""
    s = state if state is not None else State()
    for leaf in leaves:
        s = apply(s, leaf)
    return s
