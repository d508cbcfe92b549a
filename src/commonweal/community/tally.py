"""Counting a proposal's votes: voting power, liquid delegation, the three ballot kinds, passing.

``ledger verify`` recomputes every tally from the log, so everything here is a pure,
deterministic function of its inputs, in integers only (no floats anywhere), and independent
of the iteration order of the mappings it is given (persistent ``immutables.Map`` snapshots
or plain dicts). The steps:

1. :func:`voting_power` — each eligible member's weight: one member one vote, their shares,
   or the integer square root of their shares (quadratic).
2. :func:`effective_votes` — liquid democracy. A member who voted counts with their own
   choice; one who did not lends their power along their delegation chain to the first
   member on it who voted. A chain that ends without a voter, or (defensively — the rules
   refuse them at delegation time) runs into a cycle, leaves the member absent.
3. :func:`tally` — the counts for a ``basic`` (for / against / abstain), ``approval`` or
   ``ranked-choice`` (instant-runoff) proposal, as a :class:`Tally` that goes into the log.
4. :func:`passes` — whether a basic tally meets the charter's quorum and approval threshold.

Ties are settled by the proposal's own ``options`` order, never by a hash or an iteration
order: an approval tie goes to the option listed first, and an instant-runoff elimination
tie removes the option listed last.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, get_args

__all__ = [
    "BASIC_CHOICES",
    "Approval",
    "Counted",
    "Kind",
    "Tally",
    "Weighting",
    "effective_votes",
    "passes",
    "tally",
    "validate_choice",
    "voting_power",
    "would_cycle",
]

Weighting = Literal["member", "shares", "quadratic"]
Kind = Literal["basic", "approval", "ranked-choice"]
Approval = Literal["majority", "two-thirds", "three-quarters", "unanimous"]

BASIC_CHOICES: tuple[str, ...] = ("for", "against", "abstain")
_KINDS: tuple[str, ...] = get_args(Kind)
_WEIGHTINGS: tuple[str, ...] = get_args(Weighting)
_APPROVALS: tuple[str, ...] = get_args(Approval)


# -- voting power ---------------------------------------------------------------------------


def voting_power(
    weighting: Weighting, members: Iterable[str], shares: Mapping[str, int]
) -> dict[str, int]:
    """The voting power of each eligible member at the proposal's snapshot.

    Only ``members`` (the eligible, active members) get power; a member missing from
    ``shares`` holds none. ``"member"``: 1 each. ``"shares"``: their shares (0 shares means
    0 power, and the member is still listed). ``"quadratic"``: ``math.isqrt`` of their shares.
    Raises ValueError for an unknown weighting or a share count that is not a non-negative
    integer."""
    if weighting not in _WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; expected one of {list(_WEIGHTINGS)}")
    power: dict[str, int] = {}
    for member in members:
        if weighting == "member":
            power[member] = 1
            continue
        held = shares.get(member, 0)
        if type(held) is not int or held < 0:
            raise ValueError(f"shares of {member!r} must be a non-negative integer, got {held!r}")
        power[member] = held if weighting == "shares" else math.isqrt(held)
    return power


# -- delegation -----------------------------------------------------------------------------


class Counted(NamedTuple):
    """A member's power as it counts: cast by ``voter`` (the member themself when they voted
    directly, else the first voter on their delegation chain), weighing ``power``."""

    voter: str
    power: int


def would_cycle(delegates: Mapping[str, str], member: str, to: str) -> bool:
    """Whether delegating ``member``'s vote to ``to`` would close a cycle.

    Walks the existing chain from ``to``: it cycles if it reaches ``member`` (delegating to
    oneself included). ``member``'s current delegation is never followed, since the new one
    replaces it. A pre-existing cycle elsewhere on the walk is not ``member``'s doing and
    stops the walk (False), so a corrupt map cannot hang the check."""
    seen: set[str] = set()
    node: str | None = to
    while node is not None:
        if node == member:
            return True
        if node in seen:
            return False
        seen.add(node)
        node = delegates.get(node)
    return False


def effective_votes(
    power: Mapping[str, int], votes: Mapping[str, Any], delegates: Mapping[str, str]
) -> dict[str, Counted]:
    """Who casts each member's power: ``{member: Counted(voter, power)}`` for each member in
    ``power`` whose power is cast, directly or by delegation; absent members are left out.

    A member in ``votes`` casts their own power with their own choice — their own vote
    overrides any delegation they made. Otherwise follow ``delegates`` (member → delegate)
    until the first member who voted; the chain may pass through members without power
    (not in ``power``, or with 0), and whoever is in ``votes`` casts (who may vote is for
    the rules to check). A chain that ends at a non-voter without a delegate is absent. The
    rules refuse cycles when a delegation is made, but a chain that runs into a cycle anyway
    is treated as absent rather than looping.

    Runs in time linear in ``len(power) + len(delegates)``: every node's resolution is
    memoised, and chains are walked iteratively, so chains of any length are fine."""
    return {
        member: Counted(voter, power[member])
        for member, voter in _cast_by(power, votes, delegates).items()
    }


def _cast_by(
    power: Mapping[str, int], votes: Mapping[str, Any], delegates: Mapping[str, str]
) -> dict[str, str]:
    """``{member: voter}`` for each member in ``power`` whose power is cast."""
    # node -> the voter its chain reaches, or None when it reaches none (ends, or cycles)
    resolved: dict[str, str | None] = {}
    out: dict[str, str] = {}
    for member in power:
        if member in votes:
            out[member] = member
            continue
        voter = (
            resolved[member] if member in resolved else _walk(member, votes, delegates, resolved)
        )
        if voter is not None:
            out[member] = voter
    return out


def _walk(
    start: str,
    votes: Mapping[str, Any],
    delegates: Mapping[str, str],
    resolved: dict[str, str | None],
) -> str | None:
    """Resolve ``start``'s chain, memoising every node on it; the voter, or None."""
    path: list[str] = []
    on_path: set[str] = set()
    node: str | None = start
    outcome: str | None
    while True:
        if node is None:  # the chain ended at a non-voter
            outcome = None
            break
        if node in votes:
            outcome = node
            break
        if node in resolved:
            outcome = resolved[node]
            break
        if node in on_path:  # the walk came back to itself: a cycle
            outcome = None
            break
        on_path.add(node)
        path.append(node)
        node = delegates.get(node)
    for step in path:
        resolved[step] = outcome
    return outcome


