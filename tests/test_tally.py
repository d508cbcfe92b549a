"""Vote tallies: liquid delegation, approval, instant-runoff and passing, checked against
naive reference implementations on random elections."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import immutables
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonweal.community.tally import (
    Counted,
    Tally,
    effective_votes,
    passes,
    tally,
    validate_choice,
    voting_power,
    would_cycle,
)
from commonweal.ledger.canonical import canonical, parse

# -- reference implementations --------------------------------------------------------------


def naive_resolve(
    power: Mapping[str, int], votes: Mapping[str, Any], delegates: Mapping[str, str]
) -> dict[str, Counted]:
    """Per member, walk the chain on its own; a revisited node means a cycle (absent)."""
    out: dict[str, Counted] = {}
    for member, weight in power.items():
        node: str | None = member
        seen: set[str] = set()
        while node is not None and node not in votes and node not in seen:
            seen.add(node)
            node = delegates.get(node)
        if node is not None and node in votes:
            out[member] = Counted(node, weight)
    return out


def naive_irv(
    options: list[str], ballots: list[tuple[list[str], int]]
) -> tuple[list[dict[str, int]], str | None]:
    """Instant-runoff the slow way: recount every ballot from the top each round."""
    remaining = list(options)
    rounds: list[dict[str, int]] = []
    while True:
        counts = dict.fromkeys(remaining, 0)
        for ranking, weight in ballots:
            top = next((o for o in ranking if o in counts), None)
            if top is not None:
                counts[top] += weight
        rounds.append(counts)
        active = sum(counts.values())
        if active == 0:
            return rounds, None
        for option in remaining:
            if Fraction(counts[option], active) > Fraction(1, 2):
                return rounds, option
        if len(remaining) == 1:
            return rounds, remaining[0]
        least = min(counts.values())
        loser = max((i, o) for i, o in enumerate(remaining) if counts[o] == least)[1]
        remaining.remove(loser)


# -- strategies -----------------------------------------------------------------------------

NAMES = [f"m{i}" for i in range(12)]
OPTIONS = ["ash", "birch", "cedar", "elm", "fir"]


@st.composite
def electorates(draw: st.DrawFn) -> tuple[dict[str, int], dict[str, str], dict[str, str]]:
    """Random power (some nodes without any), basic votes, and an arbitrary delegation map —
    self-delegations and cycles included, which the rules would refuse but tally survives."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, unique=True))
    power = {n: draw(st.integers(0, 50)) for n in names if draw(st.booleans())}
    votes = {
        n: draw(st.sampled_from(["for", "against", "abstain"]))
        for n in names
        if draw(st.booleans())
    }
    delegates = {n: draw(st.sampled_from(names)) for n in names if draw(st.booleans())}
    return power, votes, delegates


@st.composite
def rankings(draw: st.DrawFn) -> tuple[list[str], list[tuple[list[str], int]]]:
    options = draw(st.lists(st.sampled_from(OPTIONS), min_size=1, unique=True))
    ballot = st.lists(st.sampled_from(options), min_size=1, unique=True)
    ballots = draw(st.lists(st.tuples(ballot, st.integers(0, 20)), max_size=12))
    return options, ballots


def as_votes(ballots: list[tuple[list[str], int]]) -> tuple[dict[str, int], dict[str, Any]]:
    power = {f"v{i}": w for i, (_, w) in enumerate(ballots)}
    votes = {f"v{i}": choice for i, (choice, _) in enumerate(ballots)}
    return power, votes


def shuffled(mapping: Mapping[str, Any], rnd: random.Random) -> dict[str, Any]:
    items = list(mapping.items())
    rnd.shuffle(items)
    return dict(items)


# -- voting power ---------------------------------------------------------------------------


@given(
    st.dictionaries(st.sampled_from(NAMES), st.integers(0, 10**12)), st.sets(st.sampled_from(NAMES))
)
def test_power_is_one_each_the_shares_or_their_integer_square_root(
    shares: dict[str, int], members: set[str]
) -> None:
    by_member = voting_power("member", members, shares)
    by_shares = voting_power("shares", members, immutables.Map(shares))
    quadratic = voting_power("quadratic", members, shares)
    assert set(by_member) == set(by_shares) == set(quadratic) == members
    for m in members:
        assert by_member[m] == 1
        assert by_shares[m] == shares.get(m, 0)
        assert quadratic[m] == math.isqrt(shares.get(m, 0))
        assert quadratic[m] ** 2 <= shares.get(m, 0) < (quadratic[m] + 1) ** 2


