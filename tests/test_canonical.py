"""Canonical JSON pinned to RFC 8785 by the independent ``rfc8785`` package.

Signatures and leaf hashes are computed over these bytes, so a byte of difference from
another RFC 8785 implementation means a signature nobody else can check. The property
tests compare against ``rfc8785.dumps`` for every value the log may hold, with keys drawn
to hit the one place a naive encoder goes wrong: characters above U+FFFF, which sort by
UTF-16 code unit (as surrogates, below U+E000..U+FFFF) rather than by code point.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from commonweal.errors import InvalidInput
from commonweal.ledger.canonical import (
    MAX_SAFE_INTEGER,
    canonical,
    canonical_str,
    is_canonical,
    parse,
    parse_fast,
)

# -- strategies --------------------------------------------------------------------------

# Characters where code-point order and UTF-16 order disagree (U+E000..U+FFFF against the
# astral planes), the escapes RFC 8785 prescribes, and a little of everything else.
_tricky_chars = st.sampled_from(
    [
        "a",
        "B",
        "1",
        "\x00",
        "\x1f",
        "\x7f",
        "\b",
        "\t",
        "\n",
        "\f",
        "\r",
        '"',
        "\\",
        "/",
        "\u0080",
        "\u00f6",
        "\u2028",
        "\u20ac",
        "\ud7ff",
        "\ue000",
        "\ufb33",
        "\ufeff",
        "\uffff",
        "\U00010000",
        "\U0001f600",
        "\U0010ffff",
    ]
)
# Any Unicode scalar value: Hypothesis's default text excludes surrogates (category Cs).
any_text = st.text(max_size=12)
tricky_text = st.text(alphabet=_tricky_chars, max_size=6)
json_text = st.one_of(any_text, tricky_text)
keys = st.one_of(any_text, tricky_text, st.sampled_from(["", "a", "\uffff", "\U00010000"]))

safe_ints = st.one_of(
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.sampled_from([0, -1, 1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**31, -(2**31), 2**32]),
)
scalars = st.one_of(st.none(), st.booleans(), safe_ints, json_text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=6),
    ),
    max_leaves=30,
)
json_objects = st.dictionaries(keys, json_values, max_size=8)

PROPERTY = settings(max_examples=300, deadline=None)


def tagged(value: Any) -> Any:
    """A form of ``value`` in which ``True`` and ``1`` differ, so equality means identity."""
    if isinstance(value, dict):
        return ("object", sorted((k, tagged(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("array", [tagged(v) for v in value])
    return (type(value).__name__, value)


# -- agreement with rfc8785 --------------------------------------------------------------


@PROPERTY
@given(value=json_values)
def test_canonical_equals_the_rfc8785_package(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


@PROPERTY
@given(value=json_objects)
def test_canonical_objects_equal_the_rfc8785_package(value: dict[str, Any]) -> None:
    out = canonical(value)
    assert out == rfc8785.dumps(value)
    assert canonical_str(value) == out.decode("utf-8")


@PROPERTY
@given(value=json_values)
def test_parse_inverts_canonical_exactly(value: Any) -> None:
    data = canonical(value)
    back = parse(data)
    assert tagged(back) == tagged(value)
    assert parse(data.decode("utf-8")) == back
    assert canonical(back) == data


@PROPERTY
@given(value=json_values, indent=st.sampled_from([None, 0, 2]), ascii_only=st.booleans())
def test_any_encoding_of_a_value_canonicalizes_to_the_same_bytes(
    value: Any, indent: int | None, ascii_only: bool
) -> None:
    # However a sender spelled the JSON (whitespace, \\u escapes, key order), the value it
    # parses to has one canonical form: the one rfc8785 gives.
    loose = json.dumps(value, indent=indent, ensure_ascii=ascii_only, sort_keys=False)
    assert canonical(parse(loose)) == rfc8785.dumps(value)


def test_keys_sort_by_utf16_code_units_as_in_rfc8785_section_3_2_3() -> None:
    # The RFC's own sorting example.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = list(parse(canonical(value)).values())
    assert order == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]
    # Code-point order would put U+FFFF first; UTF-16 puts U+10000 (D800 DC00) first.
    assert canonical({"\uffff": 1, "\U00010000": 2}) == '{"\U00010000":2,"\uffff":1}'.encode()
    # Nested objects follow the same rule, even when only an inner key is astral.
    assert canonical({"b": {"\uffff": 1, "\U00010000": 2}, "a": {"z": 1, "y": 2}}) == (
        '{"a":{"y":2,"z":1},"b":{"\U00010000":2,"\uffff":1}}'.encode()
    )


def test_strings_escape_as_in_rfc8785_section_3_2_4() -> None:
    # The RFC's example without its numbers (the log holds no floats).
    value = {
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    expected = '{"literals":[null,true,false],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    assert canonical(value) == expected.encode("utf-8")
    assert canonical("\x00\x1f\x7f\u2028") == b'"\\u0000\\u001f\x7f\xe2\x80\xa8"'


def test_integers_at_the_safe_limit_are_canonical() -> None:
    assert canonical(MAX_SAFE_INTEGER) == b"9007199254740991"
    assert canonical(-MAX_SAFE_INTEGER) == b"-9007199254740991"
    assert canonical([0, True, False, None]) == b"[0,true,false,null]"
    assert canonical(()) == b"[]"
    assert canonical({}) == b"{}"


# -- what canonical refuses --------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        0.5,
        -0.0,
        1e300,
        math.nan,
        math.inf,
        -math.inf,
        [1, 2.5],
        {"a": {"b": 0.1}},
    ],
    ids=repr,
)
def test_floats_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput, match=r"floating-point|not allowed"):
        canonical(value)


@pytest.mark.parametrize(
    "value",
    [2**53, -(2**53), 2**53 + 1, 2**64, -(2**100), [1, 2**53], {"n": -(2**53)}],
    ids=repr,
)
def test_integers_beyond_2_to_the_53_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput, match="2\\*\\*53"):
        canonical(value)


@pytest.mark.parametrize(
    "value",
    [
        "\ud800",
        "\udfff",
        "a\udc00b",
        "\udbff\U0001f600",
        ["ok", "\ud83d"],
        {"k": "\ude00"},
        {"\ud800": 1},
        {"outer": {"\udfff": 1}},
        # With an astral key the encoder takes its UTF-16 ordering path; still refused.
        {"\U00010000": "\ud800"},
        {"\U00010000": 1, "\udfff": 2},
    ],
    ids=ascii,
)
def test_lone_surrogates_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput, match="surrogate"):
        canonical(value)
    # The reference refuses them too (for keys, with the codec's own error).
    with pytest.raises((rfc8785.CanonicalizationError, UnicodeEncodeError)):
        rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {None: 1}, {True: 1}, {(1, 2): 1}, {b"k": 1}, {"ok": {2: 3}}],
    ids=repr,
)
def test_non_string_keys_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput, match="key"):
        canonical(value)


@pytest.mark.parametrize(
    "value", [b"bytes", {1, 2}, object(), {"a": [b"x"]}], ids=["bytes", "set", "object", "nested"]
)
def test_values_json_cannot_hold_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput):
        canonical(value)


def test_refusals_name_where_the_bad_value_is() -> None:
    with pytest.raises(InvalidInput, match=r"\$\.amounts\[2\]"):
        canonical({"amounts": [1, 2, 3.5]})
    with pytest.raises(InvalidInput, match=r"\$\.a\.b"):
        canonical({"a": {"b": 2**60}})


# -- parse ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"a":1}',
        '{"a":1,"b":2,"a":3}',
        '{"x":{"k":1,"k":2}}',
        '[{"k":true,"k":false}]',
        '{"a":1,"\\u0061":2}',  # the same key, spelled with an escape
    ],
)
def test_parse_refuses_duplicate_keys(text: str) -> None:
    with pytest.raises(InvalidInput, match="duplicate"):
        parse(text)
    with pytest.raises(InvalidInput, match="duplicate"):
        parse(text.encode())


@pytest.mark.parametrize(
    "text", ["1.0", "1e5", "1E+2", "-0.0", "0.1", "[1,2.5]", '{"a":1e-3}', "9007199254740993.0"]
)
def test_parse_refuses_floats(text: str) -> None:
    with pytest.raises(InvalidInput, match="floating-point"):
        parse(text)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"a":NaN}', "[Infinity]"])
def test_parse_refuses_nan_and_infinity(text: str) -> None:
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse(text)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b" ",
        b"{",
        b"[1,]",
        b'{"a":1,}',
        b"{'a':1}",
        b'{"a" 1}',
        b"[1 2]",
        b"01",
        b"1 2",
        b'"unterminated',
        b"tru",
        b"nul",
        b'"\\x41"',
        b"\xff\xfe\x00",
        b'"\xc3\x28"',  # invalid UTF-8
        b"\x80",
        b'{"a":undefined}',
        b"1" * 5000,  # more digits than Python converts
    ],
    ids=repr,
)
def test_parse_refuses_malformed_json(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="malformed JSON"):
        parse(data)


def test_parse_refuses_absurdly_deep_nesting_as_invalid_input() -> None:
    # A few kilobytes of brackets is a malformed request, not a server crash: the API
    # passes request bodies to parse(), and anything but InvalidInput becomes a 500.
    data = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(InvalidInput):
        parse(data)


def test_parse_keeps_integers_and_booleans_apart() -> None:
    doc = parse(b'{"t":true,"one":1,"f":false,"zero":0,"n":null,"s":"1"}')
    assert tagged(doc) == tagged({"t": True, "one": 1, "f": False, "zero": 0, "n": None, "s": "1"})


# -- is_canonical (what decode_leaf(strict=True) relies on) ------------------------------


@PROPERTY
@given(value=json_objects)
def test_is_canonical_accepts_every_canonical_encoding(value: dict[str, Any]) -> None:
    data = canonical(value)
    assert is_canonical(data, parse_fast(data))


def test_is_canonical_accepts_keys_whose_utf16_and_code_point_orders_differ() -> None:
    data = canonical({"\uffff": 1, "\U00010000": 2})
    assert data == rfc8785.dumps({"\uffff": 1, "\U00010000": 2})
    assert is_canonical(data, parse_fast(data))


@PROPERTY
@given(value=json_objects, how=st.sampled_from(["space", "indent", "ascii", "reverse", "dup"]))
def test_is_canonical_refuses_other_spellings(value: dict[str, Any], how: str) -> None:
    data = canonical(value)
    if how == "space":
        other = b"{ " + data[1:]
    elif how == "indent":
        other = json.dumps(parse(data), indent=1, ensure_ascii=False).encode()
    elif how == "ascii":
        other = json.dumps(parse(data), separators=(",", ":"), ensure_ascii=True).encode()
    elif how == "reverse":
        doc = parse(data)
        other = json.dumps(
            dict(reversed(list(doc.items()))), separators=(",", ":"), ensure_ascii=False
        ).encode()
    else:  # a duplicated key: the parsed value keeps only the last
        other = data[:-1] + (b',"dup":1,"dup":1}' if value else b'"dup":1,"dup":1}')
    if other == data:
        return
    assert not is_canonical(other, parse_fast(other))
