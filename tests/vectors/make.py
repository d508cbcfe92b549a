"""Write the test vectors that the Python code and the browser's JavaScript must both meet.

    python -m tests.vectors.make          # rewrite tests/vectors/*.json
    python -m tests.vectors.make --check  # exit 1 if a file differs from what would be written

Every value comes from the Python implementation with fixed inputs (seeds, salts, times,
nonces); Ed25519 is deterministic, so signatures are fixed too. ``tests/test_vectors.py``
checks the Python code against the files and ``tests/web/test_vectors.py`` runs the same
files through the JS modules in Chromium, so a change on either side breaks a test.
Files are ASCII JSON (non-ASCII text as \\u escapes), so both sides read exactly the same
strings. Regenerate only for a deliberate change of a format, and say so in the commit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from commonweal.ledger.canonical import canonical
from commonweal.ledger.event import encode_leaf
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import MemoryTree, inclusion_proof, leaf_hash, node_hash
from commonweal.ledger.note import Checkpoint, NoteSigner
from commonweal.wire import auth_header, auth_message, describe_item

HERE = Path(__file__).parent


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def seed(label: str) -> bytes:
    """A fixed 32-byte seed named by ``label`` (SHA-256 of it)."""
    return hashlib.sha256(f"commonweal test vector {label}".encode()).digest()


# -- canonical JSON (RFC 8785) ------------------------------------------------------------

CANONICAL_CASES: list[tuple[str, Any]] = [
    ("scalars", [None, True, False, 0, -1, 1, 9007199254740991, -9007199254740991, ""]),
    ("empty containers", {"a": {}, "b": [], "c": [{}, []]}),
    ("key order is by UTF-16 code units", {"b": 1, "a": 2, "B": 3, "aa": 4, "a\u0000": 5, "": 6}),
    (
        "keys above U+FFFF sort by their surrogates",
        {"\ue000": 1, "\U0001f600": 2, "\uffff": 3, "z": 4},
    ),
    (
        "integer-like keys sort as strings",
        {"10": "ten", "2": "two", "1": "one", "a": "a", "01": "zero-one"},
    ),
    (
        "escapes",
        {
            "s": 'quote " backslash \\ slash / newline \n tab \t cr \r bs \b ff \f '
            "nul \u0000 us \u001f del \u007f"
        },
    ),
    (
        "unicode is written as UTF-8, not escaped",
        {"é": "café", "中文": "漢字", "emoji": "😀👍🏽", "ls": "\u2028\u2029"},
    ),
    (
        "nested",
        {"z": {"y": [3, {"b": [True, None], "a": "x"}]}, "a": [[[]], {"k": {"j": {"i": -7}}}]},
    ),
    (
        "an event envelope",
        {
            "v": 1,
            "kind": "contribution.submit",
            "actor": "ab" * 32,
            "time": "2026-01-31T12:00:00.000Z",
            "nonce": "AAAAAAAAAAAAAAAAAAAAAA",
            "body": {"items": [{"id": "00" * 16, "label": "pos", "consent": ["train"]}]},
        },
    ),
]


def canonical_vectors() -> dict[str, Any]:
    return {
        "about": "RFC 8785 canonical JSON: canonical(value) must equal text (UTF-8 bytes: hex)",
        "cases": [
            {
                "name": name,
                "value": value,
                "text": canonical(value).decode(),
                "hex": canonical(value).hex(),
            }
            for name, value in CANONICAL_CASES
        ],
    }


# -- keys and signed events ---------------------------------------------------------------

KEY_LABELS = ["ada", "grace", "alan"]


def key_vectors() -> dict[str, Any]:
    out = []
    for label in KEY_LABELS:
        key = SigningKey(seed(label))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "member.key"
            key.save(path, name=label.capitalize())
            text = path.read_text()
        out.append(
            {
                "name": label.capitalize(),
                "seed": b64(key.seed),
                "key_id": key.key_id,
                "key_file": text,
            }
        )
    return {
        "about": "seed -> key id (hex public key); the key file `commonweal key new` writes",
        "keys": out,
    }


EVENT_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("ada", "member.join", {"name": "Ada", "invite": "7p9AzrDaNwqhYvI5lhwv_OeP"}),
    ("grace", "review.submit", {"item": "03040e5f6fdd801f8194f391325ba015", "verdict": "accept"}),
    ("alan", "vote.cast", {"proposal": 42, "choice": ["b", "a"]}),
    (
        "grace",
        "proposal.create",
        {
            "title": 'Ünïcödé <b>title</b> & "quotes" 😀',
            "actions": [],
            "description": "line 1\nline 2",
        },
    ),
]


VECTOR_ORIGIN = "example.org/commonweal-vectors"


def event_vectors() -> dict[str, Any]:
    """Each case twice: version 1 (no hub; still read in old logs, byte-for-byte as before)
    and version 2, which names the hub's origin."""
    out = []
    for hub in (None, VECTOR_ORIGIN):
        for i, (label, kind, body) in enumerate(EVENT_CASES):
            key = SigningKey(seed(label))
            nonce_label = f"nonce {i}" if hub is None else f"nonce v2 {i}"
            event: dict[str, Any] = {
                "v": 1 if hub is None else 2,
                "kind": kind,
                "actor": key.key_id,
                "time": f"2026-01-31T12:00:0{i}.000Z",
                "nonce": base64.urlsafe_b64encode(
                    hashlib.sha256(nonce_label.encode()).digest()[:16]
                )
                .rstrip(b"=")
                .decode(),
                "body": body,
            }
            if hub is not None:
                event["hub"] = hub
            data = canonical(event)
            out.append(
                {
                    "seed": b64(key.seed),
                    "kind": kind,
                    "body": body,
                    "hub": hub,
                    "time": event["time"],
                    "nonce": event["nonce"],
                    "event": event,
                    "canonical": data.decode(),
                    "sig": b64(key.sign(data)),
                }
            )
    return {
        "about": (
            "signEvent(seed, kind, body, {hub, time, nonce}) -> event (hub null: the "
            "version 1 form); Ed25519 over canonical(event) -> sig (base64)"
        ),
        "events": out,
    }


