"""The rules for ownership: reward epochs mint shares, payouts share out the treasury.

Every split here is a pure function of the replayed state, computed with integers and the
largest-remainder rule (``community.split``), so totals are conserved exactly. The hub
builds each event's body with the same functions the rules use to check it, and ``ledger
verify`` recomputes every epoch and payout from the log: a hub that paid anyone a share
more than the rules give is caught.

Event kinds:

- ``rewards.epoch`` — by the hub: mints the charter's shares for one epoch. The data pool
  goes pro rata to each member's positive value in the newest valuation not yet rewarded
  (under ``rewards.reward_once``, the default, only to value above what earlier epochs
  paid each member for, and only the new value's part of the pool is minted, so the same
  work is never paid twice); the review pool to reviewers by the information in their
  verdicts since the last epoch (``community.review_pay``); the compute pool to validated
  training work: each member's federated rounds that aggregation accepted since the last
  epoch (without any, it is not minted). The
  body logs each pool's weights (the inputs) and awards.
- ``payout.record`` — by the hub: pays treasury credits to shareholders pro rata to the
  shares they hold at that entry (the snapshot is the log up to it).
- ``shares.transfer`` — a member gives shares to another, if the charter allows it.
- ``member.address`` — a member registers the EVM address their on-chain claims go to.
- ``rewards.claims`` — by the hub: the Merkle root of an epoch's claims in Uniswap's
  MerkleDistributor format, for members with an address (``community.claims``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from immutables import Map

from commonweal.community.kinds import Changes, Touched, fields, need_active, need_hub
from commonweal.community.review_pay import informative_weight
from commonweal.community.split import largest_remainder
from commonweal.community.state import Epoch, Holding, Payout, State, ValuationRecord
from commonweal.community.valuations import weight
from commonweal.errors import CommonwealError, Conflict, Forbidden, InvalidInput, NotFound
from commonweal.ledger.canonical import canonical_str
from commonweal.ledger.event import Leaf

__all__ = [
    "KINDS",
    "POOLS",
    "claim_balances",
    "epoch_body",
    "epoch_inputs",
    "payout_body",
    "payout_changes",
]

POOLS = ("data", "review", "compute")


def _split(total: int, weights: list[tuple[str, int]]) -> list[list[Any]]:
    """``[[member, shares], ...]`` for members whose part is positive."""
    parts = largest_remainder(total, [w for _, w in weights])
    return [[m, p] for (m, _), p in zip(weights, parts, strict=True) if p]


def epoch_inputs(state: State) -> tuple[int, dict[str, list[tuple[str, int]]]]:
    """The valuation the next epoch pays on and each pool's positive weights by member
    (sorted by key). Raises Conflict when there is no new valuation to pay on."""
    last = len(state.valuations)
    if last <= state.rewarded_valuation:
        closed = len(state.epochs)
        raise Conflict(
            f"there is no valuation since epoch {closed} closed; value the latest model "
            "version first (`commonweal value`)"
            if closed
            else "there is no valuation to reward yet; run `commonweal value` first"
        )
    assert state.charter is not None
    cfg = state.charter.rewards
    weights = {
        "data": _data_weights(state, state.valuations[last]),
        "review": _review_weights(state, cfg.review_weight),
        # Validated training work: federated rounds whose update aggregation accepted.
        "compute": [(m, n) for m, n in sorted(state.compute_credit.items()) if n > 0],
    }
    return last, weights


def _value_weights(state: State, record: ValuationRecord) -> list[tuple[str, int]]:
    """Each member's positive value as an integer weight — times the square of the share
    of their reviewed items that review kept as they labelled them, where the charter
    weighs care (``rewards.label_accuracy_power``): a member who mislabels a third of
    what they send earns for the rest at about half the rate, so sending volume
    carelessly does not pay."""
    values = record.member_totals()
    assert state.charter is not None
    power = state.charter.rewards.label_accuracy_power
    accuracy = _label_accuracy(state) if power else {}
    out = []
    for m, v in sorted(values.items()):
        w = weight(v)
        kept, decided = accuracy.get(m, (0, 0))
        if decided:
            w = w * kept**power // decided**power
        if w > 0:
            out.append((m, w))
    return out


def _label_accuracy(state: State) -> dict[str, tuple[int, int]]:
    """Per member: (items review kept with their label, items review decided)."""
    out: dict[str, list[int]] = {}
    for c in state.contributions.values():
        if c.status not in ("accepted", "rejected") or c.label is None:
            continue
        counts = out.setdefault(c.member, [0, 0])
        counts[1] += 1
        if c.status == "accepted" and c.decided_label in (None, c.label):
            counts[0] += 1
    return {m: (k, d) for m, (k, d) in out.items()}


def _data_weights(state: State, record: ValuationRecord) -> list[tuple[str, int]]:
    """Each member's data-pool weight: their positive value — or, when the charter pays
    value once, what it rose above the most an earlier epoch already paid them for."""
    now = _value_weights(state, record)
    assert state.charter is not None
    if not state.charter.rewards.reward_once:
        return now
    paid = state.rewarded_value
    return [(m, w - paid.get(m, 0)) for m, w in now if w > paid.get(m, 0)]


def _review_weights(state: State, how: str) -> list[tuple[str, int]]:
    if how == "matched":
        return [(m, w) for m, w in sorted(state.review_credit.items()) if w > 0]
    weighed = ((m, informative_weight(t)) for m, t in sorted(state.review_tallies.items()))
    return [(m, w) for m, w in weighed if w > 0]


def _data_pool(state: State, size: int, weights: list[tuple[str, int]]) -> int:
    """The data pool actually minted: all of it, or — when value is paid once — the part
    that the new value is of all the value in the valuation paid on."""
    assert state.charter is not None
    if not weights:
        return 0
    if not state.charter.rewards.reward_once:
        return size
    record = state.valuations[len(state.valuations)]
    total = sum(w for _, w in _value_weights(state, record)) + _central_value(state, record)
    return size * sum(w for _, w in weights) // total


def _central_value(state: State, record: ValuationRecord) -> int:
    """For a federated version's valuation: the value of the central items it carries, as
    the latest valuation of its start version weighed them. A federated valuation values
    only what the nodes added on top of those items; without this, a few nodes' small gain
    would be "all the value" of the model and mint the whole pool."""
    fv = state.fl_versions.get(record.model)
    if fv is None or not fv.start:
        return 0
    of_start = [v for v in state.valuations.values() if v.model == fv.start]
    if not of_start:
        return 0
    return sum(w for _, w in _value_weights(state, max(of_start)))


def _review_pool(state: State, size: int, weights: list[tuple[str, int]]) -> int:
    """The review pool actually minted: all of it, or — when work is paid once — the part
    that the items decided since the last epoch are of the items valued, so a handful of
    reviews does not mint what reviewing the whole pool did."""
    assert state.charter is not None
    if not weights:
        return 0
    if not state.charter.rewards.reward_once or not state.epochs:
        return size
    since = max(e.entry for e in state.epochs.values())
    decided = sum(
        1
        for c in state.contributions.values()
        if c.updated_index > since and c.status in ("accepted", "rejected")
    )
    valued = max(1, state.valuations[len(state.valuations)].items)
    return size * min(decided, valued) // valued


def epoch_body(state: State) -> dict[str, Any]:
    """The ``rewards.epoch`` body the rules expect next."""
    assert state.charter is not None
    cfg = state.charter.rewards
    valuation, weights = epoch_inputs(state)
    sizes = largest_remainder(cfg.shares_per_epoch, [cfg.data_pct, cfg.review_pct, cfg.compute_pct])
    pools: dict[str, Any] = {}
    for name, size in zip(POOLS, sizes, strict=True):
        w = weights[name]
        # A pool with no one to pay is not minted.
        if name == "data":
            amount = _data_pool(state, size, w)
        elif name == "review":
            amount = _review_pool(state, size, w)
        else:
            amount = size if w else 0
        pools[name] = {
            "amount": amount,
            "weights": [[m, x] for m, x in w],
            "awards": _split(amount, w) if amount else [],
        }
    shares = sum(p["amount"] for p in pools.values())
    if shares == 0 and cfg.reward_once:
        closed = len(state.epochs)
        raise Conflict(
            "there is nothing new to reward: no member's value rose above what earlier "
            f"epochs paid for, and no review since epoch {closed} carried information"
            if closed
            else "there is nothing to reward yet: no positive value and no informative review"
        )
    return {
        "epoch": len(state.epochs) + 1,
        "valuation": valuation,
        "shares": shares,
        "pools": pools,
    }


@contextmanager
def _prefixed(kind: str) -> Iterator[None]:
    """Name the event kind in the errors of the helpers the hub also calls directly."""
    try:
        yield
    except CommonwealError as exc:
        raise type(exc)(f"{kind}: {exc.message}") from None


def _first_difference(got: Any, want: Any) -> str:
    if not isinstance(got, dict) or set(got) != set(want):
        return f"fields {sorted(want)}"
    for k in want:
        if got[k] != want[k]:
            return f"{k!r} (expected {json.dumps(want[k])[:200]})"
    return "nothing"  # pragma: no cover


def _epoch(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"epoch": int, "valuation": int, "shares": int, "pools": dict})
    need_hub(state, leaf)
    with _prefixed(kind):
        want = epoch_body(state)
    if body != want:
        raise InvalidInput(
            f"{kind}: the epoch differs from the rules' split in {_first_difference(body, want)}"
        )
    holdings = state.holdings.mutate()
    for pool in POOLS:
        for member, shares in want["pools"][pool]["awards"]:
            h = holdings.get(member) or Holding(member)
            holdings[member] = h._replace(
                shares=h.shares + shares,
                updated_index=leaf.index,
                **{pool: getattr(h, pool) + shares},
            )
    pools = want["pools"]
    epoch = Epoch(
        want["epoch"],
        leaf.index,
        want["valuation"],
        want["shares"],
        pools["data"]["amount"],
        pools["review"]["amount"],
        pools["compute"]["amount"],
        canonical_str({p: pools[p]["awards"] for p in POOLS}),
    )
    # Value is paid once: each member's high-water mark rises to what was just valued.
    paid = state.rewarded_value.mutate()
    for m, w in _value_weights(state, state.valuations[want["valuation"]]):
        paid[m] = max(paid.get(m, 0), w)
    return {
        "epochs": state.epochs.set(epoch.epoch, epoch),
        "holdings": holdings.finish(),
        "rewarded_valuation": want["valuation"],
        "rewarded_value": paid.finish(),
        # Verdicts are paid once: the next epoch counts the ones decided after this.
        "review_credit": Map(),
        "review_tallies": Map(),
        # Accepted rounds are paid once too (none to reset in a community without them).
        "compute_credit": Map() if state.compute_credit else state.compute_credit,
    }


def payout_body(state: State, amount: int | None = None) -> dict[str, Any]:
    """The ``payout.record`` body the rules expect for ``amount`` credits (default: the
    whole balance). Raises Conflict for an empty treasury or when no one holds shares."""
    balance = state.treasury.balance
    if balance <= 0:
        raise Conflict(
            "the treasury is empty: there is no revenue to pay out (it comes from metered "
            "predictions; see `commonweal revenue treasury`)"
        )
    amount = balance if amount is None else amount
    if type(amount) is not int or not 1 <= amount <= balance:
        raise InvalidInput(f"a payout is 1 to {balance} credits (the balance), not {amount!r}")
    holders = sorted((h.member, h.shares) for h in state.holdings.values() if h.shares > 0)
    if not holders:
        raise Conflict(
            "no one holds shares yet; close a reward epoch first (`rewards close-epoch`)"
        )
    credits = largest_remainder(amount, [s for _, s in holders])
    return {
        "payout": len(state.payouts) + 1,
        "amount": amount,
        "shares_total": sum(s for _, s in holders),
        "parts": [[m, s, c] for (m, s), c in zip(holders, credits, strict=True)],
    }


def _payout(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"payout": int, "amount": int, "shares_total": int, "parts": list})
    need_hub(state, leaf)
    with _prefixed(kind):
        want = payout_body(state, body["amount"])
    if body != want:
        raise InvalidInput(
            f"{kind}: the payout differs from the rules' split in {_first_difference(body, want)}"
        )
    return payout_changes(state, want["amount"], leaf.index)


def payout_changes(state: State, amount: int, index: int) -> Changes:
    """The state changes of paying ``amount`` treasury credits to shareholders at log
    entry ``index`` (a ``payout.record``, or a passed ``treasury.pay`` proposal)."""
    want = payout_body(state, amount)
    holdings = state.holdings.mutate()
    for member, _, credits in want["parts"]:
        h = holdings[member]
        holdings[member] = h._replace(credits=h.credits + credits, updated_index=index)
    t = state.treasury
    payout = Payout(
        want["payout"],
        index,
        want["amount"],
        want["shares_total"],
        len(want["parts"]),
        canonical_str(want["parts"]),
    )
    return {
        "payouts": state.payouts.set(payout.payout, payout),
        "holdings": holdings.finish(),
        "treasury": t._replace(
            balance=t.balance - want["amount"],
            paid=t.paid + want["amount"],
            updated_index=index,
        ),
    }


def _transfer(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"to": str, "shares": int})
    need_active(state, leaf.actor, kind)
    assert state.charter is not None
    if not state.charter.rewards.transferable:
        raise Forbidden(f"{kind}: shares are not transferable under this charter")
    to = state.members.get(body["to"])
    if to is None or to.status != "active":
        raise InvalidInput(f"{kind}: the recipient must be an active member")
    if body["to"] == leaf.actor:
        raise InvalidInput(f"{kind}: a transfer goes to another member")
    giver = state.holdings.get(leaf.actor) or Holding(leaf.actor)
    if not 1 <= body["shares"] <= giver.shares:
        raise Conflict(f"{kind}: you hold {giver.shares} shares; transfer 1 to {giver.shares}")
    taker = state.holdings.get(body["to"]) or Holding(body["to"])
    holdings = state.holdings.set(
        leaf.actor, giver._replace(shares=giver.shares - body["shares"], updated_index=leaf.index)
    ).set(
        body["to"], taker._replace(shares=taker.shares + body["shares"], updated_index=leaf.index)
    )
    return {"holdings": holdings}


def _address(state: State, leaf: Leaf) -> Changes:
    from commonweal.community.claims import checksum_address

    kind = leaf.kind
    body = fields(leaf, {"address": str})
    need_active(state, leaf.actor, kind)
    try:
        address = checksum_address(body["address"])
    except ValueError as exc:
        raise InvalidInput(f"{kind}: {exc}") from None
    for h in state.holdings.values():
        if h.address == address and h.member != leaf.actor:
            raise Conflict(f"{kind}: another member registered that address")
    h = state.holdings.get(leaf.actor) or Holding(leaf.actor)
    return {
        "holdings": state.holdings.set(
            leaf.actor, h._replace(address=address, updated_index=leaf.index)
        )
    }


def claim_balances(state: State, epoch: int) -> dict[str, int]:
    """Shares awarded in ``epoch`` to each member with a registered address, by address —
    the addresses registered when the epoch's claims root was logged, once it has been.
    Raises NotFound for an unknown epoch, Conflict when no awarded member has an address."""
    e = state.epochs.get(epoch)
    if e is None:
        raise NotFound(f"there is no reward epoch {epoch}; see `commonweal shares`")
    published = state.claimed.get(epoch)
    if published is not None:
        return dict(published)
    awarded: dict[str, int] = {}
    for pool in json.loads(e.awards).values():
        for member, shares in pool:
            awarded[member] = awarded.get(member, 0) + shares
    out: dict[str, int] = {}
    for member, shares in awarded.items():
        h = state.holdings.get(member)
        if h is not None and h.address:
            out[h.address] = shares
    if not out:
        raise Conflict(
            f"no member awarded in epoch {epoch} has registered an EVM address; members "
            "register one with `commonweal member address 0x…`"
        )
    return out


def _claims(state: State, leaf: Leaf) -> Changes:
    from commonweal.community.claims import distributor

    kind = leaf.kind
    body = fields(
        leaf, {"epoch": int, "format": str, "root": str, "token_total": str, "claims": int}
    )
    need_hub(state, leaf)
    published = state.epochs.get(body["epoch"])
    if published is not None and published.claims_root:
        # Two roots for one epoch could both be funded on chain: the same award paid to
        # an old and a new address. One root per epoch, ever.
        raise Conflict(
            f"{kind}: epoch {body['epoch']}'s claims root {published.claims_root} is "
            "already logged; an epoch has one claims root, and an address registered "
            "since applies to later epochs"
        )
    if body["format"] != "merkle-distributor":
        raise InvalidInput(f"{kind}: the only claims format is 'merkle-distributor'")
    with _prefixed(kind):
        balances = claim_balances(state, body["epoch"])
        doc = distributor(balances)
    want = {
        "epoch": body["epoch"],
        "format": "merkle-distributor",
        "root": doc["merkleRoot"],
        "token_total": doc["tokenTotal"],
        "claims": len(doc["claims"]),
    }
    if body != want:
        raise InvalidInput(
            f"{kind}: the claims differ from the rules' in {_first_difference(body, want)}"
        )
    e = state.epochs[body["epoch"]]
    return {
        "epochs": state.epochs.set(e.epoch, e._replace(claims_root=want["root"])),
        "claimed": state.claimed.set(e.epoch, Map(balances)),
    }


def _epoch_members(leaf: Leaf) -> tuple[str, ...]:
    pools = leaf.body.get("pools", {})
    return tuple(sorted({a[0] for p in pools.values() for a in p.get("awards", [])}))


KINDS: dict[str, tuple[Any, Any]] = {
    "rewards.epoch": (
        _epoch,
        lambda lf: Touched(epochs=(lf.body["epoch"],), holdings=_epoch_members(lf)),
    ),
    "payout.record": (
        _payout,
        lambda lf: Touched(
            payouts=(lf.body["payout"],),
            holdings=tuple(p[0] for p in lf.body["parts"]),
            treasury=True,
        ),
    ),
    "shares.transfer": (_transfer, lambda lf: Touched(holdings=(lf.actor, lf.body["to"]))),
    "member.address": (_address, lambda lf: Touched(holdings=(lf.actor,))),
    "rewards.claims": (_claims, lambda lf: Touched(epochs=(lf.body["epoch"],))),
}
