"""What a passed proposal can make the hub do: the typed actions, checked when proposed and
again when executed, and what executing each one changes.

Actions: ``charter.amend`` (a whole new charter, validated as one; refused at execution if
the charter changed since it was proposed, so it cannot silently undo a newer decision),
``member.admit``, ``member.remove``, ``model.release`` (license, and whether the weights
are published), ``apikey.grant``, ``apikey.revoke``, ``price.set``, ``treasury.pay`` (to a
member, or to the shareholders pro rata), ``contribution.remove`` (the hub shreds the
content with it), ``hub.run`` (orders one of the hub's jobs — train, value, close-epoch,
payout, quality-scan — which its scheduler then runs) and ``signal`` (text only).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from commonweal.community.charter import ACTION_TYPES, Charter, validate_charter
from commonweal.community.kinds import Changes, Touched
from commonweal.community.schedule import JOBS
from commonweal.community.state import ApiKey, Holding, Proposal, State
from commonweal.errors import CharterInvalid, Conflict, InvalidInput
from commonweal.ledger.canonical import canonical_str
from commonweal.ledger.event import Leaf

__all__ = [
    "MUTABLE",
    "charter_hash",
    "check_action",
    "execute_action",
    "executed_touches",
    "removed_items",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_SPDX = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,63}")


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
    "hub.run": {"job"},
    "signal": {"text"},
}


def _amended(state: State, doc: Any, where: str) -> Charter:
    try:
        new = validate_charter(doc, where=f"{where}.charter")
    except CharterInvalid as exc:
        raise InvalidInput(exc.message) from None
    old = state.charter
    assert old is not None
    if old.v >= 3 and new.v < old.v:
        # Versions 1-2 mean no bound on event times, unlimited invites and epochs that may
        # pay value twice: an amendment cannot bring those back by lowering the version.
        raise InvalidInput(
            f"{where}: the charter is version {old.v}; an amendment cannot go back to "
            f"version {new.v}"
        )
    if new.task != old.task and state.contributions:
        raise InvalidInput(f"{where}: the task cannot change once data has been contributed for it")
    return new


def _check_charter_amend(state: State, a: dict[str, Any], where: str) -> None:
    _amended(state, a["charter"], where)


def _check_member_admit(state: State, a: dict[str, Any], where: str) -> None:
    m = state.members[_member(state, a, "member", where)]
    if m.status != "pending":
        raise Conflict(f"{where}: {m.name!r} is {m.status}, not waiting to be admitted")


def _check_member_remove(state: State, a: dict[str, Any], where: str) -> None:
    m = state.members[_member(state, a, "member", where)]
    if m.status == "removed":
        raise Conflict(f"{where}: {m.name!r} was already removed")


def _check_model_release(state: State, a: dict[str, Any], where: str) -> None:
    v = _int(a, "version", where, 1)
    if v not in state.models:
        raise InvalidInput(f"{where}: there is no model version {v}")
    if not _SPDX.fullmatch(str(a["license"])):
        raise InvalidInput(f"{where}: license must be an SPDX identifier")
    if a["weights"] not in ("public", "private"):
        raise InvalidInput(f"{where}: weights is public or private")


def _check_apikey_grant(state: State, a: dict[str, Any], where: str) -> None:
    if not _HEX64.fullmatch(str(a["key_hash"])):
        raise InvalidInput(f"{where}: key_hash must be the hex SHA-256 of the key's secret")
    if a["key_hash"] in state.apikeys:
        raise Conflict(f"{where}: that key is already registered")
    _str(a, "consumer", where, 100)
    assert state.charter is not None
    _int(a, "quota_per_day", where, 1, state.charter.serving.quota_per_key_per_day)


def _check_apikey_revoke(state: State, a: dict[str, Any], where: str) -> None:
    key = state.apikeys.get(str(a["key_hash"]))
    if key is None:
        raise InvalidInput(f"{where}: no API key has that hash")
    if key.status == "revoked":
        raise Conflict(f"{where}: the key is already revoked")


def _check_price_set(state: State, a: dict[str, Any], where: str) -> None:
    _int(a, "price_per_call", where, 0, 10**12)


def _check_treasury_pay(state: State, a: dict[str, Any], where: str) -> None:
    amount = _int(a, "amount", where, 1)
    if a["to"] != "shareholders":
        _member(state, a, "to", where)
    if amount > state.treasury.balance:
        raise Conflict(
            f"{where}: the treasury holds {state.treasury.balance} credits, not {amount}"
        )


def _check_contribution_remove(state: State, a: dict[str, Any], where: str) -> None:
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


def _check_signal(state: State, a: dict[str, Any], where: str) -> None:
    _str(a, "text", where, 2000)


def _check_hub_run(state: State, a: dict[str, Any], where: str) -> None:
    if a.get("job") not in JOBS:
        raise InvalidInput(f"{where}: job must be one of {list(JOBS)}")


_CHECKERS: dict[str, Callable[[State, dict[str, Any], str], None]] = {
    "charter.amend": _check_charter_amend,
    "member.admit": _check_member_admit,
    "member.remove": _check_member_remove,
    "model.release": _check_model_release,
    "apikey.grant": _check_apikey_grant,
    "apikey.revoke": _check_apikey_revoke,
    "price.set": _check_price_set,
    "treasury.pay": _check_treasury_pay,
    "contribution.remove": _check_contribution_remove,
    "hub.run": _check_hub_run,
    "signal": _check_signal,
}


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
    _CHECKERS[kind](state, a, f"{where} ({kind})")
    return str(kind)


def charter_hash(charter: Charter) -> str:
    return hashlib.sha256(canonical_str(charter.to_json()).encode()).hexdigest()


class _Run(NamedTuple):
    """Where an action runs: its position ``n`` in the proposal, the executing leaf's
    index, the proposal, and the hash of the charter before the proposal's first action."""

    n: int
    idx: int
    p: Proposal
    base: str


