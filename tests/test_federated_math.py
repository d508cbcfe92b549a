"""The arithmetic federated rounds are checked with: per-round Shapley values (exact and
sampled) and the privacy loss of the Gaussian mechanism, against Flower's own accountant."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonweal.community.federated_math import (
    ALPHAS,
    epsilon_spent,
    needed_coalitions,
    permutation,
    round_shapley,
)
from commonweal.errors import InvalidInput

PLAYERS = [f"{c}" * 64 for c in "abcdef"]


def table(n: int, draw: list[int]) -> dict[str, str]:
    """A utility per coalition of ``n`` players, from the drawn integers (in thousandths)."""
    return {str(m): str(Decimal(draw[m % len(draw)]) / 1000) for m in range(1 << n)}


def total(values: dict[str, str]) -> Fraction:
    return sum((Fraction(v) for v in values.values()), Fraction(0))


utilities_draw = st.lists(st.integers(-1000, 1000), min_size=1, max_size=64)


@given(st.integers(1, 6), utilities_draw)
@settings(max_examples=60, deadline=None)
def test_exact_values_share_out_the_whole_coalitions_utility(n: int, draw: list[int]) -> None:
    u = table(n, draw)
    values = round_shapley(PLAYERS[:n], u, 0, 0)
    gain = Fraction(u[str((1 << n) - 1)]) - Fraction(u["0"])
    # Each value is rounded to 12 decimals: the sum is within n half-units of the gain.
    assert abs(total(values) - gain) <= Fraction(n, 2 * 10**12)


@given(st.integers(2, 5), utilities_draw)
@settings(max_examples=60, deadline=None)
def test_players_who_add_the_same_to_every_coalition_get_the_same(n: int, draw: list[int]) -> None:
    # Utility depends on the coalition's size and on whether it holds player 0 or 1 only
    # through how many of the two it holds: players 0 and 1 are interchangeable.
    def u(mask: int) -> str:
        twins = (mask & 1) + (mask >> 1 & 1)
        rest = (mask >> 2).bit_count()
        return str(Decimal(draw[(twins * 7 + rest) % len(draw)]) / 1000)

    values = round_shapley(PLAYERS[:n], {str(m): u(m) for m in range(1 << n)}, 0, 0)
    assert values[PLAYERS[0]] == values[PLAYERS[1]]


@given(st.integers(2, 5), utilities_draw)
@settings(max_examples=60, deadline=None)
def test_a_player_who_adds_nothing_is_worth_nothing(n: int, draw: list[int]) -> None:
    null = n - 1  # the last player: utilities ignore their bit
    u = {str(m): table(n, draw)[str(m & ~(1 << null))] for m in range(1 << n)}
    values = round_shapley(PLAYERS[:n], u, 0, 0)
    assert values[PLAYERS[null]] == "0.000000000000"


def test_exact_values_of_a_small_game_are_the_textbook_ones() -> None:
    # Glove game: player 0 holds a left glove, players 1 and 2 a right one each; a pair is
    # worth 1. Shapley: 2/3, 1/6, 1/6.
    u = {str(m): "1" if m & 1 and m & 6 else "0" for m in range(8)}
    assert round_shapley(PLAYERS[:3], u, 0, 0) == {
        PLAYERS[0]: "0.666666666667",
        PLAYERS[1]: "0.166666666667",
        PLAYERS[2]: "0.166666666667",
    }


@given(st.integers(1, 3), utilities_draw)
@settings(max_examples=30, deadline=None)
def test_sampling_converges_on_the_exact_values(n: int, draw: list[int]) -> None:
    u = table(n, draw)
    exact = round_shapley(PLAYERS[:n], u, 0, 0)
    sampled = round_shapley(PLAYERS[:n], u, 600, 3)
    spread = max(abs(Fraction(x)) for x in u.values()) * 2
    for p in exact:
        # 600 orders of at most 3! = 6: each order's share is within a few percent.
        assert abs(Fraction(sampled[p]) - Fraction(exact[p])) <= spread / 5


def test_sampling_over_every_order_once_is_exact() -> None:
    # When the sampled orders happen to be each of the n! orders equally often, the mean
    # marginal is the Shapley value: count the orders the sampler draws for n = 3.
    orders = [tuple(permutation(3, 11, k)) for k in range(6000)]
    counts = {o: orders.count(o) for o in itertools.permutations(range(3))}
    assert min(counts.values()) > 850 and max(counts.values()) < 1150  # uniform-ish


def test_the_sampler_needs_only_the_prefixes_it_visits_and_refuses_a_missing_one() -> None:
    masks = needed_coalitions(12, 5, 7)
    assert masks[0] == 0 and (1 << 12) - 1 in masks and len(masks) <= 1 + 5 * 12
    u = {str(m): str(m.bit_count()) for m in masks}
    values = round_shapley([f"{i:064x}" for i in range(12)], u, 5, 7)
    assert all(v == "1.000000000000" for v in values.values())
    del u[str(masks[3])]
    with pytest.raises(InvalidInput, match="not logged"):
        round_shapley([f"{i:064x}" for i in range(12)], u, 5, 7)


@given(st.integers(1, 300), st.integers(1, 60), st.sampled_from(["1e-5", "1e-3", "1e-7"]))
@settings(max_examples=80, deadline=None)
def test_epsilon_grows_with_rounds_and_shrinks_with_more_noise(
    rounds: int, tenths: int, delta: str
) -> None:
    d = format(Decimal(delta), "f")
    z = str(Decimal(tenths) / 10 + Decimal("0.3"))
    z_more = str(Decimal(z) + Decimal("0.5"))
    eps = Decimal(epsilon_spent(rounds, z, d))
    assert Decimal(epsilon_spent(rounds + 1, z, d)) >= eps > 0
    assert Decimal(epsilon_spent(rounds, z_more, d)) <= eps


def test_no_rounds_spend_nothing_and_bad_inputs_are_refused() -> None:
    assert epsilon_spent(0, "1.0", "0.00001") == "0.000000"
    with pytest.raises(InvalidInput, match="noise_multiplier"):
        epsilon_spent(3, "0", "0.00001")
    with pytest.raises(InvalidInput, match="delta"):
        epsilon_spent(3, "1.0", "1e-5")


@pytest.mark.parametrize(
    ("z", "rounds", "delta"),
    [("1.0", 5, "0.00001"), ("0.8", 50, "0.00001"), ("2.0", 1, "0.000001"), ("5", 200, "0.001")],
)
def test_epsilon_agrees_with_flowers_rdp_accountant(z: str, rounds: int, delta: str) -> None:
    accounting = pytest.importorskip("flwr.supercore.privacy_accounting")
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    config = accounting.PrivacyConfig(
        target_delta=float(delta),
        population_size=10,
        neighboring_relation=accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
        sampling_method=accounting.SamplingMethod.NO_AMPLIFICATION,
    )
    event = accounting.GaussianPrivacyEvent(float(z), 10, 10)

    def flower_epsilon(orders: tuple[float, ...]) -> float:
        acc = RdpAccountant(config, orders=orders)
        acc.compose(event, rounds)
        return float(acc.get_epsilon(float(delta)))

    ours = float(epsilon_spent(rounds, z, delta))
    # Flower converts RDP to (eps, delta) with the tighter conversion of Balle et al.
    # (2020); ours is the classic one, an upper bound no more than ~15% above it.
    best = flower_epsilon(tuple(float(a) for a in ALPHAS))
    assert best <= ours <= best * 1.15
    # Order by order, undo Flower's conversion to get its RDP, apply the classic one: the
    # minimum is ours (so both compute the same Gaussian RDP over the same grid).
    d = float(delta)
    classic = []
    for a in (float(x) for x in ALPHAS):
        rdp = flower_epsilon((a,)) - math.log1p(-1 / a) + math.log(d * a) / (a - 1)
        classic.append(rdp + math.log(1 / d) / (a - 1))
    assert ours == pytest.approx(min(classic), abs=2e-6)