def auth_vectors() -> dict[str, Any]:
    cases: list[tuple[str, str, str, bytes, int, str]] = [
        ("grace", "GET", "/w/waiting", b"", 1_767_225_600_000, "AAAAAAAAAAAAAAAAAAAAAA"),
        (
            "alan",
            "post",
            "/api/v1/members/me/export?format=json&x=%C3%A9",
            '{"url":"https://hooks.example/é"}'.encode(),
            1_800_000_000_123,
            "q83vEjRWeJCrze8SNFZ4kA",
        ),
        (
            "grace",
            "PUT",
            "/api/v1/models/3/try",
            b'{"inputs":[{"text":"bread"}]}',
            1_767_225_600_999,
            "-_-_-_-_-_-_-_-_-_-_-w",
        ),
    ]
    out = []
    for label, method, target, body, millis, nonce in cases:
        key = SigningKey(seed(label))
        out.append(
            {
                "seed": b64(key.seed),
                "method": method,
                "target": target,
                "body": body.decode(),
                "unix_ms": millis,
                "nonce": nonce,
                "message": auth_message(method, target, body, millis, nonce).decode(),
                "header": auth_header(
                    key, method, target, body=body, now=millis / 1000, nonce=nonce
                ),
            }
        )
    return {
        "about": (
            "X-Commonweal-Auth: v2.<key id>.<unix ms>.<nonce>.<base64 Ed25519 over "
            "'commonweal-request v2\\nMETHOD\\ntarget\\nunix ms\\nnonce\\nsha256hex(body)'>; "
            "body is the UTF-8 of the text given"
        ),
        "headers": out,
    }


# -- item commitments ---------------------------------------------------------------------

