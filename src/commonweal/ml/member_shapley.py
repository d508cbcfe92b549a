"""Shapley values of community members on the community's real model, by truncated Monte Carlo.

The players are members (indices ``0 .. n_players - 1``); the caller's ``utility`` takes a
coalition, as a sorted tuple of member indices, and returns how good the model is when it is
trained on the union of those members' items (in practice the real trainer's accuracy on the
community's evaluation set). ``utility(())`` is asked for too; what an empty coalition is worth
(the majority-class accuracy, or 0) is the caller's decision. Every coalition is evaluated at
most once: results are memoised per coalition, so a coalition that recurs across permutations
costs nothing, and ``utility_calls`` counts distinct coalitions.

Exact mode. When ``n_players! <= permutations`` the estimate is replaced by the exact Shapley
value, as if every permutation had been walked once: all ``2 ** n_players`` coalitions are
evaluated and each member's value is ``sum over S not containing i of
|S|! (n - |S| - 1)! / n! * (U(S + i) - U(S))``, which is the mean of the member's marginal
contribution over all ``n!`` orders (each ``S`` precedes ``i`` in ``|S|! (n - |S| - 1)!`` of
them). ``truncation`` is not applied there, ``stderr`` is 0 and ``exact`` is True. Communities
of 5-10 members usually land here (10! = 3,628,800 permutations, but only 1,024 coalitions).

Sampled mode (Ghorbani & Zou 2019, "Data Shapley", Algorithm 1). Permutation ``t`` (1-based) is
the ``t``-th call of ``rng.permutation(n_players)`` on ``rng =
numpy.random.Generator(numpy.random.PCG64(seed))``, and nothing else draws from ``rng``. Each
permutation is walked in order, adding one member at a time; the member's marginal contribution
is ``U(prefix + member) - U(prefix)``. Truncation rule, checked *before* each member is added
(the empty prefix included): when ``truncation > 0`` and

    |U(all) - U(prefix)| <= truncation * |U(all)|,

the walk stops; that member and every later member of the permutation get marginal 0, and no
further coalition of that permutation is evaluated. With ``truncation == 0`` nothing is ever
truncated (the paper's estimator without truncation). Unlike the paper's reference code this
compares against ``U(all)`` itself, not a mean over retrained full models, and stops on the
first prefix within tolerance rather than after several in a row: the caller's utility is
expected to be deterministic (a seeded trainer), so ``U(all)`` has no noise to average away.

Efficiency. A walked permutation's marginals telescope, so without truncation each permutation's
marginals sum to ``U(all) - U(())`` in exact arithmetic and so does their mean, the estimate;
in floating point they agree up to rounding. A truncated permutation's marginals sum to
``U(prefix) - U(())`` for the prefix where it stopped, so its shortfall ``U(all) - U(prefix)``
is at most ``truncation * |U(all)|`` in magnitude; the same bound holds for the mean, i.e.
``|sum(values) - (U(all) - U(()))| <= truncation * |U(all)|`` up to rounding. In exact mode the
values sum to ``U(all) - U(())`` up to rounding.

Determinism. Given the same arguments and a utility that returns the same numbers, the result
is bit-identical from run to run: one thread, coalitions evaluated in a fixed order, marginals
accumulated permutation by permutation in sampling order (exact mode: coalitions by size, then
in ``itertools.combinations`` order). The permutation stream is NumPy's ``Generator.permutation``
over PCG64; the PCG64 bit stream is fixed, and ``permutation`` uses integer arithmetic only, but
NumPy's policy only promises the same stream on the same NumPy build, so the test suite pins a
golden stream to catch a NumPy release that changes it.
"""

from __future__ import annotations

import bisect
import itertools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["ShapleyEstimate", "tmc_shapley"]

Coalition = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class ShapleyEstimate:
    """Per-member Shapley values and how they were obtained. The arrays are read-only."""

    values: NDArray[np.float64]
    """Estimated (or, when ``exact``, exact) Shapley value of each member, by index."""
    stderr: NDArray[np.float64]
    """Standard error of each value over the sampled permutations (sample standard deviation,
    ddof=1, over the square root of ``permutations``); 0 when ``exact``; NaN when a single
    permutation was sampled, as one sample says nothing about spread."""
    permutations: int
    """Permutations the values average over: the number sampled, or ``n_players!`` when exact."""
    utility_calls: int
    """Distinct coalitions evaluated (each at most once), including the empty and full ones."""
    exact: bool
    """True when every permutation was accounted for, so the values are the Shapley values."""
    full_utility: float
    """``U(all members)``."""
    empty_utility: float
    """``U(())``."""


def _check_int(name: str, value: object, minimum: int) -> int:
    # bool is an int subclass; True players or True permutations is a bug, not a request.
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _factorial_at_most(n: int, limit: int) -> bool:
    """Whether ``n! <= limit``, without building a huge factorial for a large ``n``."""
    product = 1
    for k in range(2, n + 1):
        product *= k
        if product > limit:
            return False
    return True


