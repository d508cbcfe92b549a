"""Truncated Monte Carlo Shapley over members: exactness, the axioms, determinism, truncation."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from commonweal.ml.member_shapley import ShapleyEstimate, tmc_shapley

Coalition = tuple[int, ...]
Table = dict[Coalition, float]


def _all_coalitions(n: int) -> list[Coalition]:
    return [c for r in range(n + 1) for c in itertools.combinations(range(n), r)]


@st.composite
def games(draw: st.DrawFn, min_players: int = 1, max_players: int = 6) -> tuple[int, Table]:
    """A game given by a random utility table over every coalition of ``n`` players."""
    n = draw(st.integers(min_players, max_players))
    coalitions = _all_coalitions(n)
    values = draw(
        st.lists(
            st.floats(-10, 10, allow_nan=False, allow_infinity=False),
            min_size=len(coalitions),
            max_size=len(coalitions),
        )
    )
    return n, dict(zip(coalitions, values, strict=True))


class Recorder:
    """A utility that looks coalitions up in a table and remembers every call it gets."""

    def __init__(self, table: Table | Callable[[Coalition], float]) -> None:
        self._table = table
        self.calls: list[Coalition] = []

    def __call__(self, coalition: Coalition) -> float:
        self.calls.append(coalition)
        if callable(self._table):
            return self._table(coalition)
        return self._table[coalition]


def _brute_force_shapley(n: int, table: Table) -> np.ndarray:
    """The subset formula with weights |S|! (n - |S| - 1)! / n!."""
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for r in range(n):
            weight = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for s in itertools.combinations(others, r):
                values[i] += weight * (table[tuple(sorted((*s, i)))] - table[s])
    return values


def _average_over_all_orders(n: int, table: Table) -> np.ndarray:
    """The definition: each player's marginal contribution averaged over all n! orders."""
    totals = np.zeros(n)
    for order in itertools.permutations(range(n)):
        prefix: Coalition = ()
        for p in order:
            grown = tuple(sorted((*prefix, p)))
            totals[p] += table[grown] - table[prefix]
            prefix = grown
    return totals / math.factorial(n)


def _walked_coalitions(
    n: int, table: Table, permutations: int, seed: int, tol: float
) -> set[Coalition]:
    """The coalitions the documented rule evaluates: permutation t is the t-th draw of
    Generator(PCG64(seed)).permutation(n), walked until |U(all) - U(prefix)| <= tol*|U(all)|."""
    full = table[tuple(range(n))]
    seen = {tuple(range(n)), ()}
    rng = np.random.Generator(np.random.PCG64(seed))
    for _ in range(permutations):
        prefix: Coalition = ()
        for p in rng.permutation(n).tolist():
            if tol > 0 and abs(full - table[prefix]) <= tol * abs(full):
                break
            prefix = tuple(sorted((*prefix, p)))
            seen.add(prefix)
    return seen


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.allclose(a, b, rtol=1e-9, atol=1e-9))


# --- exact mode -------------------------------------------------------------------------------


@given(games(), st.integers(0, 3), st.integers(0, 2**32))
def test_exact_mode_equals_brute_force_shapley(
    game: tuple[int, Table], extra: int, seed: int
) -> None:
    n, table = game
    budget = math.factorial(n) + extra
    recorder = Recorder(table)
    result = tmc_shapley(n, recorder, permutations=budget, seed=seed)
    assert result.exact
    assert result.permutations == math.factorial(n)
    assert _close(result.values, _brute_force_shapley(n, table))
    assert _close(result.values, _average_over_all_orders(n, table))
    assert np.array_equal(result.stderr, np.zeros(n))
    assert result.utility_calls == 2**n == len(recorder.calls) == len(set(recorder.calls))
    assert result.full_utility == table[tuple(range(n))]
    assert result.empty_utility == table[()]


@given(games(max_players=5), st.floats(0.01, 0.99))
def test_exact_mode_ignores_truncation(game: tuple[int, Table], truncation: float) -> None:
    n, table = game
    plain = tmc_shapley(n, table.__getitem__, permutations=720, seed=0)
    truncated = tmc_shapley(n, table.__getitem__, permutations=720, seed=0, truncation=truncation)
    assert truncated.exact
    assert truncated.values.tobytes() == plain.values.tobytes()


