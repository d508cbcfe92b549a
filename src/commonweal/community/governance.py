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

from commonweal.community.charter import ACTION_TYPES, Charter, validate_charter
from commonweal.community.kinds import Changes, Touched, fields, need_active
from commonweal.community.state import ApiKey, Holding, Proposal, State
from commonweal.community.tally import Tally, passes, tally, validate_choice, voting_power
from commonweal.errors import (
    CharterInvalid,
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
    "commitment",
    "current_tally",
    "phase",
    "proposal_tally",
    "removed_items",
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


# -- actions ---------------------------------------------------------------------------------


def _int(a: dict[str, Any], name: str, where: str, lo: int = 0, hi: int = 10**15) -> int:
    v = a.get(name)
    if type(v) is not int or not lo <= v <= hi:
        raise InvalidInput(f"{where}: {name} must be an integer from {lo} to {hi}")
    return v


def _str(a: dict[str, Any], name: str, where: str, n: int = 200) -> str:
    v = a.get(name)
    if not isinstance(v, str) or not 1 <= len(v) <= n:
        raise InvalidInput(f"{where}: {name} must be a string of 1-{n} characters")
    return v


def _member(state: State, a: dict[str, Any], name: str, where: str) -> str:
    key = _str(a, name, where, 64)
    if key not in state.members:
        raise InvalidInput(f"{where}: {key[:16]}… is not a member")
    return key


_FIELDS: dict[str, set[str]] = {
    "charter.amend": {"charter"},
    "member.admit": {"member"},
    "member.remove": {"member"},
    "model.release": {"version", "license", "weights"},
    "apikey.grant": {"key_hash", "consumer", "quota_per_day"},
    "apikey.revoke": {"key_hash"},
    "price.set": {"price_per_call"},
    "treasury.pay": {"to", "amount"},
    "contribution.remove": {"items", "reason"},
    "signal": {"text"},
}


def _amended(state: State, doc: Any, where: str) -> Charter:
    try:
        new = validate_charter(doc, where=f"{where}.charter")
    except CharterInvalid as exc:
        raise InvalidInput(exc.message) from None
    old = state.charter
    assert old is not None
    if new.task != old.task and state.contributions:
        raise InvalidInput(f"{where}: the task cannot change once data has been contributed for it")
    return new


def check_action(state: State, a: Any, n: int) -> str:
    """Raise unless ``a`` is a well-formed action that could apply to ``state``; return
    its type. Run when proposed and again (by ``execute_action``) when executed."""
    where = f"actions[{n}]"
    if not isinstance(a, dict) or not isinstance(a.get("type"), str):
        raise InvalidInput(f"{where} must be an object with a type")
    kind = a["type"]
    if kind not in ACTION_TYPES:
        raise InvalidInput(f"{where}: unknown action {kind!r}; known: {list(ACTION_TYPES)}")
    extra = sorted(set(a) - {"type"} - _FIELDS[kind])
    missing = sorted(_FIELDS[kind] - set(a))
    if extra or missing:
        raise InvalidInput(f"{where} ({kind}) takes exactly {sorted(_FIELDS[kind])}")
    where = f"{where} ({kind})"
    if kind == "charter.amend":
        _amended(state, a["charter"], where)
    elif kind == "member.admit":
        m = state.members[_member(state, a, "member", where)]
        if m.status != "pending":
            raise Conflict(f"{where}: {m.name!r} is {m.status}, not waiting to be admitted")
    elif kind == "member.remove":
        m = state.members[_member(state, a, "member", where)]
        if m.status == "removed":
            raise Conflict(f"{where}: {m.name!r} was already removed")
    elif kind == "model.release":
        v = _int(a, "version", where, 1)
        if v not in state.models:
            raise InvalidInput(f"{where}: there is no model version {v}")
        if not _SPDX.fullmatch(str(a["license"])):
            raise InvalidInput(f"{where}: license must be an SPDX identifier")
        if a["weights"] not in ("public", "private"):
            raise InvalidInput(f"{where}: weights is public or private")
    elif kind == "apikey.grant":
        if not _HEX64.fullmatch(str(a["key_hash"])):
            raise InvalidInput(f"{where}: key_hash must be the hex SHA-256 of the key's secret")
        if a["key_hash"] in state.apikeys:
            raise Conflict(f"{where}: that key is already registered")
        _str(a, "consumer", where, 100)
        assert state.charter is not None
        _int(a, "quota_per_day", where, 1, state.charter.serving.quota_per_key_per_day)
    elif kind == "apikey.revoke":
        key = state.apikeys.get(str(a["key_hash"]))
        if key is None:
            raise InvalidInput(f"{where}: no API key has that hash")
        if key.status == "revoked":
            raise Conflict(f"{where}: the key is already revoked")
    elif kind == "price.set":
        _int(a, "price_per_call", where, 0, 10**12)
    elif kind == "treasury.pay":
        amount = _int(a, "amount", where, 1)
        if a["to"] != "shareholders":
            _member(state, a, "to", where)
        if amount > state.treasury.balance:
            raise Conflict(
                f"{where}: the treasury holds {state.treasury.balance} credits, not {amount}"
            )
    elif kind == "contribution.remove":
        items = a["items"]
        if not isinstance(items, list) or not 1 <= len(items) <= 10_000:
            raise InvalidInput(f"{where}: items is a list of 1-10000 item ids")
        for iid in items:
            c = state.contributions.get(iid) if isinstance(iid, str) else None
            if c is None:
                raise InvalidInput(f"{where}: there is no item {iid!r}")
            if c.status in ("withdrawn", "removed"):
                raise Conflict(f"{where}: item {iid} is already {c.status}")
        _str(a, "reason", where, 500)
    else:  # signal
        _str(a, "text", where, 2000)
    return str(kind)


def charter_hash(charter: Charter) -> str:
    return hashlib.sha256(canonical_str(charter.to_json()).encode()).hexdigest()


def _execute_action(
    state: State, a: dict[str, Any], n: int, leaf: Leaf, p: Proposal, base: str
) -> State:
    """``state`` after action ``a`` of proposal ``p``; raises if it no longer applies.
    ``base`` is the hash of the charter before the proposal's first action ran."""
    from commonweal.community.ownership import payout_changes

    check_action(state, a, n)
    kind, idx, number = a["type"], leaf.index, p.proposal
    changes: Changes = {}
    if kind == "charter.amend":
        # The amendment is a whole charter written against the one of its day: if another
        # decision changed the charter since, executing it would silently undo that one.
        if base != p.charter_base:
            raise Conflict(
                f"actions[{n}]: the charter changed after this proposal was made; propose "
                "the amendment again on the current charter"
            )
        changes["charter"] = _amended(state, a["charter"], f"actions[{n}]")
    elif kind in ("member.admit", "member.remove"):
        m = state.members[a["member"]]
        status: Any = "active" if kind == "member.admit" else "removed"
        changes["members"] = state.members.set(m.key, m._replace(status=status, updated_index=idx))
    elif kind == "model.release":
        mv = state.models[a["version"]]
        changes["models"] = state.models.set(
            mv.version, mv._replace(license=a["license"], weights=a["weights"])
        )
    elif kind == "apikey.grant":
        key = ApiKey(
            a["key_hash"],
            a["consumer"],
            f"proposal:{number}",
            a["quota_per_day"],
            "active",
            idx,
            idx,
        )
        changes["apikeys"] = state.apikeys.set(key.key_hash, key)
    elif kind == "apikey.revoke":
        key = state.apikeys[a["key_hash"]]
        changes["apikeys"] = state.apikeys.set(
            key.key_hash, key._replace(status="revoked", updated_index=idx)
        )
    elif kind == "price.set":
        assert state.charter is not None
        doc = state.charter.to_json()
        doc["serving"]["price_per_call"] = a["price_per_call"]
        changes["charter"] = validate_charter(doc)
    elif kind == "treasury.pay":
        if a["to"] == "shareholders":
            changes.update(payout_changes(state, a["amount"], idx))
        else:
            h = state.holdings.get(a["to"]) or Holding(a["to"])
            t = state.treasury
            changes["holdings"] = state.holdings.set(
                h.member, h._replace(credits=h.credits + a["amount"], updated_index=idx)
            )
            changes["treasury"] = t._replace(
                balance=t.balance - a["amount"], paid=t.paid + a["amount"], updated_index=idx
            )
    elif kind == "contribution.remove":
        contributions = state.contributions.mutate()
        verdicts = state.verdicts
        for iid in a["items"]:
            contributions[iid] = contributions[iid]._replace(status="removed", updated_index=idx)
            if iid in verdicts:
                verdicts = verdicts.delete(iid)
        changes["contributions"] = contributions.finish()
        changes["verdicts"] = verdicts
    return state.evolve(changes) if changes else state


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


def _create(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(
        leaf,
        {"title": str, "actions": list},
        {"description": str, "choice": str, "options": list},
    )
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
    title = body["title"]
    if not 1 <= len(title) <= 200 or not title.isprintable():
        raise InvalidInput(f"{kind}: title must be 1-200 printable characters")
    if len(body.get("description", "")) > 10_000:
        raise InvalidInput(f"{kind}: description is at most 10000 characters")
    actions = body["actions"]
    if not 1 <= len(actions) <= MAX_ACTIONS:
        raise InvalidInput(f"{kind}: a proposal carries 1-{MAX_ACTIONS} actions")
    try:
        kinds = [check_action(state, a, n) for n, a in enumerate(actions)]
    except CommonwealError as exc:
        raise type(exc)(f"{kind}: {exc.message}") from None
    choice = body.get("choice", "basic")
    options = body.get("options", [])
    if choice not in ("basic", "approval", "ranked-choice"):
        raise InvalidInput(f"{kind}: choice is basic, approval or ranked-choice")
    if choice == "basic":
        if options:
            raise InvalidInput(f"{kind}: a basic (For/Against/Abstain) vote has no options")
    else:
        if set(kinds) != {"signal"}:
            raise InvalidInput(
                f"{kind}: a vote between options decides no action; only signal proposals "
                "take approval or ranked-choice"
            )
        if not 2 <= len(options) <= MAX_OPTIONS or len(set(options)) != len(options):
            raise InvalidInput(f"{kind}: options are 2-{MAX_OPTIONS} distinct strings")
        if not all(isinstance(o, str) and 1 <= len(o) <= 200 for o in options):
            raise InvalidInput(f"{kind}: each option is a string of 1-200 characters")
    weighting, approval = _rule_of(charter, kinds)
    eligible = [k for k, m in state.members.items() if m.status == "active"]
    power = voting_power(weighting, eligible, {k: h.shares for k, h in state.holdings.items()})  # type: ignore[arg-type]
    starts = at(leaf.log_time, gov.voting_delay_seconds)
    ends = at(starts, gov.voting_period_seconds)
    reveal_ends = at(ends, gov.reveal_period_seconds) if gov.secret_ballot else ends
    executable = at(reveal_ends, gov.timelock_seconds)
    number = leaf.index  # a proposal is known by its entry in the log
    p = Proposal(
        number,
        leaf.index,
        leaf.actor,
        title,
        body.get("description", ""),
        canonical_str(actions),
        choice,
        canonical_str(options),
        weighting,
        approval,
        gov.quorum_pct,
        canonical_str(gov.quorum_counts),
        gov.secret_ballot,
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
            new = _execute_action(new, a, n, leaf, p, base)
    except CommonwealError as exc:
        raise type(exc)(f"{kind}: proposal {p.proposal}: {exc.message}") from None
    done = p._replace(status="executed", closed_index=leaf.index, tally=canonical_str(counted))
    changes = {
        name: getattr(new, name)
        for name in _MUTABLE
        if getattr(new, name) is not getattr(state, name)
    }
    changes["proposals"] = new.proposals.set(p.proposal, done)
    return changes


# The State fields an executed action may change.
_MUTABLE = (
    "charter",
    "members",
    "models",
    "apikeys",
    "holdings",
    "treasury",
    "payouts",
    "contributions",
    "verdicts",
)


def executed_touches(leaf: Leaf, state: State) -> Touched:
    """The projection rows an executed proposal changed, from the state after it (the leaf
    names only the proposal; its actions are in the state)."""
    number = leaf.body["proposal"]
    p = state.proposals[number]
    members: list[str] = []
    models: list[int] = []
    apikeys: list[str] = []
    holdings: list[str] = []
    items: list[str] = []
    payouts: list[int] = []
    for a in json.loads(p.actions):
        kind = a["type"]
        if kind in ("member.admit", "member.remove"):
            members.append(a["member"])
        elif kind == "model.release":
            models.append(a["version"])
        elif kind in ("apikey.grant", "apikey.revoke"):
            apikeys.append(a["key_hash"])
        elif kind == "contribution.remove":
            items.extend(a["items"])
        elif kind == "treasury.pay":
            if a["to"] == "shareholders":
                paid = [x for x in state.payouts.values() if x.entry == leaf.index]
                payouts.extend(x.payout for x in paid)
                holdings.extend(m for x in paid for m, _, _ in json.loads(x.parts))
            else:
                holdings.append(a["to"])
    return Touched(
        proposals=(number,),
        community=True,
        treasury=True,
        members=tuple(members),
        models=tuple(models),
        apikeys=tuple(apikeys),
        holdings=tuple(holdings),
        contributions=tuple(items),
        payouts=tuple(payouts),
    )


def removed_items(leaf: Leaf, state: State) -> list[str]:
    """Items an executed proposal took down: the hub shreds their content with it."""
    if leaf.kind != "proposal.execute":
        return []
    p = state.proposals[leaf.body["proposal"]]
    return [
        i for a in json.loads(p.actions) if a["type"] == "contribution.remove" for i in a["items"]
    ]


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
