"""The arithmetic the federated rules recompute on replay: per-round Shapley values and the
privacy loss of the Gaussian mechanism.

Both are pure and exact — ``Fraction`` for Shapley, ``Decimal`` for the privacy loss — so a
verifier on any machine gets the very strings the hub logged. The hub's ServerApp calls the
same functions (``needed_coalitions`` and ``permutation`` say which coalitions it must
score), so what it logs is what replay expects.
"""

from __future__ import annotations

import hashlib
import re
from decimal import ROUND_CEILING, Context, Decimal
from fractions import Fraction
from math import factorial

from commonweal.errors import InvalidInput

__all__ = [
    "ALPHAS",
    "epsilon_spent",
    "format_value",
    "needed_coalitions",
    "permutation",
    "round_shapley",
]

_UTILITY = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,30})?")
_POSITIVE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,30})?")
_SCALE = 10**12
MAX_PLAYERS = 1000


def format_value(v: Fraction) -> str:
    """``v`` quantized to 12 decimals, ties to even, written without an exponent."""
    q = round(v * _SCALE)  # round() on a Fraction rounds half to even, exactly
    sign = "-" if q < 0 else ""
    whole, frac = divmod(abs(q), _SCALE)
    return f"{sign}{whole}.{frac:012d}"


def permutation(n: int, seed: int, k: int) -> list[int]:
    """The ``k``-th sampled order of ``n`` players: a Fisher-Yates shuffle driven by the
    byte stream SHA-256(f"{seed}:{k}"), then SHA-256 of each previous block, eight bytes
    (big-endian) a step. Anyone can redraw it; no library's generator is involved."""
    order = list(range(n))
    block = hashlib.sha256(f"{seed}:{k}".encode()).digest()
    stream, pos = block, 0
    for i in range(n - 1, 0, -1):
        if pos + 8 > len(stream):
            block = hashlib.sha256(block).digest()
            stream, pos = stream[pos:] + block, 0
        j = int.from_bytes(stream[pos : pos + 8], "big") % (i + 1)
        pos += 8
        order[i], order[j] = order[j], order[i]
    return order


def needed_coalitions(n: int, permutations: int, seed: int) -> list[int]:
    """The coalition masks (bit i = player i) whose utility a round must log: all 2^n for
    exact Shapley (``permutations == 0``), else every prefix the sampled orders visit."""
    if not 0 <= n <= MAX_PLAYERS:
        raise InvalidInput(f"a round values 0 to {MAX_PLAYERS} players, not {n}")
    if permutations == 0:
        if n > 20:
            raise InvalidInput(f"exact Shapley over {n} players needs 2^{n} coalitions; sample")
        return list(range(1 << n))
    masks = {0}
    for k in range(permutations):
        mask = 0
        for p in permutation(n, seed, k):
            mask |= 1 << p
            masks.add(mask)
    return sorted(masks)


def _utilities(utilities: dict[str, str], masks: list[int]) -> dict[int, Fraction]:
    out: dict[int, Fraction] = {}
    for mask in masks:
        text = utilities.get(str(mask))
        if text is None:
            raise InvalidInput(f"round-shapley: the utility of coalition {mask} is not logged")
        if not isinstance(text, str) or not _UTILITY.fullmatch(text):
            raise InvalidInput(f"round-shapley: utility {text!r} is not a decimal string")
        out[mask] = Fraction(text)
    return out


def round_shapley(
    players: list[str], utilities: dict[str, str], permutations: int, seed: int
) -> dict[str, str]:
    """Each player's Shapley value for one round, from the logged coalition utilities.

    ``permutations == 0``: exact, over the whole 2^n table. Otherwise the mean marginal
    contribution over ``permutations`` orders drawn by ``permutation(n, seed, k)``. Raises
    InvalidInput when a coalition the computation needs has no logged utility."""
    n = len(players)
    if permutations < 0:
        raise InvalidInput(f"round-shapley: permutations must be 0 or more, not {permutations}")
    u = _utilities(utilities, needed_coalitions(n, permutations, seed))
    values = [Fraction(0)] * n
    if permutations == 0:
        weights = [Fraction(factorial(s) * factorial(n - s - 1), factorial(n)) for s in range(n)]
        for mask, base in u.items():
            size = mask.bit_count()
            for i in range(n):
                if not mask >> i & 1:
                    values[i] += weights[size] * (u[mask | 1 << i] - base)
    else:
        for k in range(permutations):
            mask = 0
            for p in permutation(n, seed, k):
                values[p] += u[mask | 1 << p] - u[mask]
                mask |= 1 << p
        values = [v / permutations for v in values]
    return {p: format_value(v) for p, v in zip(players, values, strict=True)}


# The Rényi orders the privacy loss is minimised over: the grid of TensorFlow Privacy and
# Opacus (and so of Flower's accountant), 1.1 to 10.9 by tenths, then 12 to 63.
ALPHAS: tuple[Decimal, ...] = tuple(
    [Decimal(10 + x) / 10 for x in range(1, 100)] + [Decimal(a) for a in range(12, 64)]
)
_CTX = Context(prec=50)


def epsilon_spent(rounds: int, noise_multiplier: str, delta: str) -> str:
    """The (ε, δ) privacy loss of ``rounds`` releases of the Gaussian mechanism with this
    noise multiplier (noise std / clipping norm), as a decimal string with 6 decimals,
    rounded up.

    Rényi DP of one release at order α is α / (2 z²); ``rounds`` of them compose to
    rounds·α / (2 z²); the classic conversion gives ε = RDP(α) + ln(1/δ) / (α − 1),
    minimised over ``ALPHAS``. No amplification by sampling is claimed (a node takes part
    with all of its data), so this is an upper bound."""
    if type(rounds) is not int or rounds < 0:
        raise InvalidInput(f"rounds must be a count, not {rounds!r}")
    if not isinstance(noise_multiplier, str) or not _POSITIVE.fullmatch(noise_multiplier):
        raise InvalidInput(f"noise_multiplier {noise_multiplier!r} is not a decimal string")
    if not isinstance(delta, str) or not _POSITIVE.fullmatch(delta):
        raise InvalidInput(f"delta {delta!r} is not a decimal string")
    z, d = Decimal(noise_multiplier), Decimal(delta)
    if z <= 0 or not 0 < d < 1:
        raise InvalidInput(
            f"noise_multiplier must be above 0 and delta between 0 and 1 (got {z}, {d})"
        )
    if rounds == 0:
        return "0.000000"
    ln_inv_delta = _CTX.ln(_CTX.divide(1, d))
    per_alpha = _CTX.divide(rounds, _CTX.multiply(2, _CTX.multiply(z, z)))
    best = min(
        _CTX.add(_CTX.multiply(per_alpha, a), _CTX.divide(ln_inv_delta, a - 1)) for a in ALPHAS
    )
    return str(best.quantize(Decimal("0.000001"), rounding=ROUND_CEILING))