def test_one_member_gets_the_whole_gain_exactly() -> None:
    result = tmc_shapley(1, {(): 0.25, (0,): 0.75}.__getitem__, permutations=1, seed=0)
    assert result.exact
    assert result.values.tolist() == [0.5]
    assert result.permutations == 1


def test_exact_mode_starts_at_n_factorial_permutations() -> None:
    assert not tmc_shapley(4, _squares, permutations=23, seed=0).exact
    assert tmc_shapley(4, _squares, permutations=24, seed=0).exact
    ten = tmc_shapley(10, _squares, permutations=math.factorial(10), seed=0)
    assert ten.exact and ten.utility_calls == 1024
    # Under |S|^2 the k-th of n members adds 2k - 1, each position equally likely: mean n.
    assert np.allclose(ten.values, 10.0)


# --- the Shapley axioms, in both modes --------------------------------------------------------


@given(games(max_players=8), st.integers(1, 30), st.integers(0, 2**32))
def test_values_sum_to_the_gain_of_the_full_coalition(
    game: tuple[int, Table], permutations: int, seed: int
) -> None:
    n, table = game
    result = tmc_shapley(n, table.__getitem__, permutations=permutations, seed=seed)
    gain = table[tuple(range(n))] - table[()]
    assert math.isclose(float(result.values.sum()), gain, rel_tol=1e-9, abs_tol=1e-9)


@given(games(min_players=2, max_players=6), st.integers(0, 2**32))
def test_symmetric_members_get_equal_values(game: tuple[int, Table], seed: int) -> None:
    n, table = game

    def swap(coalition: Coalition) -> Coalition:
        return tuple(sorted({0: 1, 1: 0}.get(p, p) for p in coalition))

    # U(S) = U(swap(S)): members 0 and 1 add the same to every coalition holding neither.
    symmetric = {s: table[min(s, swap(s))] for s in table}
    result = tmc_shapley(n, symmetric.__getitem__, permutations=math.factorial(n), seed=seed)
    assert result.exact
    assert math.isclose(result.values[0], result.values[1], rel_tol=1e-9, abs_tol=1e-9)


@given(games(min_players=2, max_players=8), st.integers(1, 50), st.integers(0, 2**32))
def test_member_who_adds_nothing_gets_exactly_zero(
    game: tuple[int, Table], permutations: int, seed: int
) -> None:
    n, table = game
    null = n - 1
    # U(S) ignores the last member entirely.
    with_null = {s: table[tuple(p for p in s if p != null)] for s in table}
    result = tmc_shapley(n, with_null.__getitem__, permutations=permutations, seed=seed)
    assert result.values[null] == 0.0


# --- sampling ---------------------------------------------------------------------------------


@given(
    st.lists(st.integers(-1000, 1000), min_size=5, max_size=12),
    st.integers(1, 40),
    st.integers(0, 2**32),
)
def test_additive_game_is_exact_for_every_sampled_permutation(
    weights: list[int], permutations: int, seed: int
) -> None:
    # Integer weights make every marginal, sum and mean exact in floating point, so any
    # deviation from the weights is an error in the walk, not rounding.
    n = len(weights)
    result = tmc_shapley(
        n, lambda s: float(sum(weights[p] for p in s)), permutations=permutations, seed=seed
    )
    assert not result.exact
    assert result.values.tolist() == [float(w) for w in weights]
    if permutations > 1:
        assert result.stderr.tolist() == [0.0] * n
    else:
        assert np.isnan(result.stderr).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_values_converge_to_the_exact_values(seed: int) -> None:
    n = 7
    rng = np.random.default_rng(1234)
    table = {s: float(rng.uniform()) for s in _all_coalitions(n)}
    exact = tmc_shapley(n, table.__getitem__, permutations=math.factorial(n), seed=seed)
    sampled = tmc_shapley(n, table.__getitem__, permutations=3000, seed=seed)
    assert exact.exact and not sampled.exact
    assert np.all(sampled.stderr > 0)
    assert np.all(np.abs(sampled.values - exact.values) <= 5 * sampled.stderr)
    assert np.max(np.abs(sampled.values - exact.values)) < 0.02