def test_only_eligible_members_get_power_and_zero_shares_still_appear() -> None:
    shares = {"ada": 9, "bo": 0, "cy": 100}
    assert voting_power("quadratic", ["ada", "bo"], shares) == {"ada": 3, "bo": 0}
    assert voting_power("shares", ["bo", "dee"], shares) == {"bo": 0, "dee": 0}


def test_power_refuses_bad_shares_and_unknown_weighting() -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        voting_power("shares", ["ada"], {"ada": -1})
    with pytest.raises(ValueError, match="non-negative integer"):
        voting_power("quadratic", ["ada"], {"ada": 2.0})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="unknown weighting"):
        voting_power("cubic", ["ada"], {})  # type: ignore[arg-type]


# -- delegation -----------------------------------------------------------------------------


@given(electorates())
def test_delegation_resolves_like_walking_each_chain(
    e: tuple[dict[str, int], dict[str, str], dict[str, str]],
) -> None:
    power, votes, delegates = e
    assert effective_votes(power, votes, delegates) == naive_resolve(power, votes, delegates)


@given(electorates())
def test_counted_power_is_the_power_of_members_resolved_to_a_voter(
    e: tuple[dict[str, int], dict[str, str], dict[str, str]],
) -> None:
    power, votes, delegates = e
    resolved = naive_resolve(power, votes, delegates)
    result = tally("basic", power, votes, delegates)
    assert result.participating == sum(c.power for c in resolved.values())
    assert result.participating == sum(result.counts.values())
    assert result.voters == sum(1 for c in resolved.values() if c.power > 0)
    assert result.total_power == sum(power.values())
    for choice in ("for", "against", "abstain"):
        assert result.counts[choice] == sum(
            c.power for c in resolved.values() if votes[c.voter] == choice
        )


@given(electorates())
def test_a_members_own_vote_overrides_their_delegation(
    e: tuple[dict[str, int], dict[str, str], dict[str, str]],
) -> None:
    power, votes, delegates = e
    resolved = effective_votes(power, votes, delegates)
    for member in power:
        if member in votes:
            assert resolved[member] == Counted(member, power[member])


def test_own_vote_overrides_and_chains_pass_through_members_without_power() -> None:
    power = {"ada": 5, "bo": 3, "cy": 2}
    delegates = {"ada": "bo", "bo": "ghost", "ghost": "cy", "cy": "ada"}  # ghost has no power
    votes = {"cy": "against", "bo": "for"}
    assert effective_votes(power, votes, delegates) == {
        "ada": Counted("bo", 5),
        "bo": Counted("bo", 3),
        "cy": Counted("cy", 2),
    }
    assert effective_votes(power, {"cy": "for"}, delegates) == {
        "ada": Counted("cy", 5),
        "bo": Counted("cy", 3),
        "cy": Counted("cy", 2),
    }
    result = tally("basic", power, votes, delegates)
    assert result.counts == {"for": 8, "against": 2, "abstain": 0}
    assert result.voters == 3


def test_a_chain_ending_without_a_voter_or_in_a_cycle_is_absent() -> None:
    power = {"ada": 1, "bo": 1, "cy": 1, "dee": 1, "eve": 1}
    delegates = {"ada": "bo", "bo": "cy", "cy": "bo", "dee": "dee", "eve": "nobody"}
    assert effective_votes(power, {}, delegates) == {}
    assert effective_votes(power, {"fay": "for"}, delegates) == {}
    assert effective_votes(power, {"cy": "for"}, delegates) == {
        "ada": Counted("cy", 1),
        "bo": Counted("cy", 1),
        "cy": Counted("cy", 1),
    }


def test_a_chain_ten_thousand_long_resolves_without_recursion() -> None:
    n = 10_000
    power = {f"m{i}": 1 for i in range(n + 1)}
    delegates = {f"m{i}": f"m{i + 1}" for i in range(n)}
    resolved = effective_votes(power, {f"m{n}": "for"}, delegates)
    assert len(resolved) == n + 1
    assert {c.voter for c in resolved.values()} == {f"m{n}"}
    # The same chain closed into a loop with no voter on it: absent, and it terminates.
    delegates[f"m{n}"] = "m0"
    assert effective_votes(power, {}, delegates) == {}