def tmc_shapley(
    n_players: int,
    utility: Callable[[tuple[int, ...]], float],
    *,
    permutations: int,
    seed: int,
    truncation: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> ShapleyEstimate:
    """Shapley value of each of ``n_players`` members under ``utility``.

    ``utility`` receives coalitions as sorted tuples of member indices and must return a finite
    number; it is called at most once per coalition. ``permutations`` is the sampling budget;
    when ``n_players! <= permutations`` the exact values are computed instead (see the module
    docstring). ``seed`` fixes the permutations, via
    ``numpy.random.Generator(numpy.random.PCG64(seed))``. ``truncation`` in ``[0, 1)``: within a
    permutation, once ``|U(all) - U(prefix)| <= truncation * |U(all)|`` the remaining members
    get marginal 0 (0 disables truncation; ignored in exact mode). ``progress(done, total)`` is
    called after each sampled permutation (``total = permutations``), or in exact mode after
    each coalition is accounted for (``total = 2 ** n_players``).

    Raises ``ValueError`` naming the argument when one is out of range, and when ``utility``
    returns something that is not a finite number.
    """
    n, budget, seed, tolerance = _check_args(n_players, permutations, seed, truncation)
    value_of = _Memoised(utility)
    full_utility = value_of(tuple(range(n)))
    empty_utility = value_of(())

    if _factorial_at_most(n, budget):
        values = _exact_values(n, value_of, progress)
        stderr = np.zeros(n, dtype=np.float64)
        used = math.factorial(n)
        exact = True
    else:
        values, stderr = _sampled_values(
            n, value_of, budget, seed, tolerance, full_utility, empty_utility, progress
        )
        used = budget
        exact = False

    values.setflags(write=False)
    stderr.setflags(write=False)
    return ShapleyEstimate(
        values=values,
        stderr=stderr,
        permutations=used,
        utility_calls=len(value_of.cache),
        exact=exact,
        full_utility=full_utility,
        empty_utility=empty_utility,
    )


def _check_args(
    n_players: int, permutations: int, seed: int, truncation: float
) -> tuple[int, int, int, float]:
    """``n_players``, ``permutations``, ``seed`` and ``truncation`` as int, int, int and
    float, once each is in range."""
    n = _check_int("n_players", n_players, 1)
    budget = _check_int("permutations", permutations, 1)
    seed = _check_int("seed", seed, 0)
    if isinstance(truncation, bool) or not isinstance(truncation, int | float | np.floating):
        raise ValueError(f"truncation must be a number, got {type(truncation).__name__}")
    tolerance = float(truncation)
    if not 0.0 <= tolerance < 1.0:  # also rejects NaN
        raise ValueError(f"truncation must be in [0, 1), got {truncation!r}")
    return n, budget, seed, tolerance


class _Memoised:
    """The caller's utility, called at most once per coalition, its results checked to be
    finite real numbers; ``cache`` holds every coalition evaluated."""

    def __init__(self, utility: Callable[[Coalition], float]) -> None:
        self.utility = utility
        self.cache: dict[Coalition, float] = {}

    def __call__(self, coalition: Coalition) -> float:
        known = self.cache.get(coalition)
        if known is not None:
            return known
        raw = self.utility(coalition)
        if not isinstance(raw, numbers.Real):
            raise ValueError(
                f"utility must return a real number, got {type(raw).__name__} for {coalition}"
            )
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(f"utility returned {value} for coalition {coalition}")
        self.cache[coalition] = value
        return value


def _exact_values(
    n: int,
    value_of: Callable[[Coalition], float],
    progress: Callable[[int, int], None] | None,
) -> NDArray[np.float64]:
    total = 1 << n
    done = 0
    for size in range(n + 1):
        for coalition in itertools.combinations(range(n), size):
            value_of(coalition)
            done += 1
            if progress is not None:
                progress(done, total)

    # int / int is correctly rounded, so each weight is the float nearest the exact ratio.
    n_factorial = math.factorial(n)
    weights = [
        math.factorial(size) * math.factorial(n - size - 1) / n_factorial for size in range(n)
    ]
    values = np.zeros(n, dtype=np.float64)
    for player in range(n):
        others = [j for j in range(n) if j != player]
        value = 0.0
        for size in range(n):
            gain = 0.0
            for coalition in itertools.combinations(others, size):
                with_player = tuple(sorted((*coalition, player)))
                gain += value_of(with_player) - value_of(coalition)
            value += weights[size] * gain
        values[player] = value
    return values


def _sampled_values(
    n: int,
    value_of: Callable[[Coalition], float],
    budget: int,
    seed: int,
    tolerance: float,
    full_utility: float,
    empty_utility: float,
    progress: Callable[[int, int], None] | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rng = np.random.Generator(np.random.PCG64(seed))
    threshold = tolerance * abs(full_utility)
    sums = np.zeros(n, dtype=np.float64)
    # Welford's running mean and sum of squared deviations, for the standard error only; the
    # values themselves are sums / budget so that they telescope as documented.
    running_mean = np.zeros(n, dtype=np.float64)
    squared_deviations = np.zeros(n, dtype=np.float64)

    for t in range(1, budget + 1):
        order = rng.permutation(n)
        marginals = np.zeros(n, dtype=np.float64)
        prefix: list[int] = []
        previous = empty_utility
        for player in order.tolist():
            if tolerance > 0.0 and abs(full_utility - previous) <= threshold:
                break
            bisect.insort(prefix, player)
            current = value_of(tuple(prefix))
            marginals[player] = current - previous
            previous = current
        sums += marginals
        delta = marginals - running_mean
        running_mean += delta / t
        squared_deviations += delta * (marginals - running_mean)
        if progress is not None:
            progress(t, budget)

    values = sums / budget
    if budget > 1:
        stderr = np.sqrt(squared_deviations / (budget - 1) / budget)
    else:
        stderr = np.full(n, np.nan, dtype=np.float64)
    return values, stderr