@given(games(min_players=4, max_players=8), st.integers(1, 20), st.integers(0, 2**32))
def test_same_seed_gives_identical_bits(
    game: tuple[int, Table], permutations: int, seed: int
) -> None:
    n, table = game
    first = tmc_shapley(n, table.__getitem__, permutations=permutations, seed=seed)
    second = tmc_shapley(n, dict(table).__getitem__, permutations=permutations, seed=seed)
    assert first.values.tobytes() == second.values.tobytes()
    assert first.stderr.tobytes() == second.stderr.tobytes()
    assert first.utility_calls == second.utility_calls


def test_different_seeds_give_different_estimates() -> None:
    n = 8
    rng = np.random.default_rng(99)
    table = {s: float(rng.uniform()) for s in _all_coalitions(n)}
    a = tmc_shapley(n, table.__getitem__, permutations=10, seed=0)
    b = tmc_shapley(n, table.__getitem__, permutations=10, seed=1)
    assert not np.array_equal(a.values, b.values)


def _squares(coalition: Coalition) -> float:
    # The k-th member added (1-based) contributes k^2 - (k-1)^2 = 2k - 1: the values of one
    # sampled permutation spell out the order it was walked in.
    return float(len(coalition) ** 2)


@given(st.integers(4, 12), st.integers(0, 2**64))
def test_permutation_is_the_pcg64_generator_draw(n: int, seed: int) -> None:
    result = tmc_shapley(n, _squares, permutations=1, seed=seed)
    order = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    expected = np.zeros(n)
    expected[order] = 2 * np.arange(n) + 1
    assert np.array_equal(result.values, expected)


def test_permutation_stream_is_pinned() -> None:
    # Golden values: if a NumPy release changes Generator.permutation over PCG64, past
    # valuations stop being reproducible and this test says so.
    result = tmc_shapley(5, _squares, permutations=1, seed=0)
    assert result.values.tolist() == [7.0, 9.0, 1.0, 5.0, 3.0]  # order 2, 4, 3, 0, 1
    three = tmc_shapley(5, _squares, permutations=3, seed=0)
    # orders [2, 4, 3, 0, 1], [4, 1, 2, 0, 3], [0, 2, 3, 4, 1]
    assert three.values.tolist() == [
        (7 + 7 + 1) / 3,
        (9 + 3 + 9) / 3,
        3.0,
        (5 + 9 + 5) / 3,
        (3 + 1 + 7) / 3,
    ]


# --- memoisation, coalitions, progress --------------------------------------------------------


@given(games(min_players=3, max_players=7), st.integers(1, 60), st.integers(0, 2**32))
def test_each_coalition_is_evaluated_once_as_a_sorted_tuple(
    game: tuple[int, Table], permutations: int, seed: int
) -> None:
    n, table = game
    if math.factorial(n) <= permutations:
        permutations = math.factorial(n) - 1
    recorder = Recorder(table)
    result = tmc_shapley(n, recorder, permutations=permutations, seed=seed)
    assert max(Counter(recorder.calls).values()) == 1
    assert result.utility_calls == len(recorder.calls)
    assert () in recorder.calls and tuple(range(n)) in recorder.calls
    for coalition in recorder.calls:
        assert isinstance(coalition, tuple)
        assert all(type(p) is int for p in coalition)
        assert list(coalition) == sorted(set(coalition))
    assert set(recorder.calls) == _walked_coalitions(n, table, permutations, seed, 0.0)


def test_progress_reports_each_sampled_permutation() -> None:
    seen: list[tuple[int, int]] = []
    tmc_shapley(6, _squares, permutations=7, seed=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(k, 7) for k in range(1, 8)]


def test_progress_reports_each_coalition_in_exact_mode() -> None:
    seen: list[tuple[int, int]] = []
    tmc_shapley(4, _squares, permutations=24, seed=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(k, 16) for k in range(1, 17)]


# --- truncation -------------------------------------------------------------------------------


@given(
    games(min_players=4, max_players=8),
    st.integers(1, 23),  # below 4!, so always sampled
    st.integers(0, 2**32),
    st.floats(0.001, 0.999),
)
def test_truncation_evaluates_nothing_past_the_truncation_point(
    game: tuple[int, Table], permutations: int, seed: int, truncation: float
) -> None:
    n, table = game
    recorder = Recorder(table)
    result = tmc_shapley(n, recorder, permutations=permutations, seed=seed, truncation=truncation)
    assert not result.exact
    assert set(recorder.calls) == _walked_coalitions(n, table, permutations, seed, truncation)
    untruncated = tmc_shapley(n, table.__getitem__, permutations=permutations, seed=seed)
    assert result.utility_calls <= untruncated.utility_calls
    # Each permutation stops within truncation * |U(all)| of the full gain.
    gain = result.full_utility - result.empty_utility
    shortfall = abs(float(result.values.sum()) - gain)
    assert shortfall <= truncation * abs(result.full_utility) + 1e-9