@given(
    st.dictionaries(st.sampled_from(NAMES[:6]), st.sampled_from(NAMES[:6])),
    st.sampled_from(NAMES[:6]),
    st.sampled_from(NAMES[:6]),
)
def test_would_cycle_is_true_exactly_when_the_new_chain_returns_to_the_member(
    delegates: dict[str, str], member: str, to: str
) -> None:
    after = {**delegates, member: to}
    node: str | None = to
    seen: set[str] = set()
    while node is not None and node != member and node not in seen:
        seen.add(node)
        node = after.get(node)
    assert would_cycle(delegates, member, to) == (node == member)


def test_would_cycle_examples() -> None:
    delegates = immutables.Map({"bo": "cy", "cy": "dee"})
    assert would_cycle(delegates, "ada", "ada")
    assert would_cycle(delegates, "dee", "bo")
    assert not would_cycle(delegates, "ada", "bo")
    # A loop elsewhere on the walk is not the member's doing, and must not hang.
    assert not would_cycle({"bo": "cy", "cy": "bo"}, "ada", "bo")


@given(electorates())
def test_delegating_is_the_same_as_casting_the_delegates_vote(
    e: tuple[dict[str, int], dict[str, str], dict[str, str]],
) -> None:
    power, votes, delegates = e
    flattened = {m: votes[c.voter] for m, c in effective_votes(power, votes, delegates).items()}
    direct = tally("basic", power, flattened, {})
    assert tally("basic", power, votes, delegates).counts == direct.counts


# -- determinism ----------------------------------------------------------------------------


@given(rankings(), st.randoms(use_true_random=False))
def test_permuting_the_input_maps_changes_nothing(
    election: tuple[list[str], list[tuple[list[str], int]]], rnd: random.Random
) -> None:
    options, ballots = election
    power, votes = as_votes(ballots)
    # Some voters delegate instead, some chains go nowhere: the order must not matter.
    delegates = {f"v{i}": f"v{rnd.randrange(len(ballots) + 2)}" for i in range(len(ballots))}
    for kind in ("approval", "ranked-choice"):
        kept = {v: c for v, c in votes.items() if rnd.random() < 0.6}
        first = tally(kind, power, kept, delegates, options)
        again = tally(
            kind,
            immutables.Map(shuffled(power, rnd)),
            immutables.Map(shuffled(kept, rnd)),
            shuffled(delegates, rnd),
            options,
        )
        assert again == first
        assert canonical(again.to_json()) == canonical(first.to_json())


# -- approval -------------------------------------------------------------------------------


@given(rankings())
def test_each_approved_option_gets_the_ballots_full_weight(
    election: tuple[list[str], list[tuple[list[str], int]]],
) -> None:
    options, ballots = election
    power, votes = as_votes(ballots)
    result = tally("approval", power, votes, {}, options)
    assert list(result.counts) == options
    for option in options:
        assert result.counts[option] == sum(w for choice, w in ballots if option in choice)
    assert result.participating == sum(w for _, w in ballots)
    assert result.voters == sum(1 for _, w in ballots if w > 0)
    assert result.rounds == []
    best = max(result.counts.values())
    if best == 0:
        assert result.winner is None
    else:
        assert result.winner == next(o for o in options if result.counts[o] == best)


def test_an_approval_tie_goes_to_the_option_listed_first() -> None:
    power = {"ada": 2, "bo": 2, "cy": 1}
    votes = {"ada": ["fir", "elm"], "bo": ["ash"], "cy": ["elm"]}
    result = tally("approval", power, votes, {}, ["ash", "elm", "fir"])
    assert result.counts == {"ash": 2, "elm": 3, "fir": 2}
    assert result.winner == "elm"
    assert tally("approval", power, votes, {}, ["fir", "elm", "ash"]).winner == "elm"
    tied = tally(
        "approval", {"ada": 1, "bo": 1}, {"ada": ["fir"], "bo": ["ash"]}, {}, ["fir", "ash"]
    )
    assert tied.winner == "fir"


# -- ranked choice --------------------------------------------------------------------------


