"""Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) for the values the log holds.

Signatures and Merkle leaves are computed over these bytes, so two honest implementations
must produce the same bytes for the same value. The log holds only strings, integers,
booleans, null, arrays and objects: money and shares are integers in the smallest unit, so
floats never need ES6 number formatting and are refused outright. Integers must fit an
IEEE double exactly (|n| < 2**53), as RFC 8785 requires.

For those values RFC 8785 is ``json.dumps`` with sorted keys, no whitespace and raw UTF-8,
with two differences this module handles: keys sort by UTF-16 code units (Python sorts by
code points, which differs only above U+FFFF), and lone surrogates are not valid I-JSON.
The stdlib encoder is C and about 3x faster than a pure-Python RFC 8785 encoder, which
matters on the append path; a property test pins it to the ``rfc8785`` package.
"""

from __future__ import annotations

import json
from typing import Any

from commonweal.errors import InvalidInput

__all__ = ["MAX_SAFE_INTEGER", "canonical", "canonical_str", "parse"]

MAX_SAFE_INTEGER = 2**53 - 1

_encode = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def _check(value: Any, path: str) -> bool:
    """Validate ``value``; return True if some object key needs UTF-16 ordering."""
    t = type(value)
    if t is str:
        if _has_surrogate(value):
            raise InvalidInput(f"{path}: string holds a lone surrogate, which is not valid JSON")
        return False
    if t is bool or value is None:
        return False
    if t is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return False
        raise InvalidInput(f"{path}: integer {value} is outside ±(2**53-1); send it as a string")
    if t is float:
        raise InvalidInput(
            f"{path}: floating-point number {value!r} is not allowed in the log; "
            "use an integer in the smallest unit"
        )
    if t is list or t is tuple:
        needs = False
        for i, item in enumerate(value):
            needs |= _check(item, f"{path}[{i}]")
        return needs
    if t is dict:
        needs = False
        for k, v in value.items():
            if type(k) is not str:
                raise InvalidInput(f"{path}: object key {k!r} is not a string")
            if _has_surrogate(k):
                raise InvalidInput(f"{path}: key holds a lone surrogate")
            if not k.isascii() and any(ord(c) > 0xFFFF for c in k):
                needs = True
            needs |= _check(v, f"{path}.{k}")
        return needs
    raise InvalidInput(f"{path}: {t.__name__} is not a JSON value")


def _has_surrogate(s: str) -> bool:
    if s.isascii():
        return False
    return any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def _reorder(value: Any) -> Any:
    """Rebuild objects with keys in UTF-16 order, for the rare keys above U+FFFF."""
    if isinstance(value, dict):
        return {k: _reorder(value[k]) for k in sorted(value, key=_utf16_key)}
    if isinstance(value, list | tuple):
        return [_reorder(v) for v in value]
    return value


def canonical_str(value: Any) -> str:
    """The RFC 8785 text of ``value``; raises :class:`InvalidInput` for what the log refuses."""
    if _check(value, "$"):
        # json.dumps(sort_keys=True) would re-sort by code point; encode pre-ordered instead.
        ordered = _reorder(value)
        return json.dumps(ordered, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _encode(value)


def canonical(value: Any) -> bytes:
    """The RFC 8785 bytes of ``value`` (UTF-8)."""
    return canonical_str(value).encode("utf-8")


def _no_floats(text: str) -> Any:
    raise InvalidInput(f"floating-point number {text} is not allowed; use an integer")


def _no_constants(text: str) -> Any:
    raise InvalidInput(f"{text} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise InvalidInput(f"duplicate object key {k!r}")
            seen.add(k)
    return out


def parse(data: bytes | str) -> Any:
    """Parse JSON strictly: no floats, NaN, Infinity or duplicate keys (they have no
    single canonical form, so a signature over them would be ambiguous)."""
    try:
        return json.loads(
            data,
            parse_float=_no_floats,
            parse_constant=_no_constants,
            object_pairs_hook=_unique_keys,
        )
    except InvalidInput:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from None
