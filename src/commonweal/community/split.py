"""Splitting an integer amount pro rata, conserved exactly: the largest-remainder rule.

Shares, rewards and payouts are integers in the smallest unit. A pro-rata split of ``total``
by non-negative integer ``weights`` gives each party the floor of its exact share, then hands
the units left over to the largest fractional remainders — ties to the earlier party, so the
result is a pure function of the inputs that anyone replaying the log recomputes exactly.
Only integers are used (no floats): the remainders are compared as exact fractions.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["largest_remainder"]


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights``; the parts sum to ``total`` exactly.

    Raises ValueError for a negative total or weight, or when every weight is zero and
    there is something to split."""
    if type(total) is not int or total < 0:
        raise ValueError(f"total must be a non-negative integer, got {total!r}")
    if any(type(w) is not int or w < 0 for w in weights):
        raise ValueError("weights must be non-negative integers")
    whole = sum(weights)
    if whole == 0:
        if total:
            raise ValueError("cannot split a positive total when every weight is zero")
        return [0] * len(weights)
    parts = [total * w // whole for w in weights]
    # The remainder of party i is (total * w_i) mod whole, over ``whole``: comparing the
    # numerators compares the fractions exactly.
    left = total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:left]:
        parts[i] += 1
    return parts