@settings(max_examples=300)
@given(rankings())
def test_instant_runoff_agrees_with_a_naive_recount(
    election: tuple[list[str], list[tuple[list[str], int]]],
) -> None:
    options, ballots = election
    power, votes = as_votes(ballots)
    result = tally("ranked-choice", power, votes, {}, options)
    rounds, winner = naive_irv(options, ballots)
    assert result.rounds == rounds
    assert result.winner == winner
    assert result.counts == rounds[-1]
    assert result.participating == sum(rounds[0].values())
    final = result.rounds[-1]
    if winner is not None:
        assert 2 * final[winner] > sum(final.values()) or list(final) == [winner]
    else:
        assert sum(final.values()) == 0
    # Each round drops exactly one option, and weight only ever leaves (exhausted ballots).
    for before, after in zip(result.rounds, result.rounds[1:], strict=False):
        assert len(after) == len(before) - 1 and set(after) < set(before)
        assert sum(after.values()) <= sum(before.values())


def test_exhausted_ballots_drop_out_of_the_majority() -> None:
    options = ["ash", "birch", "cedar"]
    power = {"a1": 4, "b1": 3, "c1": 2, "c2": 1}
    votes = {"a1": ["ash"], "b1": ["birch"], "c1": ["cedar", "birch"], "c2": ["cedar"]}
    result = tally("ranked-choice", power, votes, {}, options)
    assert result.rounds == [
        {"ash": 4, "birch": 3, "cedar": 3},  # cedar ties birch at the bottom; listed last
        {"ash": 4, "birch": 5},  # c2 ranked only cedar: exhausted, 9 in play
    ]
    assert result.winner == "birch"
    assert result.counts == {"ash": 4, "birch": 5}
    assert result.participating == 10


def test_a_perfect_tie_eliminates_the_option_listed_last() -> None:
    power = {"ada": 1, "bo": 1}
    votes = {"ada": ["ash"], "bo": ["birch"]}
    result = tally("ranked-choice", power, votes, {}, ["birch", "ash"])
    assert result.rounds == [{"birch": 1, "ash": 1}, {"birch": 1}]
    assert result.winner == "birch"


def test_no_ballots_means_no_winner() -> None:
    result = tally("ranked-choice", {"ada": 3}, {}, {}, ["ash", "birch"])
    assert result.rounds == [{"ash": 0, "birch": 0}]
    assert result.winner is None
    assert "winner" not in result.to_json()


