"""Signed notes and checkpoints, checked against the reference Go implementation.

The hub's checkpoints are C2SP signed notes so that existing transparency-log tooling and
witnesses can read them. Three kinds of evidence here: the published test vector of
golang.org/x/mod/sumdb/note (Peter Neumann's key), properties of our own sign/verify pair,
and a small Go program (tests/interop/notecheck) built against Debian's copy of that
package, which verifies our hub's real checkpoints and signs notes for us to verify.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonweal.errors import InvalidInput, VerificationFailed
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    parse_checkpoint,
    sign_note,
    verify_note,
)

# -- the golang.org/x/mod/sumdb/note test vector ------------------------------------------
# Copied from golang.org/x/mod v0.7.0, sumdb/note/example_test.go (Debian package
# golang-golang-x-mod-dev, /usr/share/gocode/src/golang.org/x/mod/sumdb/note/).

GO_NOTE_SOURCE = Path("/usr/share/gocode/src/golang.org/x/mod/sumdb/note/example_test.go")
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG_LINE = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
    "dngotpRZb6KE6RyyBwJnAM=\n"
)
PETER_NOTE = PETER_TEXT + "\n" + PETER_SIG_LINE


def test_the_vector_is_the_one_the_go_package_publishes() -> None:
    if not GO_NOTE_SOURCE.exists():
        pytest.skip(f"{GO_NOTE_SOURCE} is not installed (apt-get install golang-golang-x-mod-dev)")
    source = GO_NOTE_SOURCE.read_text()
    assert f'skey := "{PETER_SKEY}"' in source
    assert f'vkey := "{PETER_VKEY}"' in source
    assert PETER_SIG_LINE.rstrip("\n") in source


def test_go_vector_verifies() -> None:
    verifier = NoteVerifier.parse(PETER_VKEY)
    assert verifier.name == "PeterNeumann"
    assert verifier.key_hash == bytes.fromhex("c74f20a3")
    assert verify_note(PETER_NOTE, verifier) == PETER_TEXT


def test_go_vector_signer_key_gives_the_same_verifier_and_the_same_signature() -> None:
    signer = NoteSigner.parse(PETER_SKEY)
    assert str(signer) == PETER_SKEY
    assert str(signer.verifier) == PETER_VKEY
    # Ed25519 is deterministic, so our signature line must be Go's, byte for byte.
    assert sign_note(PETER_TEXT, signer) == PETER_NOTE


def test_go_vector_refuses_tampered_text() -> None:
    verifier = NoteVerifier.parse(PETER_VKEY)
    tampered = PETER_NOTE.replace("cryptography", "cryptographY")
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_note(tampered, verifier)


# -- keys ----------------------------------------------------------------------------------

names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="+", exclude_categories=["Cc"]),
    min_size=1,
    max_size=30,
).filter(lambda s: not any(c.isspace() for c in s))
seeds = st.binary(min_size=32, max_size=32)


@settings(max_examples=100, deadline=None)
@given(name=names, seed=seeds)
def test_key_hash_is_sha256_of_name_newline_alg_and_public_key(name: str, seed: bytes) -> None:
    key = SigningKey(seed)
    signer = NoteSigner(name, key)
    expected = hashlib.sha256(name.encode() + b"\n" + b"\x01" + key.public_key).digest()[:4]
    assert signer.verifier.key_hash == expected
    assert signer.verifier.public_key == key.public_key
    assert signer.verifier.name == name


@settings(max_examples=100, deadline=None)
@given(name=names, seed=seeds)
def test_signer_and_verifier_strings_parse_back(name: str, seed: bytes) -> None:
    signer = NoteSigner(name, SigningKey(seed))
    text = str(signer)
    assert text.startswith(f"PRIVATE+KEY+{name}+{signer.verifier.key_hash.hex()}+")
    back = NoteSigner.parse(text)
    assert back.name == name
    assert back.key.seed == seed
    assert str(back) == text
    vtext = str(signer.verifier)
    assert vtext == (
        f"{name}+{signer.verifier.key_hash.hex()}+"
        + base64.b64encode(b"\x01" + signer.key.public_key).decode()
    )
    assert NoteVerifier.parse(vtext) == signer.verifier
    assert NoteVerifier.parse(vtext + "\n") == signer.verifier  # as read from a file


@pytest.mark.parametrize("name", ["", "has space", "tab\there", "a+b", "new\nline", "nbsp\xa0"])
def test_note_names_with_spaces_or_plus_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="name"):
        NoteSigner(name, SigningKey(bytes(32)))


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a3",  # two parts
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW+x",  # four
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong hash
        "PeterNeumann+zz4f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not hex
        "PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # short hash
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad base64
        "PeterNeumann+c74f20a3+!Rpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not base64
        # From the Go package's own bad-key tests: wrong key length, unknown algorithm.
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # empty name
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(InvalidInput):
        NoteVerifier.parse(vkey)


@pytest.mark.parametrize("alg", [0x00, 0x02, 0xFF])
def test_verifier_keys_of_other_algorithms_are_refused_even_with_a_matching_hash(alg: int) -> None:
    public_key = SigningKey(bytes(32)).public_key
    key_hash = hashlib.sha256(b"log\n\x01" + public_key).digest()[:4]
    vkey = f"log+{key_hash.hex()}+" + base64.b64encode(bytes([alg]) + public_key).decode()
    with pytest.raises(InvalidInput, match="Ed25519"):
        NoteVerifier.parse(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        PETER_VKEY,  # a verifier key is not a signer key
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+ZYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+Peter Neumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PUBLIC+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
)
def test_malformed_signer_keys_are_refused(skey: str) -> None:
    with pytest.raises(InvalidInput):
        NoteSigner.parse(skey)


# -- sign and verify -----------------------------------------------------------------------

# Note text as C2SP signed-note allows it: UTF-8 with no control characters but newline,
# ending in a newline.
note_lines = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Zl", "Zp"]), max_size=40
)
note_texts = st.lists(note_lines, min_size=1, max_size=5).map(lambda ls: "\n".join(ls) + "\n")


@settings(max_examples=100, deadline=None)
@given(name=names, seed=seeds, text=note_texts)
def test_signed_notes_verify_and_return_their_text(name: str, seed: bytes, text: str) -> None:
    signer = NoteSigner(name, SigningKey(seed))
    note = sign_note(text, signer)
    assert note.startswith(text + "\n— " + name + " ")
    assert verify_note(note, signer.verifier) == text
    # Another signature (a witness's cosignature, say) does not get in the way.
    witness = NoteSigner("witness", SigningKey(bytes(range(32))))
    cosigned = note + sign_note(text, witness)[len(text) + 1 :]
    assert verify_note(cosigned, signer.verifier) == text
    assert verify_note(cosigned, witness.verifier) == text


def _sig_blob(note: str) -> tuple[str, bytes]:
    line = note[note.rfind("\n\n") + 2 :].splitlines()[0]
    name, b64 = line.removeprefix("— ").split(" ")
    return name, base64.b64decode(b64)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, text=note_texts)
def test_any_tampered_character_of_a_signed_note_fails(seed: bytes, text: str) -> None:
    signer = NoteSigner("example.com/log", SigningKey(seed))
    note = sign_note(text, signer)
    original = _sig_blob(note)
    for i, c in enumerate(note):
        for r in {chr(ord(c) ^ 1), "x" if c != "x" else "y", "\n" if c != "\n" else " "}:
            tampered = note[:i] + r + note[i + 1 :]
            try:
                got = verify_note(tampered, signer.verifier)
            except VerificationFailed:
                continue
            # Only a re-spelling of the same base64 signature may pass (the last character
            # before '=' carries two unused bits): the same text, the same signature bytes.
            assert got == text
            assert i > len(text) + 1
            assert _sig_blob(tampered) == original, f"tampered note verified: {tampered!r}"


def test_tampered_signature_bytes_fail() -> None:
    signer = NoteSigner("example.com/log", SigningKey(bytes(32)))
    text = "example.com/log\n7\n" + base64.b64encode(bytes(32)).decode() + "\n"
    note = sign_note(text, signer)
    name, blob = _sig_blob(note)
    for bit in range(len(blob) * 8):
        bad = bytearray(blob)
        bad[bit // 8] ^= 1 << (bit % 8)
        forged = text + "\n— " + name + " " + base64.b64encode(bytes(bad)).decode() + "\n"
        with pytest.raises(VerificationFailed):
            verify_note(forged, signer.verifier)


def test_a_note_signed_by_another_key_fails() -> None:
    text = "hello\n"
    ours = NoteSigner("example.com/log", SigningKey(bytes(32)))
    theirs = NoteSigner("example.com/log", SigningKey(bytes([1]) * 32))
    with pytest.raises(VerificationFailed, match="no signature by"):
        verify_note(sign_note(text, theirs), ours.verifier)
    # Their signature under our key hash: the hash matches, so the signature is checked.
    forged_blob = ours.verifier.key_hash + _sig_blob(sign_note(text, theirs))[1][4:]
    forged = f"{text}\n— example.com/log {base64.b64encode(forged_blob).decode()}\n"
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_note(forged, ours.verifier)
    # The same key under another name is another verifier.
    renamed = NoteSigner("example.org/log", ours.key)
    with pytest.raises(VerificationFailed):
        verify_note(sign_note(text, renamed), ours.verifier)


@pytest.mark.parametrize(
    "note",
    [
        "",
        "text only\n",
        "no blank line\n— example.com/log AAAA\n",
        "text\n\n— example.com/log\n",  # no signature field
        "text\n\n- example.com/log AAAA\n",  # hyphen, not em dash
        "text\n\n— example.com/log !!!!\n",  # not base64
        "text\n\n— example.com/log AAAA AAAA\n",  # two fields
        "text\n\n",  # no signatures at all
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    verifier = NoteSigner("example.com/log", SigningKey(bytes(32))).verifier
    with pytest.raises(VerificationFailed):
        verify_note(note, verifier)


def test_sign_note_refuses_text_without_a_final_newline() -> None:
    with pytest.raises(InvalidInput, match="newline"):
        sign_note("no newline", NoteSigner("n", SigningKey(bytes(32))))


# -- checkpoints ---------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(0, 2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    ext=st.lists(note_lines.filter(bool), max_size=3),
)
def test_checkpoints_roundtrip(size: int, root: bytes, ext: list[str]) -> None:
    signer = NoteSigner("example.com/log", SigningKey(bytes(32)))
    cp = Checkpoint("example.com/log", size, root, tuple(ext))
    lines = ["example.com/log", str(size), base64.b64encode(root).decode(), *ext]
    assert cp.body() == "\n".join(lines) + "\n"
    note = cp.sign(signer)
    assert parse_checkpoint(note, signer.verifier) == cp


@pytest.mark.parametrize(
    "body",
    [
        "example.com/log\n7\n",  # two lines
        "example.com/log\n07\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "example.com/log\n-7\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "example.com/log\nseven\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "example.com/log\n7\n" + base64.b64encode(bytes(31)).decode() + "\n",
        "example.com/log\n7\nnot base64!\n",
    ],
)
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    signer = NoteSigner("example.com/log", SigningKey(bytes(32)))
    with pytest.raises(VerificationFailed):
        parse_checkpoint(sign_note(body, signer), signer.verifier)


# -- interop with golang.org/x/mod/sumdb/note --------------------------------------------

NOTECHECK_SRC = Path(__file__).parent / "interop" / "notecheck"


@pytest.fixture(scope="module")
def notecheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go note checker, built offline against Debian's golang.org/x/mod."""
    go = shutil.which("go")
    if go is None:
        pytest.skip(
            "`go` is not on PATH; install it with "
            "`apt-get install -y golang-go golang-golang-x-mod-dev`"
        )
    out = tmp_path_factory.mktemp("notecheck")
    env = {
        **os.environ,
        "GOPATH": "/usr/share/gocode",  # where Debian puts golang.org/x/mod
        "GO111MODULE": "off",  # GOPATH mode: no go.mod, no module proxy
        "GOFLAGS": "",
        "GOPROXY": "off",
        "GOCACHE": str(out / "cache"),
    }
    result = subprocess.run(
        [go, "build", "-o", str(out / "notecheck"), "."],
        cwd=NOTECHECK_SRC,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        "building tests/interop/notecheck failed; is golang-golang-x-mod-dev installed?\n"
        + result.stderr
    )
    return out / "notecheck"