ITEM_CASES: list[tuple[dict[str, Any], str | None, str, list[str]]] = [
    (
        {"text": "The river was calm today.", "label": "pos"},
        "text-classification",
        "CC-BY-4.0",
        ["train"],
    ),
    (
        {"text": 'Ünïcödé — 漢字 😀 "quoted"\nnew line', "label": "neg"},
        "text-classification",
        "CC0-1.0",
        ["train", "evaluate"],
    ),
    (
        {"features": {"b": 2, "a": -1}, "target": "yes"},
        "tabular-classification",
        "CC-BY-4.0",
        ["train"],
    ),
    ({"text": "no label at all"}, "text-regression", "CC-BY-SA-4.0", []),
]


def item_vectors() -> dict[str, Any]:
    out = []
    for i, (item, task_kind, license, consent) in enumerate(ITEM_CASES):
        salt = hashlib.sha256(f"salt {i}".encode()).digest()[:16]
        meta, part = describe_item(
            item, task_kind=task_kind, license=license, consent=consent, salt=salt
        )
        out.append(
            {
                "item": item,
                "task_kind": task_kind,
                "license": license,
                "consent": consent,
                "salt": b64(salt),
                "commitment": meta["commitment"],
                "id": meta["id"],
                "meta": meta,
                "part": part,
            }
        )
    return {
        "about": (
            "commitment = sha256(salt || canonical(item)) hex; id = its first 32 "
            "hex digits; describe_item -> [meta, part]"
        ),
        "items": out,
    }


# -- Merkle trees, checkpoints, a whole entry ----------------------------------------------


def merkle_vectors() -> dict[str, Any]:
    leaves = [f"leaf {i}".encode() for i in range(7)] + [b"", bytes(range(256))]
    tree = MemoryTree(leaves)
    hashes = [leaf_hash(d) for d in leaves]
    nodes = [
        {
            "left": hashes[i].hex(),
            "right": hashes[i + 1].hex(),
            "hash": node_hash(hashes[i], hashes[i + 1]).hex(),
        }
        for i in range(0, 4, 2)
    ]
    proofs = []
    for size in range(1, len(leaves) + 1):
        root = tree.root(size)
        for index in range(size):
            proof = inclusion_proof(index, size, tree)
            proofs.append(
                {
                    "index": index,
                    "size": size,
                    "leaf_hash": hashes[index].hex(),
                    "proof": [h.hex() for h in proof],
                    "root": root.hex(),
                }
            )
    # Proofs that must fail, each with what is wrong.
    good = next(p for p in proofs if p["size"] == 7 and p["index"] == 5)
    flipped = list(good["proof"])
    flipped[0] = ("0" if flipped[0][0] != "0" else "1") + flipped[0][1:]
    bad = [
        {**good, "why": "a proof hash changed", "proof": flipped},
        {**good, "why": "the wrong index", "index": 4},
        # (Size 8 would pass: index 5's path is the same in trees of 7 and 8 leaves, which is
        # why a verifier takes the size from the signed checkpoint, never from the proof.)
        {**good, "why": "the wrong size", "size": 6},
        {**good, "why": "a hash short", "proof": good["proof"][:-1]},
        {**good, "why": "a hash too many", "proof": [*good["proof"], good["root"]]},
        {**good, "why": "another leaf", "leaf_hash": hashes[4].hex()},
    ]
    return {
        "about": (
            "RFC 9162: leaf hash = sha256(0x00 || data), node = sha256(0x01 || l "
            "|| r); inclusion proofs (hex)"
        ),
        "leaves": [{"data": b64(d), "hash": h.hex()} for d, h in zip(leaves, hashes, strict=True)],
        "nodes": nodes,
        "empty_root": hashlib.sha256(b"").hexdigest(),
        "inclusion": proofs,
        "bad_inclusion": bad,
    }


def _tamper(note: str, old: str, new: str) -> str:
    assert old in note
    return note.replace(old, new, 1)


