"""Signed events and the leaves that wrap them.

A member signs the canonical bytes of an event; the hub wraps those bytes, untouched, in a
leaf, and anyone can later cut the signed bytes back out of the leaf and check them. These
tests pin each step: the signature covers every field, a malformed envelope is refused with
a message that names the field, and the leaf round trip is exact, even for bodies built to
confuse the slicing (nested ``index`` keys, strings holding ``,"index":``).
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonweal.errors import BadSignature, InvalidInput, TooLarge
from commonweal.ledger.canonical import MAX_SAFE_INTEGER, canonical, parse
from commonweal.ledger.event import (
    MAX_EVENT_BYTES,
    Leaf,
    SignedEvent,
    check_envelope,
    decode_leaf,
    encode_leaf,
    now,
    sign_event,
    signed_slice,
)
from commonweal.ledger.keys import SigningKey, verify_signature

ALICE = SigningKey(bytes(range(32)))
BOB = SigningKey(bytes(range(1, 33)))
TIME = "2026-01-31T12:00:00.000Z"
ORIGIN = "example.org/commonweal/test-event"
LOG_TIME = "2026-01-31T12:00:01.250Z"

# -- strategies ----------------------------------------------------------------------------

# Keys and strings chosen to look like the leaf's own structure, plus characters whose
# code-point and UTF-16 orders differ, plus anything at all.
_lookalikes = st.sampled_from(
    [
        "index",
        "event",
        "sig",
        "log_time",
        ',"index":',
        ',"index":0,"log_time":"',
        '"}',
        "{",
        "\\",
        '"',
        "\n",
        "\uffff",
        "\U00010000",
        "\U0001f600",
    ]
)
_text = st.one_of(st.text(max_size=10), _lookalikes, st.builds("".join, st.lists(_lookalikes)))
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER), _text
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_text, children, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.dictionaries(_text, _values, max_size=6)
bmp_text = st.text(alphabet=st.characters(max_codepoint=0xFFFF, codec="utf-8"), max_size=10)
bmp_bodies = st.dictionaries(
    st.one_of(bmp_text, _lookalikes.filter(lambda s: s.isascii())),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-10, 10), bmp_text),
        lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(bmp_text, c, max_size=3)),
        max_leaves=12,
    ),
    max_size=6,
)
kinds = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){1,3}\Z")
# Real instants only (an event time like 2000-00-00 is refused), with 0-9 fractional digits.
times = st.builds(
    lambda d, frac: d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z",
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    st.from_regex(r"\A[0-9]{0,9}\Z"),
)
indices = st.one_of(st.integers(0, MAX_SAFE_INTEGER), st.integers(0, 1000))

PROPERTY = settings(max_examples=150, deadline=None)


def wire_roundtrip(doc: Any) -> Any:
    """What the hub receives: the document as JSON text, parsed strictly."""
    return parse(json.dumps(doc))


def tagged(value: Any) -> Any:
    if isinstance(value, dict):
        return ("object", sorted((k, tagged(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", [tagged(v) for v in value])
    return (type(value).__name__, value)


# -- signing -------------------------------------------------------------------------------


def test_sign_event_builds_the_envelope_and_signs_its_canonical_bytes() -> None:
    ev = sign_event(ALICE, "member.join", {"name": "Ada"}, time=TIME, hub=ORIGIN)
    assert set(ev.event) == {"v", "hub", "kind", "actor", "time", "nonce", "body"}
    assert ev.event["v"] == 2 and ev.event["hub"] == ev.hub == ORIGIN
    assert ev.kind == "member.join"
    assert ev.actor == ALICE.key_id
    assert ev.event["time"] == TIME
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", ev.event["nonce"])
    assert ev.body == {"name": "Ada"}
    assert ev.data == canonical(ev.event)
    assert len(ev.sig) == 64
    assert verify_signature(ALICE.key_id, ev.data, ev.sig)
    assert not verify_signature(BOB.key_id, ev.data, ev.sig)


def test_a_version_1_event_names_no_hub_and_still_reads() -> None:
    """Logs written before version 2 hold events without ``hub``: they still parse (the
    hub, not the envelope, refuses new ones), and a version 1 event with a hub, or a
    version 2 event without one, is malformed."""
    old = sign_event(ALICE, "member.join", {"name": "Ada"}, time=TIME, hub=None)
    assert set(old.event) == {"v", "kind", "actor", "time", "nonce", "body"}
    assert old.event["v"] == 1 and old.hub is None
    assert SignedEvent.from_wire(old.to_wire()).hub is None
    leaf = encode_leaf(old.data, 0, TIME, old.sig)
    assert decode_leaf(leaf).event == old.event
    assert decode_leaf(leaf, strict=False).event == old.event
    new = sign_event(ALICE, "member.join", {"name": "Ada"}, time=TIME, hub=ORIGIN)
    for event, words in [
        ({**old.event, "hub": ORIGIN}, "unexpected ['hub']"),
        ({k: v for k, v in new.event.items() if k != "hub"}, "missing ['hub']"),
        ({**new.event, "v": 3}, "v must be 2"),
        ({**new.event, "v": True}, "v must be 2"),
    ]:
        with pytest.raises(InvalidInput, match=re.escape(words)):
            check_envelope(event)


@pytest.mark.parametrize(
    "hub", ["", "/x", "x/", "a b", "x" * 201, "ex\u00e9mple.org/c", 7, None, ["example.org/c"]]
)
def test_a_hub_that_is_not_a_log_origin_is_refused(hub: Any) -> None:
    event = {**sign_event(ALICE, "member.join", {}, time=TIME, hub=ORIGIN).event, "hub": hub}
    with pytest.raises(InvalidInput, match="hub must be the origin line"):
        check_envelope(event)


def test_every_event_gets_a_fresh_nonce_and_the_current_time() -> None:
    a = sign_event(ALICE, "member.join", {}, hub=ORIGIN)
    b = sign_event(ALICE, "member.join", {}, hub=ORIGIN)
    assert a.event["nonce"] != b.event["nonce"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", a.event["time"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now())


@PROPERTY
@given(body=bodies, kind=kinds, time=times)
def test_signed_events_survive_the_wire(body: dict[str, Any], kind: str, time: str) -> None:
    ev = sign_event(ALICE, kind, body, time=time, hub=ORIGIN)
    wire = ev.to_wire()
    assert set(wire) == {"event", "sig"}
    assert base64.b64decode(wire["sig"], validate=True) == ev.sig
    back = SignedEvent.from_wire(wire_roundtrip(wire))
    assert tagged(back.event) == tagged(ev.event)
    assert back.data == ev.data
    assert back.sig == ev.sig
    assert back.body == body


@PROPERTY
@given(body=bodies, data=st.data())
def test_any_change_to_a_signed_event_is_a_bad_signature(
    body: dict[str, Any], data: st.DataObject
) -> None:
    ev = sign_event(ALICE, "contribution.submit", body, time=TIME, hub=ORIGIN)
    field = data.draw(st.sampled_from(["kind", "actor", "time", "nonce", "body"]), label="field")
    changed = dict(ev.event)
    if field == "kind":
        changed["kind"] = data.draw(kinds.filter(lambda k: k != ev.kind), label="kind")
    elif field == "actor":
        changed["actor"] = BOB.key_id
    elif field == "time":
        changed["time"] = data.draw(times.filter(lambda t: t != TIME), label="time")
    elif field == "nonce":
        nonce = ev.event["nonce"]
        changed["nonce"] = nonce[:-1] + ("A" if nonce[-1] != "A" else "B")
    else:
        new_body = data.draw(bodies.filter(lambda b: canonical(b) != canonical(body)))
        changed["body"] = new_body
    with pytest.raises(BadSignature, match="signature does not verify"):
        SignedEvent.from_wire({"event": changed, "sig": base64.b64encode(ev.sig).decode()})


def test_any_flipped_bit_of_the_signature_is_a_bad_signature() -> None:
    ev = sign_event(ALICE, "vote.cast", {"proposal": 3, "choice": "yes"}, time=TIME, hub=ORIGIN)
    SignedEvent.from_wire(ev.to_wire())
    for bit in range(len(ev.sig) * 8):
        bad = bytearray(ev.sig)
        bad[bit // 8] ^= 1 << (bit % 8)
        doc = {"event": ev.event, "sig": base64.b64encode(bytes(bad)).decode()}
        with pytest.raises(BadSignature):
            SignedEvent.from_wire(doc)


@pytest.mark.parametrize(
    "sig",
    [b"", b"\x00" * 63, b"\x00" * 64, b"\x00" * 65],
    ids=["empty", "short", "zeros", "long"],
)
def test_signatures_of_the_wrong_length_or_content_are_bad_signatures(sig: bytes) -> None:
    ev = sign_event(ALICE, "vote.cast", {}, time=TIME, hub=ORIGIN)
    with pytest.raises(BadSignature):
        SignedEvent.from_wire({"event": ev.event, "sig": base64.b64encode(sig).decode()})
    # Another event's valid signature by the same actor is no better.
    other = sign_event(ALICE, "vote.cast", {}, time=TIME, hub=ORIGIN)
    with pytest.raises(BadSignature):
        SignedEvent.from_wire({"event": ev.event, "sig": base64.b64encode(other.sig).decode()})


def test_an_event_signed_by_someone_else_is_a_bad_signature() -> None:
    ev = sign_event(BOB, "vote.cast", {}, time=TIME, hub=ORIGIN)
    forged = dict(ev.event, actor=ALICE.key_id)
    with pytest.raises(BadSignature, match=ALICE.key_id[:16]):
        SignedEvent.from_wire({"event": forged, "sig": base64.b64encode(ev.sig).decode()})


# -- envelope errors -----------------------------------------------------------------------


def _good() -> dict[str, Any]:
    return sign_event(ALICE, "member.join", {"name": "Ada"}, time=TIME, hub=ORIGIN).to_wire()


def _with(**fields: Any) -> dict[str, Any]:
    doc = _good()
    doc["event"] = {**doc["event"], **fields}
    return doc


def _without(field: str) -> dict[str, Any]:
    doc = _good()
    del doc["event"][field]
    return doc


ENVELOPE_ERRORS = [
    # (wire document, what the message must name)
    ([], "expected an object"),
    ({"event": _good()["event"]}, "expected an object"),
    ({**_good(), "extra": 1}, "expected an object"),
    ({"event": [], "sig": "AAAA"}, "event must be a JSON object"),
    ({"event": "x", "sig": "AAAA"}, "event must be a JSON object"),
    (_without("nonce"), "missing ['nonce']"),
    (_without("body"), "missing ['body']"),
    (_with(extra=1), "unexpected ['extra']"),
    (_without("hub"), "missing ['hub']"),
    (_with(v=1), "unexpected ['hub']"),  # version 1 names no hub
    (_with(hub="not an origin"), "hub must be the origin line"),
    (_with(v=3), "v must be 2"),
    (_with(v=True), "v must be 2"),
    (_with(v="2"), "v must be 2"),
    (_with(v=None), "v must be 2"),
    (_with(kind="join"), "kind 'join'"),
    (_with(kind="Member.Join"), "kind 'Member.Join'"),
    (_with(kind="member..join"), "kind"),
    (_with(kind="member.join."), "kind"),
    (_with(kind="1member.join"), "kind"),
    (_with(kind=""), "kind"),
    (_with(kind=7), "kind 7"),
    (_with(actor=ALICE.key_id.upper()), "actor"),
    (_with(actor=ALICE.key_id[:-1]), "actor"),
    (_with(actor=ALICE.key_id + "0"), "actor"),
    (_with(actor="g" * 64), "actor"),
    (_with(actor=None), "actor"),
    (_with(actor=12), "actor"),
    (_with(time="2026-01-31 12:00:00Z"), "time"),
    (_with(time="2026-01-31T12:00:00+00:00"), "time"),
    (_with(time="2026-01-31T12:00:00"), "time"),
    (_with(time="2026-01-31"), "time"),
    (_with(time=1769860800), "time"),
    (_with(nonce="short"), "nonce"),
    (_with(nonce="a" * 65), "nonce"),
    (_with(nonce="a" * 15 + "="), "nonce"),
    (_with(nonce="a" * 15 + "+"), "nonce"),
    (_with(nonce=1234567890123456), "nonce"),
    (_with(body=[]), "body must be a JSON object"),
    (_with(body=None), "body must be a JSON object"),
    (_with(body="x"), "body must be a JSON object"),
    ({**_good(), "sig": 5}, "sig must be a base64 string"),
    ({**_good(), "sig": None}, "sig must be a base64 string"),
    ({**_good(), "sig": "not base64!"}, "sig is not valid base64"),
    ({**_good(), "sig": "AAA"}, "sig is not valid base64"),
    # Non-ASCII text makes base64 raise a plain ValueError, not binascii.Error (a 500 once).
    ({**_good(), "sig": "\u00d8\u00f7"}, "sig is not valid base64"),
]


@pytest.mark.parametrize(("doc", "names"), ENVELOPE_ERRORS, ids=[n for _, n in ENVELOPE_ERRORS])
def test_envelope_errors_are_invalid_input_naming_the_field(doc: Any, names: str) -> None:
    with pytest.raises(InvalidInput) as info:
        SignedEvent.from_wire(doc, where="events[2]")
    assert type(info.value) is InvalidInput, "a shape error is not a signature error"
    assert info.value.message.startswith("events[2]: ")
    assert names in info.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "member.join\n"),
        ("time", TIME.replace(".000Z", "Z") + "\n"),
        ("nonce", "abcdefghijklmnop\n"),
        ("actor", ALICE.key_id[:-2] + "  "),
        ("actor", ALICE.key_id[:-2] + "\n\n"),
    ],
    ids=["kind+newline", "time+newline", "nonce+newline", "actor+spaces", "actor+newlines"],
)
def test_envelope_fields_with_trailing_whitespace_are_refused(field: str, value: str) -> None:
    # A field is well-formed or refused; "almost" (a regex `$` that lets a final newline
    # through, bytes.fromhex skipping whitespace) must not slip into signed, logged events.
    if field in ("kind", "time"):
        args: dict[str, Any] = {"kind": "member.join", "time": TIME, field: value}
        with pytest.raises(InvalidInput, match=field):
            sign_event(ALICE, args["kind"], {}, time=args["time"], hub=ORIGIN)
    doc = _with(**{field: value})
    with pytest.raises(InvalidInput) as info:
        SignedEvent.from_wire(doc)
    assert type(info.value) is InvalidInput, f"{field} {value!r}: {info.value.message}"
    assert field in info.value.message


def test_sign_event_refuses_what_the_log_cannot_hold() -> None:
    with pytest.raises(InvalidInput, match="kind"):
        sign_event(ALICE, "NotAKind", {}, hub=ORIGIN)
    with pytest.raises(InvalidInput, match="time"):
        sign_event(ALICE, "member.join", {}, time="yesterday", hub=ORIGIN)
    with pytest.raises(InvalidInput, match=r"\$\.body\.amount"):
        sign_event(ALICE, "member.join", {"amount": 1.5}, hub=ORIGIN)
    with pytest.raises(InvalidInput, match="body"):
        sign_event(ALICE, "member.join", [], hub=ORIGIN)  # type: ignore[arg-type]


def test_events_over_the_size_limit_are_too_large() -> None:
    ev = sign_event(
        ALICE, "contribution.submit", {"blob": "x" * MAX_EVENT_BYTES}, time=TIME, hub=ORIGIN
    )
    with pytest.raises(TooLarge, match=str(MAX_EVENT_BYTES)):
        SignedEvent.from_wire(ev.to_wire())
    small = sign_event(ALICE, "contribution.submit", {"blob": "x" * 1000}, time=TIME, hub=ORIGIN)
    assert SignedEvent.from_wire(small.to_wire()).data == small.data


# -- leaves --------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_signed_bytes_are_a_literal_slice_of_the_leaf_even_with_a_nested_index_key() -> None:
    body = {"a": 1, "index": 2, "log_time": TIME, "sig": "x", "z": {"q": 0, "index": 3}}
    ev = sign_event(ALICE, "member.join", body, time=TIME, hub=ORIGIN)
    assert b',"index":' in ev.data, "the body really does hold the leaf's marker"
    leaf = encode_leaf(ev.data, 41, LOG_TIME, ev.sig)
    assert leaf == canonical(
        {"event": ev.event, "index": 41, "log_time": LOG_TIME, "sig": _b64(ev.sig)}
    )
    assert signed_slice(leaf) == ev.data
    decoded = decode_leaf(leaf)
    assert decoded.index == 41
    assert decoded.signed_bytes() == ev.data
    assert verify_signature(decoded.actor, signed_slice(leaf), decoded.sig)


@PROPERTY
@given(body=bodies, index=indices, log_time=times)
def test_encode_leaf_is_the_canonical_leaf_and_slices_back_to_the_signed_bytes(
    body: dict[str, Any], index: int, log_time: str
) -> None:
    ev = sign_event(ALICE, "contribution.submit", body, time=TIME, hub=ORIGIN)
    leaf = encode_leaf(ev.data, index, log_time, ev.sig)
    assert leaf == canonical(
        {"event": ev.event, "index": index, "log_time": log_time, "sig": _b64(ev.sig)}
    )
    assert signed_slice(leaf) == ev.data
    assert verify_signature(ALICE.key_id, signed_slice(leaf), ev.sig)


def _check_decoded(leaf: Leaf, ev: SignedEvent, index: int, log_time: str, data: bytes) -> None:
    assert leaf.index == index
    assert leaf.log_time == log_time
    assert tagged(leaf.event) == tagged(ev.event)
    assert leaf.sig == ev.sig
    assert leaf.data == data
    assert leaf.kind == ev.kind
    assert leaf.actor == ev.actor
    assert leaf.body == ev.body
    assert leaf.signed_bytes() == ev.data
    assert leaf.to_json() == {
        "index": index,
        "log_time": log_time,
        "leaf": _b64(data),
        "event": ev.event,
        "sig": _b64(ev.sig),
    }


@PROPERTY
@given(body=bmp_bodies, index=indices, log_time=times)
def test_leaves_decode_back_to_their_event(body: dict[str, Any], index: int, log_time: str) -> None:
    ev = sign_event(ALICE, "contribution.submit", body, time=TIME, hub=ORIGIN)
    data = encode_leaf(ev.data, index, log_time, ev.sig)
    _check_decoded(decode_leaf(data, strict=True), ev, index, log_time, data)
    _check_decoded(decode_leaf(data, strict=False), ev, index, log_time, data)


@PROPERTY
@given(body=bodies, index=indices, log_time=times)
def test_leaves_with_any_body_decode_strictly(
    body: dict[str, Any], index: int, log_time: str
) -> None:
    # Any event the wire accepts is one the hub may append; its leaf must then pass the
    # strict decoding that `commonweal verify` applies, whatever the body's keys.
    ev = SignedEvent.from_wire(
        sign_event(ALICE, "contribution.submit", body, time=TIME, hub=ORIGIN).to_wire()
    )
    data = encode_leaf(ev.data, index, log_time, ev.sig)
    _check_decoded(decode_leaf(data, strict=True), ev, index, log_time, data)


def test_a_leaf_whose_body_keys_sort_differently_in_utf16_decodes_strictly() -> None:
    body = {"\uffff": 1, "\U00010000": 2}
    ev = SignedEvent.from_wire(
        sign_event(ALICE, "member.join", body, time=TIME, hub=ORIGIN).to_wire()
    )
    data = encode_leaf(ev.data, 0, LOG_TIME, ev.sig)
    assert data == canonical(
        {"event": ev.event, "index": 0, "log_time": LOG_TIME, "sig": _b64(ev.sig)}
    )
    assert decode_leaf(data, strict=True).body == body


def test_a_leaf_of_the_deepest_event_the_wire_accepts_decodes_strictly() -> None:
    # Find the deepest nesting sign_event/from_wire accept; the hub would append that
    # event, and the leaf, one level deeper, must still be readable by the verifier.
    accepted = None
    for depth in range(1, 600):
        value: Any = 0
        for _ in range(depth):
            value = [value]
        try:
            ev = SignedEvent.from_wire(
                sign_event(ALICE, "member.join", {"x": value}, hub=ORIGIN).to_wire()
            )
        except InvalidInput:
            break
        accepted = ev
    assert accepted is not None
    data = encode_leaf(accepted.data, 7, LOG_TIME, accepted.sig)
    assert decode_leaf(data, strict=True).index == 7


def _respellings(data: bytes) -> list[bytes]:
    """The same leaf value, spelled in ways that are valid JSON but not canonical."""
    doc = parse(data)
    out = [
        data[:1] + b" " + data[1:],
        data + b"\n",
        json.dumps(doc, indent=1, ensure_ascii=False).encode(),
        json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode(),
        json.dumps(
            {k: doc[k] for k in ("index", "event", "log_time", "sig")},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode(),
        data.replace(b'"index":', b'"index": ', 1),
        data.replace(b'{"event":', b'{"event":{"v":1,"v":1}, "event":', 1),  # a duplicate
        data.replace(b"T", b"\\u0054", 1),  # the same character, escaped
    ]
    return [o for o in out if o != data]


@PROPERTY
@given(body=bodies, index=indices)
def test_strict_decoding_refuses_leaf_bytes_that_are_not_canonical(
    body: dict[str, Any], index: int
) -> None:
    ev = sign_event(ALICE, "contribution.submit", body, time=TIME, hub=ORIGIN)
    data = encode_leaf(ev.data, index, LOG_TIME, ev.sig)
    for other in _respellings(data):
        with pytest.raises(InvalidInput):
            decode_leaf(other, strict=True)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.replace(b'"body":{}', b'"body":{"a":1,"a":1}', 1),
        lambda d: d.replace(b'"body":{}', b'"body":{"n":1.0}', 1),
        lambda d: d.replace(b'"body":{}', b'"body":{"s":"\\/"}', 1),
        lambda d: d.replace(b'"body":{}', b'"body":{"s":"\\u001F"}', 1),
        lambda d: d.replace(b'"body":{}', b'"body":{"n":-0}', 1),
        lambda d: d.replace(b'"body":{}', b'"body":{"b":{"y":1,"x":2}}', 1),
    ],
    ids=["duplicate key", "float", "escaped slash", "uppercase escape", "minus zero", "key order"],
)
def test_strict_decoding_refuses_non_canonical_spellings_inside_the_event(mutate: Any) -> None:
    ev = sign_event(ALICE, "member.join", {}, time=TIME, hub=ORIGIN)
    data = mutate(encode_leaf(ev.data, 3, LOG_TIME, ev.sig))
    assert b'"body":{}' not in data
    with pytest.raises(InvalidInput):
        decode_leaf(data, strict=True)


LEAF_ERRORS = [
    (b"[]", "exactly event, index, log_time and sig"),
    (b'{"event":{}}', "exactly event, index, log_time and sig"),
    (b"not json", "malformed JSON"),
]


@pytest.mark.parametrize(("data", "message"), LEAF_ERRORS)
def test_malformed_leaves_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        decode_leaf(data)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("index", -1, "index"),
        ("index", True, "index"),
        ("index", "3", "index"),
        ("log_time", "noon", "log_time"),
        ("log_time", 5, "log_time"),
        ("sig", "!!", "sig"),
        ("sig", 5, "sig"),
        ("extra", 1, "exactly event, index, log_time and sig"),
    ],
)
def test_leaf_fields_are_checked(field: str, value: Any, message: str) -> None:
    ev = sign_event(ALICE, "member.join", {}, time=TIME, hub=ORIGIN)
    doc = {"event": ev.event, "index": 0, "log_time": LOG_TIME, "sig": _b64(ev.sig)}
    doc[field] = value
    with pytest.raises(InvalidInput, match=message):
        decode_leaf(canonical(doc), strict=True)


def test_leaf_event_envelope_is_checked_when_strict() -> None:
    ev = sign_event(ALICE, "member.join", {}, time=TIME, hub=ORIGIN)
    bad_event = {**ev.event, "kind": "NOPE"}
    data = canonical({"event": bad_event, "index": 0, "log_time": LOG_TIME, "sig": _b64(ev.sig)})
    with pytest.raises(InvalidInput, match="leaf event: kind"):
        decode_leaf(data, strict=True)


def test_encode_leaf_and_signed_slice_refuse_what_is_not_a_leaf() -> None:
    ev = sign_event(ALICE, "member.join", {}, time=TIME, hub=ORIGIN)
    with pytest.raises(InvalidInput, match="log_time"):
        encode_leaf(ev.data, 0, "2026-01-31", ev.sig)
    with pytest.raises(InvalidInput, match="event"):
        signed_slice(b'{"index":0}')
    with pytest.raises(InvalidInput, match="index"):
        signed_slice(b'{"event":{}}')
