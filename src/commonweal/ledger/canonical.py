"""Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) for the values the log holds.

Signatures and Merkle leaves are computed over these bytes, so two honest implementations
must produce the same bytes for the same value. The log holds only strings, integers,
booleans, null, arrays and objects: money and shares are integers in the smallest unit, so
floats never need ES6 number formatting and are refused outright. Integers must fit an
IEEE double exactly (|n| < 2**53), as RFC 8785 requires.

For those values RFC 8785 is compact JSON with sorted keys and raw UTF-8, which orjson
writes (with RFC 8785's exact string escapes) in well under a microsecond, with two
differences this module handles: keys sort by UTF-16 code units (orjson sorts by code
point, which differs only above U+FFFF), and lone surrogates are not valid I-JSON. Speed
matters here because every append and every verified entry is encoded once; a property
test pins the result to the ``rfc8785`` package, a plain reading of the RFC.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from commonweal.errors import InvalidInput

__all__ = [
    "MAX_SAFE_INTEGER",
    "canonical",
    "canonical_str",
    "has_float",
    "is_canonical",
    "parse",
    "parse_fast",
    "parse_trusted",
]

MAX_SAFE_INTEGER = 2**53 - 1
# Nesting deeper than this is refused: nothing the rules accept needs it, and it keeps every
# leaf (an event plus two levels) well inside orjson's 255-level limit.
MAX_DEPTH = 64

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER | orjson.OPT_PASSTHROUGH_DATETIME
_ASTRAL = re.compile(rb"[\xf0-\xf4]")


def _encode(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTS)


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def _check(value: Any, path: str, depth: int = 0) -> bool:
    """Validate ``value``; return True if some object key needs UTF-16 ordering."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"{path}: nested deeper than {MAX_DEPTH} levels")
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
            needs |= _check(item, f"{path}[{i}]", depth + 1)
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
            needs |= _check(v, f"{path}.{k}", depth + 1)
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


def canonical(value: Any) -> bytes:
    """The RFC 8785 bytes of ``value`` (UTF-8); raises :class:`InvalidInput` for values
    the log refuses (floats, NaN, integers beyond 2**53, lone surrogates, non-JSON types)."""
    needs_utf16_order = _check(value, "$")
    if needs_utf16_order:
        # orjson would sort by code point; encode an object built in UTF-16 key order.
        return json.dumps(
            _reorder(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
    try:
        return _encode(value)
    except orjson.JSONEncodeError as exc:  # _check should have caught it; be explicit
        raise InvalidInput(f"value cannot be canonical JSON: {exc}") from None


def canonical_str(value: Any) -> str:
    """The RFC 8785 text of ``value``."""
    return canonical(value).decode("utf-8")


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
    return _loads(data, object_pairs_hook=_unique_keys)


def _loads(data: bytes | str, **hooks: Any) -> Any:
    try:
        return json.loads(data, parse_float=_no_floats, parse_constant=_no_constants, **hooks)
    except InvalidInput:
        raise
    except RecursionError:
        raise InvalidInput("JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from None


def parse_fast(data: bytes | str) -> Any:
    """Parse JSON, refusing floats and NaN but not duplicate keys: for bytes whose
    canonical form is then checked with :func:`is_canonical` (which catches duplicates),
    or that were checked so before. Several times faster than :func:`parse`."""
    return _loads(data)


def parse_trusted(data: bytes) -> Any:
    """Parse bytes already known to be canonical (checked elsewhere): the fastest path."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from None


def is_canonical(data: bytes, value: Any) -> bool:
    """True if ``data`` is the canonical encoding of ``value`` (which was parsed from it).

    The fast path for checking stored leaves: re-encode ``value`` and compare. A duplicate
    key, stray whitespace or an escape that needn't be all make the bytes differ; orjson refuses a
    lone surrogate or an integer beyond 2**53. Only 4-byte UTF-8 needs the careful encoder,
    since a key above U+FFFF sorts differently in UTF-16.
    """
    if not data.isascii() and _ASTRAL.search(data):
        # A key above U+FFFF may sort differently in UTF-16: only the careful encoder knows.
        try:
            return canonical(value) == data
        except InvalidInput:
            return False
    try:
        return _encode(value) == data
    except orjson.JSONEncodeError:
        return False


def has_float(value: Any) -> bool:
    """True if a parsed JSON value holds a float anywhere (the log holds none)."""
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            stack.extend(v.values())
        elif t is list:
            stack.extend(v)
        elif t is float:
            return True
    return False