# -- choices --------------------------------------------------------------------------------


def _check_options(kind: str, options: Sequence[str] | None) -> tuple[str, ...]:
    if kind not in _KINDS:
        raise ValueError(f"unknown vote kind {kind!r}; expected one of {list(_KINDS)}")
    if kind == "basic":
        if options:  # None or empty: a basic vote's choices are fixed
            raise ValueError("a basic vote takes no options (its choices are for/against/abstain)")
        return BASIC_CHOICES
    if options is None or isinstance(options, str) or len(options) == 0:
        raise ValueError(f"a {kind} vote needs a non-empty list of options, got {options!r}")
    if not all(type(o) is str for o in options):
        raise ValueError(f"options must be strings, got {list(options)!r}")
    if len(set(options)) != len(options):
        raise ValueError(f"options must be distinct, got {list(options)!r}")
    return tuple(options)


def validate_choice(kind: str, choice: Any, options: Sequence[str] | None = None) -> None:
    """Raise ValueError, naming what is wrong, unless ``choice`` is a well-formed ballot.

    ``"basic"``: one of ``"for"``, ``"against"``, ``"abstain"`` (``options`` None or empty).
    ``"approval"``: a non-empty list of distinct options approved of.
    ``"ranked-choice"``: a non-empty list of distinct options, most preferred first; it may
    rank only some of the options. A tuple is accepted wherever a list is."""
    allowed = _check_options(kind, options)
    _validate(kind, choice, allowed, frozenset(allowed))


def _validate(kind: str, choice: Any, allowed: tuple[str, ...], known: frozenset[str]) -> None:
    if kind == "basic":
        if type(choice) is not str or choice not in known:
            raise ValueError(f"a basic vote is one of {list(BASIC_CHOICES)}, got {choice!r}")
        return
    what = "a ranking" if kind == "ranked-choice" else "a list of approved options"
    article = "an" if kind[0] in "aeiou" else "a"
    if type(choice) not in (list, tuple):
        raise ValueError(f"{article} {kind} vote is {what}, got {choice!r}")
    if len(choice) == 0:
        raise ValueError(f"a {kind} vote must name at least one option")
    for option in choice:
        if not isinstance(option, str) or option not in known:
            raise ValueError(f"unknown option {option!r}; the options are {list(allowed)}")
    if len(set(choice)) != len(choice):
        raise ValueError(f"a {kind} vote names an option more than once: {list(choice)!r}")


def _validate_votes(
    kind: str, votes: Mapping[str, Any], allowed: tuple[str, ...], known: frozenset[str]
) -> None:
    """:func:`_validate` every ballot, naming the member whose ballot is malformed."""
    # A fast pass in C-level set operations first: a list of options is well formed when
    # its distinct known options are as many as its entries. Only if something is off
    # (or unhashable) does the slow pass run, to find and describe it.
    choices = votes.values()
    try:
        if kind == "basic":
            fine = all(type(c) is str and c in known for c in choices)
        else:
            fine = all(
                type(c) in (list, tuple) and 0 < len(c) == len(known.intersection(c))
                for c in choices
            )
    except TypeError:
        fine = False
    if fine:
        return
    for member, choice in votes.items():
        try:
            _validate(kind, choice, allowed, known)
        except ValueError as exc:
            raise ValueError(f"vote of {member!r}: {exc}") from None