# -- choices --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "choice", "options", "message"),
    [
        ("basic", "yes", None, "one of"),
        ("basic", ["for"], None, "one of"),
        ("basic", "for", ["for"], "no options"),
        ("approval", "ash", ["ash"], "list of approved options"),
        ("approval", [], ["ash"], "at least one option"),
        ("approval", ["ash", "oak"], ["ash"], "unknown option 'oak'"),
        ("approval", ["ash", "ash"], ["ash"], "more than once"),
        ("approval", [["ash"]], ["ash"], "unknown option"),
        ("ranked-choice", {"ash": 1}, ["ash"], "a ranking"),
        ("ranked-choice", ["ash", "elm", "ash"], ["ash", "elm"], "more than once"),
        ("ranked-choice", ["ash"], None, "non-empty list of options"),
        ("ranked-choice", ["ash"], ["ash", "ash"], "distinct"),
        ("plurality", "ash", ["ash"], "unknown vote kind"),
    ],
)
def test_malformed_choices_are_refused_with_a_reason(
    kind: str, choice: Any, options: list[str] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        validate_choice(kind, choice, options)


def test_well_formed_choices_pass() -> None:
    for choice in ("for", "against", "abstain"):
        validate_choice("basic", choice)
        validate_choice("basic", choice, [])
    validate_choice("approval", ["elm", "ash"], ["ash", "elm"])
    validate_choice("ranked-choice", ("elm",), ("ash", "elm"))


def test_a_malformed_ballot_in_a_tally_names_its_member() -> None:
    with pytest.raises(ValueError, match="vote of 'bo': unknown option 'oak'"):
        tally("approval", {"ada": 1}, {"ada": ["ash"], "bo": ["oak"]}, {}, ["ash"])
    with pytest.raises(ValueError, match="vote of 'bo'"):
        tally("basic", {"ada": 1}, {"ada": "for", "bo": ["unhashable"]}, {})


def test_to_json_holds_only_log_values() -> None:
    result = tally("ranked-choice", {"a": 2, "b": 1}, {"a": ["x", "y"], "b": ["y"]}, {}, ["x", "y"])
    doc = result.to_json()
    assert parse(canonical(doc)) == doc
    assert doc == {
        "kind": "ranked-choice",
        "counts": {"x": 2, "y": 1},
        "rounds": [{"x": 2, "y": 1}],
        "participating": 3,
        "voters": 2,
        "total_power": 3,
        "winner": "x",
    }


# -- passing --------------------------------------------------------------------------------

ALL = ["for", "against", "abstain"]


def basic(yes: int, no: int, abstain: int = 0, total: int | None = None) -> Tally:
    counts = {"for": yes, "against": no, "abstain": abstain}
    cast = yes + no + abstain
    return Tally("basic", counts, [], cast, cast, cast if total is None else total, None)


def test_exactly_two_thirds_passes_and_one_less_fails() -> None:
    assert passes(basic(20, 10), quorum_pct=0, quorum_counts=ALL, approval="two-thirds")[0]
    ok, why = passes(basic(19, 10), quorum_pct=0, quorum_counts=ALL, approval="two-thirds")
    assert not ok and why.startswith("not approved: 19 for, 10 against")
    assert passes(basic(30, 10), quorum_pct=0, quorum_counts=ALL, approval="three-quarters")[0]
    assert not passes(basic(29, 10), quorum_pct=0, quorum_counts=ALL, approval="three-quarters")[0]


def test_quorum_exactly_at_the_line_passes() -> None:
    ok, _ = passes(basic(12, 0, total=40), quorum_pct=30, quorum_counts=ALL, approval="majority")
    assert ok
    ok, why = passes(basic(11, 0, total=40), quorum_pct=30, quorum_counts=ALL, approval="majority")
    assert (ok, why) == (False, "quorum not reached: 11 of 12 needed")
    # Abstentions count toward quorum only when the charter says so.
    tally_ = basic(5, 0, 7, total=40)
    assert passes(tally_, quorum_pct=30, quorum_counts=ALL, approval="majority")[0]
    ok, why = passes(tally_, quorum_pct=30, quorum_counts=["for", "against"], approval="majority")
    assert (ok, why) == (False, "quorum not reached: 5 of 12 needed")


def test_abstentions_do_not_count_toward_approval_and_ties_fail() -> None:
    assert passes(basic(3, 1, 100), quorum_pct=50, quorum_counts=ALL, approval="three-quarters")[0]
    assert not passes(basic(4, 4, 1), quorum_pct=0, quorum_counts=ALL, approval="majority")[0]
    assert passes(basic(1, 0, 9), quorum_pct=0, quorum_counts=ALL, approval="unanimous")[0]
    assert not passes(basic(9, 1), quorum_pct=0, quorum_counts=ALL, approval="unanimous")[0]
    for rule in ("majority", "two-thirds", "three-quarters", "unanimous"):
        ok, _ = passes(basic(0, 0, 5), quorum_pct=0, quorum_counts=ALL, approval=rule)
        assert not ok, rule


@given(
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.integers(0, 4000),
    st.integers(0, 100),
    st.sampled_from(["majority", "two-thirds", "three-quarters", "unanimous"]),
)
def test_passes_matches_exact_fractions(
    yes: int, no: int, abstain: int, extra: int, pct: int, rule: str
) -> None:
    result = basic(yes, no, abstain, total=yes + no + abstain + extra)
    ok, _ = passes(result, quorum_pct=pct, quorum_counts=ALL, approval=rule)  # type: ignore[arg-type]
    quorum = result.total_power == 0 or Fraction(
        yes + no + abstain, result.total_power
    ) >= Fraction(pct, 100)
    share = Fraction(yes, yes + no) if yes + no else Fraction(0)
    approved = {
        "majority": yes > no,
        "two-thirds": yes > 0 and share >= Fraction(2, 3),
        "three-quarters": yes > 0 and share >= Fraction(3, 4),
        "unanimous": yes > 0 and no == 0,
    }[rule]
    assert ok == (quorum and approved)


def test_passes_refuses_what_it_cannot_decide() -> None:
    ranked = tally("ranked-choice", {"a": 1}, {"a": ["x"]}, {}, ["x"])
    with pytest.raises(ValueError, match="basic votes"):
        passes(ranked, quorum_pct=0, quorum_counts=ALL, approval="majority")
    with pytest.raises(ValueError, match="quorum_counts names 'yes'"):
        passes(basic(1, 0), quorum_pct=0, quorum_counts=["yes"], approval="majority")
    with pytest.raises(ValueError, match="0 to 100"):
        passes(basic(1, 0), quorum_pct=101, quorum_counts=ALL, approval="majority")
    with pytest.raises(ValueError, match="unknown approval rule"):
        passes(basic(1, 0), quorum_pct=0, quorum_counts=ALL, approval="most")  # type: ignore[arg-type]
