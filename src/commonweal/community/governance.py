"""The rules for governance: proposals, votes, delegation and execution by the hub.

A member proposes typed actions; members vote; if the proposal passes, its actions are
carried out by a ``proposal.execute`` event once the timelock has run out — which anyone
may sign, and the hub signs on its own — never by someone with admin rights. Voting power
(members, their shares, their delegations) is fixed when the proposal is made; the tally
is recomputed by the rules when it executes, so ``ledger verify`` checks every executed
proposal passed and waited out its timelock.

Times are the log's: a vote counts if the hub logged it inside the voting window.

Event kinds:

- ``proposal.create`` — an active member (as the charter allows) proposes actions, or a
  question with options (approval or ranked-choice; it executes nothing).
- ``proposal.cancel`` — the proposer withdraws it before voting starts.
- ``vote.cast`` — a member's choice (replacing their earlier one if the charter allows).
- ``vote.commit`` / ``vote.reveal`` — a secret ballot: a hash of the choice during the
  voting period, the choice and salt after it; unrevealed commitments count as absent.
- ``delegate.set`` — a member delegates their vote to another (``to: null`` to stop);
  transitive, cycles refused; a delegator's own vote overrides their delegate's.
- ``proposal.execute`` — carries out a passed proposal's actions; logs the tally.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

from immutables import Map

from commonweal.community.actions import (
    MUTABLE,
    charter_hash,
    check_action,
    execute_action,
    executed_touches,
    removed_items,
)
from commonweal.community.charter import Charter
from commonweal.community.kinds import Changes, Touched, fields, need_active
from commonweal.community.state import Proposal, State
from commonweal.community.tally import Tally, passes, tally, validate_choice, voting_power
from commonweal.errors import (
    CommonwealError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)
from commonweal.ledger.canonical import canonical_str
from commonweal.ledger.event import Leaf

__all__ = [
    "KINDS",
    "TOUCHED_AFTER",
    "at",
    "check_actions",
    "commitment",
    "current_tally",
    "phase",
    "proposal_tally",
    "removed_items",
    "seconds_between",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_SPDX = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,63}")
_APPROVALS = ("majority", "two-thirds", "three-quarters", "unanimous")
MAX_ACTIONS = 20
MAX_OPTIONS = 50


# -- time ----------------------------------------------------------------------------------


def _parse(t: str) -> datetime:
    return datetime.fromisoformat(t.replace("Z", "+00:00"))


def at(t: str, seconds: int) -> str:
    """``t`` plus ``seconds``, in the log's time format (milliseconds, UTC)."""
    return (_parse(t) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def seconds_between(start: str, end: str) -> float:
    """Seconds from log time ``start`` to ``end`` (negative if ``end`` is earlier)."""
    return (_parse(end) - _parse(start)).total_seconds()


def _before(a: str, b: str) -> bool:
    return _parse(a) < _parse(b)


def phase(p: Proposal, now: str) -> str:
    """Where ``p`` is at time ``now``: cancelled, executed, pending (voting not yet open),
    active (voting), revealing (secret ballots after voting), counting (timelock running or
    executable: whether it passed is the tally's), expired."""
    if p.status != "open":
        return p.status
    if _before(now, p.starts):
        return "pending"
    if _before(now, p.ends):
        return "active"
    if _before(now, p.reveal_ends):
        return "revealing"
    if _before(now, p.expires):
        return "timelock" if _before(now, p.executable_after) else "executable"
    return "expired"


# -- proposals -----------------------------------------------------------------------------


def _rule_of(charter: Charter, kinds: list[str]) -> tuple[str, str]:
    """The weighting and approval for a proposal with these action types: one weighting
    (else the proposal must be split), the strictest approval."""
    gov = charter.governance
    rules = [gov.rule(k) for k in kinds]
    weightings = {r.weighting for r in rules}
    if len(weightings) > 1:
        raise InvalidInput(
            f"proposal.create: these actions are voted with different weightings "
            f"({sorted(weightings)}); propose them separately"
        )
    approval = max((r.approval for r in rules), key=_APPROVALS.index)
    return weightings.pop(), approval


def _proposer_charter(state: State, leaf: Leaf) -> Charter:
    """The charter, once it lets the leaf's actor propose: an active member, the founder if
    only the founder may, holding the threshold of shares."""
    kind = leaf.kind
    me = need_active(state, leaf.actor, kind)
    charter = state.charter
    assert charter is not None
    gov = charter.governance
    if gov.proposers == "founder" and leaf.actor != state.founder:
        raise Forbidden(f"{kind}: the charter lets only the founder propose")
    held = state.holdings.get(leaf.actor)
    if (held.shares if held else 0) < gov.proposal_threshold_shares:
        raise Forbidden(
            f"{kind}: proposing takes {gov.proposal_threshold_shares} shares; "
            f"{me.name!r} holds {held.shares if held else 0}"
        )
    return charter


def _check_wording(body: dict[str, Any], kind: str) -> None:
    title = body["title"]
    if not 1 <= len(title) <= 200 or not title.isprintable():
        raise InvalidInput(f"{kind}: title must be 1-200 printable characters")
    if len(body.get("description", "")) > 10_000:
        raise InvalidInput(f"{kind}: description is at most 10000 characters")


def _action_types(state: State, actions: list[Any], kind: str) -> list[str]:
    """The type of each action, once every one is checked (errors prefixed with ``kind``)."""
    if not 1 <= len(actions) <= MAX_ACTIONS:
        raise InvalidInput(f"{kind}: a proposal carries 1-{MAX_ACTIONS} actions")
    try:
        return [check_action(state, a, n) for n, a in enumerate(actions)]
    except CommonwealError as exc:
        raise type(exc)(f"{kind}: {exc.message}") from None


def check_actions(state: State, actions: Any) -> list[str]:
    """The type of each of a would-be proposal's actions, once each is checked against
    ``state`` as ``proposal.create`` checks them (raises with the rules' message)."""
    if not isinstance(actions, list):
        raise InvalidInput("proposal.create: actions is a list of actions")
    return _action_types(state, actions, "proposal.create")


def _check_choice(choice: Any, options: Any, kinds: list[str], kind: str) -> None:
    if choice not in ("basic", "approval", "ranked-choice"):
        raise InvalidInput(f"{kind}: choice is basic, approval or ranked-choice")
    if choice == "basic":
        if options:
            raise InvalidInput(f"{kind}: a basic (For/Against/Abstain) vote has no options")
        return
    if set(kinds) != {"signal"}:
        raise InvalidInput(
            f"{kind}: a vote between options decides no action; only signal proposals "
            "take approval or ranked-choice"
        )
    if not 2 <= len(options) <= MAX_OPTIONS or len(set(options)) != len(options):
        raise InvalidInput(f"{kind}: options are 2-{MAX_OPTIONS} distinct strings")
    if not all(isinstance(o, str) and 1 <= len(o) <= 200 for o in options):
        raise InvalidInput(f"{kind}: each option is a string of 1-200 characters")


def _new_proposal(
    state: State, leaf: Leaf, body: dict[str, Any], charter: Charter, kinds: list[str]
) -> tuple[Proposal, dict[str, int]]:
    """The open proposal a ``proposal.create`` makes, with its fixed voting power."""
    gov = charter.governance
    weighting, approval = _rule_of(charter, kinds)
    eligible = [k for k, m in state.members.items() if m.status == "active"]
    power = voting_power(weighting, eligible, {k: h.shares for k, h in state.holdings.items()})  # type: ignore[arg-type]
    starts = at(leaf.log_time, gov.voting_delay_seconds)
    for member in on_probation(state, charter, starts, eligible):
        power[member] = 0  # listed, so their vote is logged and shown, but it weighs 0
    ends = at(starts, gov.voting_period_seconds)
    secret = gov.secret_ballot or body.get("secret", False)
    reveal_ends = at(ends, gov.reveal_period_seconds) if secret else ends
    executable = at(reveal_ends, gov.timelock_seconds)
    number = leaf.index  # a proposal is known by its entry in the log
    p = Proposal(
        number,
        leaf.index,
        leaf.actor,
        body["title"],
        body.get("description", ""),
        canonical_str(body["actions"]),
        body.get("choice", "basic"),
        canonical_str(body.get("options", [])),
        weighting,
        approval,
        gov.quorum_pct,
        canonical_str(gov.quorum_counts),
        secret,
        leaf.log_time,
        starts,
        ends,
        reveal_ends,
        executable,
        at(executable, gov.expiry_seconds),
        sum(power.values()),
        len(power),
        "open",
        charter_base=charter_hash(charter),
    )
    return p, power


def on_probation(state: State, charter: Charter, starts: str, members: list[str]) -> list[str]:
    """The ``members`` who joined less than ``governance.probation_seconds`` before
    ``starts`` (a proposal's voting start): their votes on it weigh 0. Both times are log
    times, so anyone replaying the log draws the same line; a key minted an hour before a
    vote cannot swing it, whoever invited or approved it."""
    probation = charter.governance.probation_seconds
    if not probation:
        return []
    return [
        m
        for m in members
        if m in state.joined_at and seconds_between(state.joined_at[m], starts) < probation
    ]


def _check_secret(body: dict[str, Any], charter: Charter, kind: str) -> None:
    """A proposer may ask for a secret ballot where the charter allows it per proposal;
    where the charter makes every ballot secret, no proposal can be open."""
    if "secret" not in body:
        return
    gov = charter.governance
    if body["secret"] and not (gov.secret_ballot or gov.secret_per_proposal):
        raise Forbidden(
            f"{kind}: this charter does not allow secret ballots per proposal "
            "(governance.secret_per_proposal)"
        )
    if not body["secret"] and gov.secret_ballot:
        raise Forbidden(f"{kind}: every ballot is secret under this charter")


def _create(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(
        leaf,
        {"title": str, "actions": list},
        {"description": str, "choice": str, "options": list, "secret": bool},
    )
    charter = _proposer_charter(state, leaf)
    _check_secret(body, charter, kind)
    _check_wording(body, kind)
    kinds = _action_types(state, body["actions"], kind)
    _check_choice(body.get("choice", "basic"), body.get("options", []), kinds, kind)
    p, power = _new_proposal(state, leaf, body, charter, kinds)
    number = p.proposal
    return {
        "proposals": state.proposals.set(number, p),
        "powers": state.powers.set(number, Map(power)),
        "delegations": state.delegations.set(number, state.delegates),
        "ballots": state.ballots.set(number, Map()),
        "commits": state.commits.set(number, Map()),
    }


def _proposal(state: State, body: dict[str, Any], kind: str) -> Proposal:
    p = state.proposals.get(body["proposal"])
    if p is None:
        raise NotFound(f"{kind}: there is no proposal {body['proposal']}")
    return p


def _cancel(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"proposal": int})
    p = _proposal(state, body, kind)
    if leaf.actor != p.proposer:
        raise Forbidden(f"{kind}: only the proposer may cancel proposal {p.proposal}")
    if p.status != "open" or not _before(leaf.log_time, p.starts):
        raise Conflict(f"{kind}: proposal {p.proposal} can be cancelled only before voting starts")
    done = p._replace(status="cancelled", closed_index=leaf.index)
    return {"proposals": state.proposals.set(p.proposal, done)}


def _voter(state: State, p: Proposal, leaf: Leaf, kind: str) -> None:
    if leaf.actor not in state.powers[p.proposal]:
        member = state.members.get(leaf.actor)
        raise Forbidden(
            f"{kind}: only members active when proposal {p.proposal} was made may vote on it"
            + ("" if member else "; this key is not a member")
        )
    m = state.members[leaf.actor]
    if m.status != "active":
        raise Forbidden(f"{kind}: member {m.name!r} is {m.status}")


def _open(p: Proposal, t: str, kind: str) -> None:
    if p.status != "open":
        raise Conflict(f"{kind}: proposal {p.proposal} is {p.status}")
    if _before(t, p.starts):
        raise Conflict(f"{kind}: voting on proposal {p.proposal} opens at {p.starts}")
    if not _before(t, p.ends):
        raise Conflict(f"{kind}: voting on proposal {p.proposal} closed at {p.ends}")


def _with_choice(leaf: Leaf, names: set[str]) -> dict[str, Any]:
    body = leaf.body
    if set(body) != names:
        raise InvalidInput(f"{leaf.kind}: the body is exactly {sorted(names)}")
    if type(body["proposal"]) is not int:
        raise InvalidInput(f"{leaf.kind}: proposal is the proposal's number (its log entry)")
    return body


def _normal(choice: Any) -> Any:
    return tuple(choice) if isinstance(choice, list) else choice


def _cast(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = _with_choice(leaf, {"proposal", "choice"})
    p = _proposal(state, body, kind)
    _voter(state, p, leaf, kind)
    _open(p, leaf.log_time, kind)
    if p.secret:
        raise Conflict(f"{kind}: proposal {p.proposal} has a secret ballot; commit, then reveal")
    try:
        validate_choice(p.choice, body["choice"], json.loads(p.options))
    except ValueError as exc:
        raise InvalidInput(f"{kind}: {exc}") from None
    ballots = state.ballots[p.proposal]
    assert state.charter is not None
    if leaf.actor in ballots and not state.charter.governance.change_votes:
        raise Conflict(f"{kind}: you already voted on proposal {p.proposal}; votes are final")
    ballots = ballots.set(leaf.actor, _normal(body["choice"]))
    return {"ballots": state.ballots.set(p.proposal, ballots)}


def commitment(proposal: int, voter: str, choice: Any, salt: str) -> str:
    """The hash a secret vote commits to: SHA-256 of the canonical JSON of the proposal,
    the voter's key, the choice and a random salt."""
    doc = {"proposal": proposal, "voter": voter, "choice": choice, "salt": salt}
    return hashlib.sha256(canonical_str(doc).encode()).hexdigest()


def _commit(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"proposal": int, "commitment": str})
    p = _proposal(state, body, kind)
    _voter(state, p, leaf, kind)
    _open(p, leaf.log_time, kind)
    if not p.secret:
        raise Conflict(f"{kind}: proposal {p.proposal} has an open ballot; cast your vote")
    if not _HEX64.fullmatch(body["commitment"]):
        raise InvalidInput(f"{kind}: commitment is a hex SHA-256")
    commits = state.commits[p.proposal]
    assert state.charter is not None
    if leaf.actor in commits and not state.charter.governance.change_votes:
        raise Conflict(f"{kind}: you already voted on proposal {p.proposal}; votes are final")
    return {"commits": state.commits.set(p.proposal, commits.set(leaf.actor, body["commitment"]))}


def _reveal(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = _with_choice(leaf, {"proposal", "choice", "salt"})
    if not isinstance(body["salt"], str) or not 16 <= len(body["salt"]) <= 128:
        raise InvalidInput(f"{kind}: salt is a string of 16-128 characters")
    p = _proposal(state, body, kind)
    if not p.secret:
        raise Conflict(f"{kind}: proposal {p.proposal} has an open ballot; nothing to reveal")
    if p.status != "open" or _before(leaf.log_time, p.ends):
        raise Conflict(f"{kind}: reveal after voting ends ({p.ends})")
    if not _before(leaf.log_time, p.reveal_ends):
        raise Conflict(f"{kind}: the reveal period ended at {p.reveal_ends}")
    committed = state.commits[p.proposal].get(leaf.actor)
    if committed is None:
        raise Conflict(f"{kind}: you made no commitment on proposal {p.proposal}")
    if leaf.actor in state.ballots[p.proposal]:
        raise Conflict(f"{kind}: you already revealed your vote")
    if commitment(p.proposal, leaf.actor, body["choice"], body["salt"]) != committed:
        raise InvalidInput(f"{kind}: the choice and salt do not match your commitment")
    try:
        validate_choice(p.choice, body["choice"], json.loads(p.options))
    except ValueError as exc:
        raise InvalidInput(f"{kind}: {exc}") from None
    ballots = state.ballots[p.proposal].set(leaf.actor, _normal(body["choice"]))
    return {"ballots": state.ballots.set(p.proposal, ballots)}


def _delegate(state: State, leaf: Leaf) -> Changes:
    from commonweal.community.tally import would_cycle

    kind = leaf.kind
    body = leaf.body
    if set(body) != {"to"} or not (body["to"] is None or isinstance(body["to"], str)):
        raise InvalidInput(f"{kind}: the body is {{to: member key or null}}")
    me = need_active(state, leaf.actor, kind)
    to = body["to"]
    delegates = state.delegates
    if to is None:
        if leaf.actor not in delegates:
            raise Conflict(f"{kind}: you do not delegate your vote")
        delegates = delegates.delete(leaf.actor)
    else:
        target = state.members.get(to)
        if target is None or target.status != "active":
            raise InvalidInput(f"{kind}: you can delegate only to an active member")
        if to == leaf.actor:
            raise InvalidInput(f"{kind}: you cannot delegate to yourself")
        if would_cycle(delegates, leaf.actor, to):
            raise Conflict(
                f"{kind}: {target.name!r} delegates (directly or through others) to you; "
                "that would be a cycle"
            )
        delegates = delegates.set(leaf.actor, to)
    member = me._replace(delegate=to or "", updated_index=leaf.index)
    return {"delegates": delegates, "members": state.members.set(leaf.actor, member)}


def proposal_tally(state: State, number: int) -> Tally:
    """The tally of proposal ``number`` from the votes logged so far (for a secret ballot:
    the revealed ones)."""
    p = state.proposals[number]
    return tally(
        p.choice,  # type: ignore[arg-type]
        state.powers[number],
        state.ballots[number],
        state.delegations[number],
        json.loads(p.options) or None,
    )


def current_tally(state: State, number: int) -> dict[str, Any]:
    """The tally as the rules would count it, and whether it passes."""
    p = state.proposals[number]
    t = proposal_tally(state, number)
    out = t.to_json()
    if p.choice == "basic":
        ok, why = passes(
            t,
            quorum_pct=p.quorum_pct,
            quorum_counts=json.loads(p.quorum_counts),
            approval=p.approval,  # type: ignore[arg-type]
        )
        out["passed"], out["reason"] = ok, why
    else:
        out["passed"], out["reason"] = t.winner is not None, f"winner: {t.winner}"
    return out


def _execute(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"proposal": int, "tally": dict})
    if leaf.actor != state.hub_key:
        need_active(state, leaf.actor, kind)
    p = _proposal(state, body, kind)
    if p.status != "open":
        raise Conflict(f"{kind}: proposal {p.proposal} is {p.status}")
    t = leaf.log_time
    if _before(t, p.executable_after):
        raise Conflict(
            f"{kind}: proposal {p.proposal} can execute after its timelock, at {p.executable_after}"
        )
    if not _before(t, p.expires):
        raise Conflict(f"{kind}: proposal {p.proposal} lapsed at {p.expires}")
    counted = current_tally(state, p.proposal)
    if body["tally"] != counted:
        raise InvalidInput(f"{kind}: the tally differs from the rules' count: {counted}")
    if not counted["passed"]:
        raise Conflict(f"{kind}: proposal {p.proposal} did not pass ({counted['reason']})")
    new = state
    assert state.charter is not None
    base = charter_hash(state.charter)
    try:
        for n, a in enumerate(json.loads(p.actions)):
            new = execute_action(new, a, n, leaf, p, base)
    except CommonwealError as exc:
        raise type(exc)(f"{kind}: proposal {p.proposal}: {exc.message}") from None
    done = p._replace(status="executed", closed_index=leaf.index, tally=canonical_str(counted))
    changes = {
        name: getattr(new, name)
        for name in MUTABLE
        if getattr(new, name) is not getattr(state, name)
    }
    changes["proposals"] = new.proposals.set(p.proposal, done)
    return changes


# Kinds whose touched rows depend on the state after them.
TOUCHED_AFTER = {"proposal.execute": executed_touches}


KINDS: dict[str, tuple[Any, Any]] = {
    "proposal.create": (_create, lambda lf: Touched(proposals=(lf.index,))),
    "proposal.cancel": (_cancel, lambda lf: Touched(proposals=(lf.body["proposal"],))),
    "vote.cast": (_cast, lambda lf: Touched()),
    "vote.commit": (_commit, lambda lf: Touched()),
    "vote.reveal": (_reveal, lambda lf: Touched()),
    "delegate.set": (_delegate, lambda lf: Touched(members=(lf.actor,))),
    "proposal.execute": (_execute, lambda lf: Touched(proposals=(lf.body["proposal"],))),
}