def checkpoint_vectors() -> dict[str, Any]:
    signer = NoteSigner("example.org/commonweal-vectors", SigningKey(seed("hub")))
    other = NoteSigner("example.org/other-log", SigningKey(seed("other")))
    tree = MemoryTree([f"leaf {i}".encode() for i in range(7)])
    cp = Checkpoint(signer.name, 7, tree.root())
    note = cp.sign(signer)
    root_b64 = b64(cp.root)
    flipped_root = b64(bytes([cp.root[0] ^ 1]) + cp.root[1:])
    sig_line = note.split("\n")[-2]
    # Another key's signature line after the hub's (a witness's, say): ignored, not refused.
    cosigned = note + cp.sign(other).split("\n")[-2] + "\n"
    bad = [
        {"why": "the root changed", "note": _tamper(note, root_b64, flipped_root)},
        {"why": "the size changed", "note": _tamper(note, "\n7\n", "\n8\n")},
        {
            "why": "the origin changed",
            "note": _tamper(note, signer.name + "\n", signer.name + "x\n"),
        },
        {
            "why": "the signature changed",
            "note": _tamper(
                note,
                sig_line,
                sig_line[:-4] + ("AAA=" if not sig_line.endswith("AAA=") else "BBB="),
            ),
        },
        {"why": "signed by another key only", "note": cp.sign(other)},
        {"why": "no blank line", "note": note.replace("\n\n", "\n", 1)},
    ]
    return {
        "about": (
            "C2SP signed-note tlog checkpoints as the hub signs them, and notes that must fail"
        ),
        "signer": str(signer),
        "verifier": str(signer.verifier),
        "key_hash": signer.verifier.key_hash.hex(),
        "origin": cp.origin,
        "size": cp.size,
        "root": cp.root.hex(),
        "body": cp.body(),
        "note": note,
        "cosigned_note": cosigned,
        "bad_notes": bad,
        # From C2SP signed-note.md, "Example": another implementation's note.
        "spec_example": {
            "verifier": "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "note": "This is an example message.\n\n\u2014 example.com/foo "
            "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n",
            "text": "This is an example message.\n",
        },
    }


def entry_vectors() -> dict[str, Any]:
    """A small log of real leaves, its signed checkpoint, and one entry with its proof: what
    the ledger explorer's "Verify in my browser" checks, offline."""
    signer = NoteSigner(VECTOR_ORIGIN, SigningKey(seed("hub")))
    events = [e for e in event_vectors()["events"] if e["hub"] == VECTOR_ORIGIN]
    leaves = []
    for i, ev in enumerate(events):
        data = canonical(ev["event"])
        leaves.append(
            encode_leaf(data, i, f"2026-01-31T12:00:1{i}.000Z", base64.b64decode(ev["sig"]))
        )
    tree = MemoryTree(leaves)
    note = Checkpoint(signer.name, tree.size, tree.root()).sign(signer)
    index = 3
    proof = inclusion_proof(index, tree.size, tree)
    return {
        "about": "verifyEntry(...) of entry 3 of a 4-entry log: every step passes",
        "verifier": str(signer.verifier),
        "note": note,
        "leaves": [b64(leaf) for leaf in leaves],
        "entry": {"index": index, "leaf": b64(leaves[index]), "sig": events[index]["sig"]},
        "shown": events[index]["event"],
        "proof": {
            "index": index,
            "size": tree.size,
            "leaf_hash": leaf_hash(leaves[index]).hex(),
            "root": tree.root().hex(),
            "proof": [h.hex() for h in proof],
        },
        "signed_slice": canonical(events[index]["event"]).decode(),
    }


FILES = {
    "canonical.json": canonical_vectors,
    "keys.json": key_vectors,
    "events.json": event_vectors,
    "auth.json": auth_vectors,
    "items.json": item_vectors,
    "merkle.json": merkle_vectors,
    "checkpoint.json": checkpoint_vectors,
    "entry.json": entry_vectors,
}


def render(make: Any) -> str:
    return json.dumps(make(), indent=1, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, make in FILES.items():
        text, path = render(make), HERE / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale vectors: {', '.join(stale)}; run python -m tests.vectors.make")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