def go(
    notecheck: Path, tmp_path: Path, command: str, key: str, text: str
) -> subprocess.CompletedProcess[str]:
    key_file, text_file = tmp_path / f"{command}.key", tmp_path / f"{command}.txt"
    key_file.write_text(key + "\n")
    text_file.write_bytes(text.encode())
    return subprocess.run(
        [str(notecheck), command, str(key_file), str(text_file)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


@pytest.fixture(scope="module")
def hub_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """A real hub's latest checkpoint, its verifier key and its signer key."""
    from commonweal.community.charter import Charter
    from commonweal.hub import Hub

    directory = tmp_path_factory.mktemp("interop") / "hub"
    hub, _founder = Hub.init(directory, charter=Charter(name="Interop"), founder_name="Ada")
    try:
        return hub.log.checkpoint(), str(hub.verifier), str(hub.signer)
    finally:
        hub.close()


@pytest.mark.go
def test_go_verifies_the_go_vector(notecheck: Path, tmp_path: Path) -> None:
    # The checker itself works: it accepts the note its own package documents.
    result = go(notecheck, tmp_path, "verify", PETER_VKEY, PETER_NOTE)
    assert result.returncode == 0, result.stderr
    assert result.stdout == PETER_TEXT


@pytest.mark.go
def test_go_verifies_a_hub_checkpoint(
    notecheck: Path, tmp_path: Path, hub_checkpoint: tuple[str, str, str]
) -> None:
    note, vkey, _ = hub_checkpoint
    result = go(notecheck, tmp_path, "verify", vkey, note)
    assert result.returncode == 0, result.stderr
    cp = parse_checkpoint(note, NoteVerifier.parse(vkey))
    assert cp.size >= 1
    assert result.stdout == cp.body()
    assert result.stdout.splitlines()[:3] == [
        cp.origin,
        str(cp.size),
        base64.b64encode(cp.root).decode(),
    ]


@pytest.mark.go
def test_go_refuses_a_tampered_hub_checkpoint(
    notecheck: Path, tmp_path: Path, hub_checkpoint: tuple[str, str, str]
) -> None:
    note, vkey, _ = hub_checkpoint
    origin, size, root = note.split("\n")[:3]
    sig_at = note.rindex(" ") + 10  # a character in the middle of the signature
    other = "A" if note[sig_at] != "A" else "B"
    tampered = [
        note.replace(f"\n{size}\n", f"\n{int(size) + 1}\n", 1),  # a bigger tree
        note.replace(root, base64.b64encode(bytes(32)).decode(), 1),  # another root
        note[:sig_at] + other + note[sig_at + 1 :],  # a damaged signature
    ]
    for bad in tampered:
        assert bad != note
        result = go(notecheck, tmp_path, "verify", vkey, bad)
        assert result.returncode != 0, f"Go accepted a tampered checkpoint:\n{bad}"
        assert "invalid signature" in result.stderr or "malformed" in result.stderr
        with pytest.raises(VerificationFailed):
            verify_note(bad, NoteVerifier.parse(vkey))
    # The right note under another key with the same name is unverified, in Go as here.
    stranger = NoteSigner(origin, SigningKey(bytes(32))).verifier
    result = go(notecheck, tmp_path, "verify", str(stranger), note)
    assert result.returncode != 0
    assert "no verifiable signatures" in result.stderr


@pytest.mark.go
def test_go_signs_hub_checkpoints_exactly_as_the_hub_does(
    notecheck: Path, tmp_path: Path, hub_checkpoint: tuple[str, str, str]
) -> None:
    note, vkey, skey = hub_checkpoint
    text = verify_note(note, NoteVerifier.parse(vkey))
    result = go(notecheck, tmp_path, "sign", skey, text)
    assert result.returncode == 0, result.stderr
    assert result.stdout == note  # deterministic Ed25519: byte-identical notes
    assert verify_note(result.stdout, NoteVerifier.parse(vkey)) == text


@pytest.mark.go
@pytest.mark.parametrize("case", range(8))
def test_notes_go_signs_verify_here_and_ours_verify_in_go(
    notecheck: Path, tmp_path: Path, case: int
) -> None:
    # Go makes the key; our parser must agree on the verifier it implies.
    keygen = subprocess.run(
        [str(notecheck), "keygen", f"example.com/log{case}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert keygen.returncode == 0, keygen.stderr
    skey, vkey = keygen.stdout.split()
    signer = NoteSigner.parse(skey)
    assert str(signer) == skey
    assert str(signer.verifier) == vkey
    verifier = NoteVerifier.parse(vkey)
    noise = hashlib.sha256(b"checkpoint %d" % case).digest()
    cp = Checkpoint(
        signer.name,
        int.from_bytes(noise[:7], "big") >> case,
        hashlib.sha256(noise).digest(),
        ("extension line: ünïcødé ✓",) if case % 2 else (),
    )
    signed_by_go = go(notecheck, tmp_path, "sign", skey, cp.body())
    assert signed_by_go.returncode == 0, signed_by_go.stderr
    assert parse_checkpoint(signed_by_go.stdout, verifier) == cp
    assert signed_by_go.stdout == cp.sign(signer)
    checked_by_go = go(notecheck, tmp_path, "verify", vkey, cp.sign(signer))
    assert checked_by_go.returncode == 0, checked_by_go.stderr
    assert checked_by_go.stdout == cp.body()