@pytest.mark.parametrize("seed", range(5))
def test_truncation_stops_right_after_the_member_who_decides(seed: int) -> None:
    # Member 0 alone decides the outcome: once 0 is in, the prefix equals U(all) and the walk
    # stops, so only prefixes up to and including 0 are ever trained on.
    n = 9

    def dictator(coalition: Coalition) -> float:
        return 1.0 if 0 in coalition else 0.0

    recorder = Recorder(dictator)
    result = tmc_shapley(n, recorder, permutations=1, seed=seed, truncation=0.5)
    order = np.random.Generator(np.random.PCG64(seed)).permutation(n).tolist()
    stop = order.index(0)
    expected = {tuple(sorted(order[: k + 1])) for k in range(stop + 1)}
    assert set(recorder.calls) == expected | {(), tuple(range(n))}
    assert result.values.tolist() == [1.0] + [0.0] * (n - 1)


def test_zero_truncation_walks_on_after_the_prefix_reaches_the_full_utility() -> None:
    # U reaches U(all) at two members, dips, and comes back: with truncation 0 the later
    # members' marginals still count, so nothing is cut off.
    n = 6

    def bumpy(coalition: Coalition) -> float:
        return 1.0 if len(coalition) in (2, n) else 0.0

    table = {s: bumpy(s) for s in _all_coalitions(n)}
    recorder = Recorder(table)
    result = tmc_shapley(n, recorder, permutations=5, seed=11)
    assert set(recorder.calls) == _walked_coalitions(n, table, 5, 11, 0.0)
    expected = np.zeros(n)
    rng = np.random.Generator(np.random.PCG64(11))
    for _ in range(5):
        order = rng.permutation(n)
        expected[order[1]] += 1.0  # reaches U(all) ...
        expected[order[2]] -= 1.0  # ... dips ...
        expected[order[-1]] += 1.0  # ... and comes back
    assert result.values.tolist() == (expected / 5).tolist()


def test_truncation_when_the_empty_coalition_is_already_close_enough_gives_all_zeros() -> None:
    recorder = Recorder(lambda s: 0.8 + 0.01 * len(s))
    result = tmc_shapley(6, recorder, permutations=10, seed=0, truncation=0.1)
    assert result.values.tolist() == [0.0] * 6
    assert set(recorder.calls) == {(), tuple(range(6))}


# --- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_players": 0}, "n_players"),
        ({"n_players": 2.0}, "n_players"),
        ({"n_players": True}, "n_players"),
        ({"permutations": 0}, "permutations"),
        ({"permutations": 1.5}, "permutations"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.0}, "seed"),
        ({"seed": None}, "seed"),
        ({"truncation": -0.1}, "truncation"),
        ({"truncation": 1.0}, "truncation"),
        ({"truncation": float("nan")}, "truncation"),
        ({"truncation": "0.1"}, "truncation"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs: dict[str, Any], name: str) -> None:
    arguments: dict[str, Any] = {"n_players": 3, "permutations": 10, "seed": 0}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=name):
        tmc_shapley(utility=_squares, **arguments)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, "0.5"])
def test_utility_must_return_a_finite_number(bad: Any) -> None:
    def broken(coalition: Coalition) -> Any:
        return bad if len(coalition) == 1 else 0.0

    with pytest.raises(ValueError, match="utility"):
        tmc_shapley(3, broken, permutations=2, seed=0)


def test_numpy_integers_are_accepted_and_results_are_read_only() -> None:
    five: Any = np.int64(5)
    four: Any = np.int64(4)
    seven: Any = np.uint32(7)
    result = tmc_shapley(five, _squares, permutations=four, seed=seven)
    assert (
        result.values.tolist() == tmc_shapley(5, _squares, permutations=4, seed=7).values.tolist()
    )
    assert isinstance(result, ShapleyEstimate)
    with pytest.raises(ValueError):
        result.values[0] = 1.0