# -- tally ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """The outcome of counting one proposal.

    ``counts``: weight per choice (basic), per option (approval), or per option still in the
    race in the final round (ranked-choice). ``rounds``: every instant-runoff round's counts,
    over the options still in the race (``[]`` for the other kinds). ``participating``: the
    weight of the ballots counted (for basic, for + against + abstain). ``voters``: how many
    members' power was cast, directly or by delegation, counting only members with power >
    0. ``total_power``: the power of every eligible member. ``winner``: the winning option,
    or None — always None for a basic vote, whose outcome :func:`passes` decides."""

    kind: Kind
    counts: dict[str, int]
    rounds: list[dict[str, int]] = field(default_factory=list)
    participating: int = 0
    voters: int = 0
    total_power: int = 0
    winner: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A log-ready value of ints, strings, lists and dicts. ``winner`` is left out when
        there is none."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "counts": dict(self.counts),
            "rounds": [dict(r) for r in self.rounds],
            "participating": self.participating,
            "voters": self.voters,
            "total_power": self.total_power,
        }
        if self.winner is not None:
            out["winner"] = self.winner
        return out


def tally(
    kind: Kind,
    power: Mapping[str, int],
    votes: Mapping[str, Any],
    delegates: Mapping[str, str],
    options: Sequence[str] | None = None,
) -> Tally:
    """Count a proposal: ``power`` from :func:`voting_power`, ``votes`` (member → choice),
    ``delegates`` (member → delegate) and, for approval and ranked-choice, ``options``.

    Every choice in ``votes`` must be well formed (see :func:`validate_choice`): the rules
    refuse malformed ballots, so one here is an error, not something to skip silently.

    - ``basic``: weight per for / against / abstain; no winner (see :func:`passes`).
    - ``approval``: each approved option gets the ballot's full weight; the winner has the
      most weight, a tie going to the option earliest in ``options``; no winner when every
      option has weight 0.
    - ``ranked-choice``: instant-runoff. Each round, every ballot's weight goes to its
      highest-ranked option still in the race; ballots ranking none of them are exhausted
      and drop out. An option with more than half the weight still in play wins. Otherwise
      the option with the least weight is eliminated, a tie eliminating the option latest in
      ``options`` (so a perfect tie goes to the earlier-listed option). No winner when no
      weight is in play."""
    allowed = _check_options(kind, options)
    known = frozenset(allowed)
    _validate_votes(kind, votes, allowed, known)
    weight_of, voters, participating = _ballot_weights(power, votes, delegates)
    total_power = sum(power.values())
    if kind == "basic":
        counts = _basic_counts(votes, weight_of)
        return Tally(kind, counts, [], participating, voters, total_power, None)
    if kind == "approval":
        counts, winner = _approval_count(allowed, votes, weight_of)
        return Tally(kind, counts, [], participating, voters, total_power, winner)
    rounds, winner = _instant_runoff(allowed, _merged_rankings(votes, weight_of))
    return Tally(kind, dict(rounds[-1]), rounds, participating, voters, total_power, winner)


def _ballot_weights(
    power: Mapping[str, int], votes: Mapping[str, Any], delegates: Mapping[str, str]
) -> tuple[dict[str, int], int, int]:
    """The weight each voter's ballot carries, how many members with power > 0 it counts,
    and their total power."""
    # Fold each counted member's power into the ballot of the voter who cast it.
    weight_of: dict[str, int] = {}
    voters = 0
    participating = 0
    for member, voter in _cast_by(power, votes, delegates).items():
        weight = power[member]
        if weight > 0:
            weight_of[voter] = weight_of.get(voter, 0) + weight
            voters += 1
            participating += weight
    return weight_of, voters, participating


def _basic_counts(votes: Mapping[str, Any], weight_of: Mapping[str, int]) -> dict[str, int]:
    counts = dict.fromkeys(BASIC_CHOICES, 0)
    for voter, weight in weight_of.items():
        counts[votes[voter]] += weight
    return counts


def _approval_count(
    allowed: tuple[str, ...], votes: Mapping[str, Any], weight_of: Mapping[str, int]
) -> tuple[dict[str, int], str | None]:
    """Weight per option, and the winner (None when every option has weight 0)."""
    counts = dict.fromkeys(allowed, 0)
    for voter, weight in weight_of.items():
        for option in votes[voter]:
            counts[option] += weight
    best = max(counts.values())
    # max() over options in order keeps the first of equals: ties go to the earliest.
    winner = next(o for o in allowed if counts[o] == best) if best > 0 else None
    return counts, winner


def _merged_rankings(
    votes: Mapping[str, Any], weight_of: Mapping[str, int]
) -> dict[tuple[str, ...], int]:
    # Identical rankings are merged: the rounds then cost time per distinct ranking.
    ballots: dict[tuple[str, ...], int] = {}
    for voter, weight in weight_of.items():
        ranking = tuple(votes[voter])
        ballots[ranking] = ballots.get(ranking, 0) + weight
    return ballots


def _instant_runoff(
    options: tuple[str, ...], ballots: Mapping[tuple[str, ...], int]
) -> tuple[list[dict[str, int]], str | None]:
    """The rounds of an instant-runoff count, and the winner (None if no weight is in play).

    Each ballot sits on a pile under the option it currently counts for, with a cursor into
    its ranking; eliminating an option moves only that option's pile along, so the whole
    count costs time linear in the total length of the distinct rankings."""
    remaining = dict.fromkeys(options, 0)  # option -> weight, kept in options order
    piles: dict[str, list[tuple[tuple[str, ...], int, int]]] = {o: [] for o in options}

    def place(ranking: tuple[str, ...], cursor: int, weight: int) -> None:
        while cursor < len(ranking):
            option = ranking[cursor]
            if option in remaining:
                remaining[option] += weight
                piles[option].append((ranking, cursor, weight))
                return
            cursor += 1
        # No remaining option is ranked: the ballot is exhausted and drops out.

    for ranking, weight in ballots.items():
        place(ranking, 0, weight)

    rounds: list[dict[str, int]] = []
    while True:
        rounds.append(dict(remaining))
        in_play = sum(remaining.values())
        if in_play == 0:
            return rounds, None
        leader = max(remaining, key=remaining.__getitem__)
        if 2 * remaining[leader] > in_play or len(remaining) == 1:
            return rounds, leader
        least = min(remaining.values())
        loser = [o for o in remaining if remaining[o] == least][-1]
        del remaining[loser]
        for ranking, cursor, weight in piles.pop(loser):
            place(ranking, cursor + 1, weight)


# -- passing --------------------------------------------------------------------------------


def passes(
    result: Tally,
    *,
    quorum_pct: int,
    quorum_counts: Sequence[str],
    approval: Approval,
) -> tuple[bool, str]:
    """Whether a basic tally passes, and why in words.

    Quorum: the weight of the choices in ``quorum_counts`` (e.g. ``["for", "against",
    "abstain"]``) must be at least ``quorum_pct``% of ``total_power``, tested exactly as
    ``counted * 100 >= quorum_pct * total_power``. Approval counts for and against only
    (abstentions are neither): ``majority`` for > against; ``two-thirds`` 3·for ≥
    2·(for + against); ``three-quarters`` 4·for ≥ 3·(for + against); ``unanimous`` no
    votes against. Every threshold but ``majority`` (which implies it) also needs for > 0."""
    if result.kind != "basic":
        raise ValueError(f"passes() decides basic votes, not {result.kind!r} ones")
    if type(quorum_pct) is not int or not 0 <= quorum_pct <= 100:
        raise ValueError(f"quorum_pct must be an integer from 0 to 100, got {quorum_pct!r}")
    if approval not in _APPROVALS:
        raise ValueError(f"unknown approval rule {approval!r}; expected one of {list(_APPROVALS)}")
    if isinstance(quorum_counts, str):
        raise ValueError(f"quorum_counts must be a list of choices, got {quorum_counts!r}")
    for choice in quorum_counts:
        if choice not in BASIC_CHOICES:
            raise ValueError(
                f"quorum_counts names {choice!r}; the choices are {list(BASIC_CHOICES)}"
            )
    if len(set(quorum_counts)) != len(quorum_counts):
        raise ValueError(f"quorum_counts names a choice twice: {list(quorum_counts)!r}")

    counted = sum(result.counts[c] for c in quorum_counts)
    total = result.total_power
    if counted * 100 < quorum_pct * total:
        needed = -(-quorum_pct * total // 100)  # the least integer meeting the quorum
        return False, f"quorum not reached: {counted} of {needed} needed"

    yes, no = result.counts["for"], result.counts["against"]
    if approval == "majority":
        ok = yes > no
        rule = "more for than against"
    elif approval == "two-thirds":
        ok = yes > 0 and 3 * yes >= 2 * (yes + no)
        rule = "at least two-thirds of for + against to be for"
    elif approval == "three-quarters":
        ok = yes > 0 and 4 * yes >= 3 * (yes + no)
        rule = "at least three-quarters of for + against to be for"
    else:
        ok = yes > 0 and no == 0
        rule = "no votes against and at least one for"
    verdict = "passed" if ok else "not approved"
    return ok, f"{verdict}: {yes} for, {no} against; {approval} needs {rule}"