def _execute_charter_amend(state: State, a: dict[str, Any], run: _Run) -> Changes:
    # The amendment is a whole charter written against the one of its day: if another
    # decision changed the charter since, executing it would silently undo that one.
    if run.base != run.p.charter_base:
        raise Conflict(
            f"actions[{run.n}]: the charter changed after this proposal was made; propose "
            "the amendment again on the current charter"
        )
    return {"charter": _amended(state, a["charter"], f"actions[{run.n}]")}


def _execute_member_status(state: State, a: dict[str, Any], run: _Run) -> Changes:
    """``member.admit`` and ``member.remove``: the member becomes active or removed."""
    m = state.members[a["member"]]
    status: Any = "active" if a["type"] == "member.admit" else "removed"
    return {"members": state.members.set(m.key, m._replace(status=status, updated_index=run.idx))}


def _execute_model_release(state: State, a: dict[str, Any], run: _Run) -> Changes:
    mv = state.models[a["version"]]
    return {
        "models": state.models.set(
            mv.version, mv._replace(license=a["license"], weights=a["weights"])
        )
    }


def _execute_apikey_grant(state: State, a: dict[str, Any], run: _Run) -> Changes:
    key = ApiKey(
        a["key_hash"],
        a["consumer"],
        f"proposal:{run.p.proposal}",
        a["quota_per_day"],
        "active",
        run.idx,
        run.idx,
    )
    return {"apikeys": state.apikeys.set(key.key_hash, key)}


def _execute_apikey_revoke(state: State, a: dict[str, Any], run: _Run) -> Changes:
    key = state.apikeys[a["key_hash"]]
    return {
        "apikeys": state.apikeys.set(
            key.key_hash, key._replace(status="revoked", updated_index=run.idx)
        )
    }


def _execute_price_set(state: State, a: dict[str, Any], run: _Run) -> Changes:
    assert state.charter is not None
    doc = state.charter.to_json()
    doc["serving"]["price_per_call"] = a["price_per_call"]
    return {"charter": validate_charter(doc)}


def _execute_treasury_pay(state: State, a: dict[str, Any], run: _Run) -> Changes:
    from commonweal.community.ownership import payout_changes

    if a["to"] == "shareholders":
        return payout_changes(state, a["amount"], run.idx)
    h = state.holdings.get(a["to"]) or Holding(a["to"])
    t = state.treasury
    return {
        "holdings": state.holdings.set(
            h.member, h._replace(credits=h.credits + a["amount"], updated_index=run.idx)
        ),
        "treasury": t._replace(
            balance=t.balance - a["amount"], paid=t.paid + a["amount"], updated_index=run.idx
        ),
    }


def _execute_contribution_remove(state: State, a: dict[str, Any], run: _Run) -> Changes:
    contributions = state.contributions.mutate()
    verdicts = state.verdicts
    for iid in a["items"]:
        contributions[iid] = contributions[iid]._replace(status="removed", updated_index=run.idx)
        if iid in verdicts:
            verdicts = verdicts.delete(iid)
    return {"contributions": contributions.finish(), "verdicts": verdicts}


def _execute_signal(state: State, a: dict[str, Any], run: _Run) -> Changes:
    return {}  # text only: the vote was the point


def _execute_hub_run(state: State, a: dict[str, Any], run: _Run) -> Changes:
    return {"orders": state.orders.set(a["job"], run.idx)}  # the hub's scheduler runs it


_EXECUTORS: dict[str, Callable[[State, dict[str, Any], _Run], Changes]] = {
    "charter.amend": _execute_charter_amend,
    "member.admit": _execute_member_status,
    "member.remove": _execute_member_status,
    "model.release": _execute_model_release,
    "apikey.grant": _execute_apikey_grant,
    "apikey.revoke": _execute_apikey_revoke,
    "price.set": _execute_price_set,
    "treasury.pay": _execute_treasury_pay,
    "contribution.remove": _execute_contribution_remove,
    "hub.run": _execute_hub_run,
    "signal": _execute_signal,
}


def execute_action(
    state: State, a: dict[str, Any], n: int, leaf: Leaf, p: Proposal, base: str
) -> State:
    """``state`` after action ``a`` of proposal ``p``; raises if it no longer applies.
    ``base`` is the hash of the charter before the proposal's first action ran."""
    check_action(state, a, n)
    changes = _EXECUTORS[a["type"]](state, a, _Run(n, leaf.index, p, base))
    return state.evolve(changes) if changes else state


# The State fields an executed action may change.
MUTABLE = (
    "charter",
    "members",
    "models",
    "apikeys",
    "holdings",
    "treasury",
    "payouts",
    "contributions",
    "verdicts",
    "orders",
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
