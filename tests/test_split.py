"""The largest-remainder rule: conserved, fair to within one unit, deterministic."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commonweal.community.split import largest_remainder

weights = st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=40)


@given(st.integers(min_value=0, max_value=10**15), weights)
def test_parts_sum_to_the_total_and_stay_within_one_unit(total: int, ws: list[int]) -> None:
    if sum(ws) == 0:
        return
    parts = largest_remainder(total, ws)
    assert sum(parts) == total
    for part, w in zip(parts, ws, strict=True):
        exact = Fraction(total * w, sum(ws))
        assert exact - 1 < part < exact + 1
        assert part >= 0


@given(st.integers(min_value=0, max_value=10**9), weights)
def test_the_leftover_goes_to_the_largest_remainders(total: int, ws: list[int]) -> None:
    if sum(ws) == 0:
        return
    parts = largest_remainder(total, ws)
    got_extra = [p > total * w // sum(ws) for p, w in zip(parts, ws, strict=True)]
    rem = [Fraction(total * w, sum(ws)) % 1 for w in ws]
    for i, extra in enumerate(got_extra):
        for j, other in enumerate(got_extra):
            if extra and not other:
                assert rem[i] > rem[j] or (rem[i] == rem[j] and i < j)


def test_ties_go_to_the_earlier_party() -> None:
    assert largest_remainder(1, [1, 1, 1]) == [1, 0, 0]
    assert largest_remainder(2, [1, 1, 1]) == [1, 1, 0]
    assert largest_remainder(100, [1, 1, 1]) == [34, 33, 33]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="every weight is zero"):
        largest_remainder(5, [0, 0])
    assert largest_remainder(0, [0, 0]) == [0, 0]
    with pytest.raises(ValueError, match="non-negative"):
        largest_remainder(-1, [1])
    with pytest.raises(ValueError, match="weights"):
        largest_remainder(1, [1, -1])
