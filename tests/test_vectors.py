"""The shared test vectors (``tests/vectors/*.json``) hold for the Python implementation.

The browser's modules meet the same files in ``tests/web/test_vectors.py``; the files are
written by ``tests/vectors/make.py`` from this implementation, so a change of format on
either side, or a stale file, fails a test.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from commonweal.errors import Unauthorized, VerificationFailed
from commonweal.ledger.canonical import canonical
from commonweal.ledger.event import SignedEvent, signed_slice
from commonweal.ledger.keys import SigningKey, verify_signature
from commonweal.ledger.merkle import leaf_hash, node_hash, verify_inclusion
from commonweal.ledger.note import NoteSigner, NoteVerifier, parse_checkpoint, verify_note
from commonweal.wire import auth_header, auth_message, check_auth_header, describe_item
from tests.vectors import make

VECTORS = Path(__file__).parent / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def test_the_vector_files_are_what_make_writes() -> None:
    assert make.main(["--check"]) == 0, "run python -m tests.vectors.make and review the diff"


@pytest.mark.parametrize("case", load("canonical.json")["cases"], ids=lambda c: c["name"])
def test_canonical_json_matches_the_vectors(case: dict[str, Any]) -> None:
    assert canonical(case["value"]).decode() == case["text"]
    assert case["text"].encode().hex() == case["hex"]


@pytest.mark.parametrize("case", load("keys.json")["keys"], ids=lambda c: c["name"])
def test_a_seed_gives_the_vector_key_id_and_key_file(case: dict[str, Any], tmp_path: Path) -> None:
    key = SigningKey(base64.b64decode(case["seed"]))
    assert key.key_id == case["key_id"]
    key.save(tmp_path / "k.key", name=case["name"])
    assert (tmp_path / "k.key").read_text() == case["key_file"]
    path = tmp_path / "vector.key"
    path.write_text(case["key_file"])
    assert SigningKey.load(path).key_id == case["key_id"]


@pytest.mark.parametrize(
    "case",
    load("events.json")["events"],
    ids=lambda c: f"{c['kind']}-v{c['event']['v']}",
)
def test_events_sign_to_the_vector_signatures(case: dict[str, Any]) -> None:
    key = SigningKey(base64.b64decode(case["seed"]))
    event: dict[str, Any] = {
        "v": 1 if case["hub"] is None else 2,
        "kind": case["kind"],
        "actor": key.key_id,
        "time": case["time"],
        "nonce": case["nonce"],
        "body": case["body"],
    }
    if case["hub"] is not None:
        event["hub"] = case["hub"]
    assert event == case["event"]
    assert canonical(event).decode() == case["canonical"]
    assert base64.b64encode(key.sign(canonical(event))).decode() == case["sig"]
    signed = SignedEvent.from_wire({"event": case["event"], "sig": case["sig"]})
    assert signed.data == case["canonical"].encode()


@pytest.mark.parametrize("case", load("auth.json")["headers"], ids=lambda c: c["target"])
def test_auth_headers_match_the_vectors(case: dict[str, Any]) -> None:
    key = SigningKey(base64.b64decode(case["seed"]))
    body = case["body"].encode()
    at = case["unix_ms"] / 1000
    header = auth_header(
        key, case["method"], case["target"], body=body, now=at, nonce=case["nonce"]
    )
    assert header == case["header"]
    message = auth_message(case["method"], case["target"], body, case["unix_ms"], case["nonce"])
    assert message == case["message"].encode()
    sig = base64.b64decode(header.rsplit(".", 1)[1])
    assert verify_signature(key.key_id, message, sig)
    signed = check_auth_header(header, case["method"], case["target"], body, now=at + 10)
    assert signed.key_id == key.key_id
    with pytest.raises(Unauthorized, match="does not verify"):
        check_auth_header(header, case["method"], case["target"], body + b" ", now=at + 10)


@pytest.mark.parametrize("case", load("items.json")["items"], ids=lambda c: c["id"][:8])
def test_item_commitments_match_the_vectors(case: dict[str, Any]) -> None:
    meta, part = describe_item(
        case["item"],
        task_kind=case["task_kind"],
        license=case["license"],
        consent=case["consent"],
        salt=base64.b64decode(case["salt"]),
    )
    assert meta == case["meta"] and part == case["part"]
    assert meta["commitment"] == case["commitment"] and meta["id"] == case["id"]


def test_merkle_hashes_and_proofs_match_the_vectors() -> None:
    v = load("merkle.json")
    for leaf in v["leaves"]:
        assert leaf_hash(base64.b64decode(leaf["data"])).hex() == leaf["hash"]
    for node in v["nodes"]:
        assert (
            node_hash(bytes.fromhex(node["left"]), bytes.fromhex(node["right"])).hex()
            == (node["hash"])
        )
    for p in v["inclusion"]:
        proof = [bytes.fromhex(h) for h in p["proof"]]
        verify_inclusion(
            bytes.fromhex(p["leaf_hash"]), p["index"], p["size"], proof, bytes.fromhex(p["root"])
        )
    for p in v["bad_inclusion"]:
        with pytest.raises(VerificationFailed):
            verify_inclusion(
                bytes.fromhex(p["leaf_hash"]),
                p["index"],
                p["size"],
                [bytes.fromhex(h) for h in p["proof"]],
                bytes.fromhex(p["root"]),
            )


def test_the_checkpoint_note_matches_the_vectors() -> None:
    v = load("checkpoint.json")
    signer = NoteSigner.parse(v["signer"])
    verifier = NoteVerifier.parse(v["verifier"])
    assert signer.verifier == verifier and verifier.key_hash.hex() == v["key_hash"]
    cp = parse_checkpoint(v["note"], verifier)
    assert (cp.origin, cp.size, cp.root.hex(), cp.body()) == (
        v["origin"],
        v["size"],
        v["root"],
        v["body"],
    )
    assert cp.sign(signer) == v["note"]
    assert verify_note(v["cosigned_note"], verifier) == v["body"]
    for bad in v["bad_notes"]:
        with pytest.raises(VerificationFailed):
            verify_note(bad["note"], verifier)
    spec = v["spec_example"]
    assert verify_note(spec["note"], NoteVerifier.parse(spec["verifier"])) == spec["text"]


def test_the_entry_vector_verifies_as_the_explorer_checks_it() -> None:
    v = load("entry.json")
    leaf = base64.b64decode(v["entry"]["leaf"])
    assert signed_slice(leaf) == canonical(v["shown"]) == v["signed_slice"].encode()
    assert verify_signature(
        v["shown"]["actor"], signed_slice(leaf), base64.b64decode(v["entry"]["sig"])
    )
    cp = parse_checkpoint(v["note"], NoteVerifier.parse(v["verifier"]))
    p = v["proof"]
    assert leaf_hash(leaf).hex() == p["leaf_hash"] and cp.size == p["size"]
    verify_inclusion(
        leaf_hash(leaf), p["index"], cp.size, [bytes.fromhex(h) for h in p["proof"]], cp.root
    )
