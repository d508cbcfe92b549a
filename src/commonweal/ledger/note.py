"""C2SP signed notes and tlog checkpoints, so existing transparency-log tools can read ours.

A checkpoint body is three lines: the log's origin, its size in decimal, and the base64 of
its RFC 9162 root hash (C2SP ``tlog-checkpoint``). The hub signs it as a C2SP
``signed-note``: the text, a blank line, then one line per signature,
``— <name> <base64(key id || signature)>``, where for Ed25519 the 4-byte key id is the first
four bytes of SHA-256(name || "\\n" || 0x01 || public key). Verifier keys are printed as
``<name>+<hex key id>+<base64(0x01 || public key)>`` and signer keys (the hub's key file)
as ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``, as golang.org/x/mod's
``sumdb/note`` package writes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from commonweal.errors import InvalidInput, VerificationFailed
from commonweal.ledger.keys import SigningKey, verify_signature

__all__ = [
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "parse_checkpoint",
    "sign_note",
    "verify_note",
]

_ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 "  # em dash and a space, as the spec requires


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise InvalidInput(f"note key name {name!r} must be non-empty, with no spaces or '+'")


def _key_hash(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([_ALG_ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True)
class NoteVerifier:
    name: str
    key_hash: bytes
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> NoteVerifier:
        # The base64 key may itself hold '+': split at the first two only, as Go's note does.
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise InvalidInput(
                "a verifier key looks like NAME+KEYHASH+BASE64KEY; got "
                f"{len(parts)} '+'-separated parts"
            )
        name, hash_hex, b64 = parts
        _check_name(name)
        try:
            key_hash = bytes.fromhex(hash_hex)
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise InvalidInput(f"verifier key is malformed: {exc}") from None
        if len(key_hash) != 4 or len(raw) != 33 or raw[0] != _ALG_ED25519:
            raise InvalidInput("verifier key is not an Ed25519 note key")
        v = cls(name, key_hash, raw[1:])
        if _key_hash(name, v.public_key) != key_hash:
            raise InvalidInput("verifier key hash does not match its name and key")
        return v

    def __str__(self) -> str:
        b64 = base64.b64encode(bytes([_ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_hash.hex()}+{b64}"


@dataclass(frozen=True)
class NoteSigner:
    name: str
    key: SigningKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> NoteVerifier:
        pk = self.key.public_key
        return NoteVerifier(self.name, _key_hash(self.name, pk), pk)

    @classmethod
    def parse(cls, text: str) -> NoteSigner:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise InvalidInput("a signer key looks like PRIVATE+KEY+NAME+KEYHASH+BASE64KEY")
        name, hash_hex, b64 = parts[2:]
        try:
            raw = base64.b64decode(b64, validate=True)
        except ValueError as exc:  # binascii.Error, or non-ASCII text
            raise InvalidInput(f"signer key is malformed: {exc}") from None
        if len(raw) != 33 or raw[0] != _ALG_ED25519:
            raise InvalidInput("signer key is not an Ed25519 note key")
        signer = cls(name, SigningKey(raw[1:]))
        if signer.verifier.key_hash.hex() != hash_hex:
            raise InvalidInput("signer key hash does not match its name and key")
        return signer

    def __str__(self) -> str:
        b64 = base64.b64encode(bytes([_ALG_ED25519]) + self.key.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_hash.hex()}+{b64}"


def _check_text(text: str) -> bool:
    # As Go's note package requires: text ends in a newline and holds no control
    # characters but newlines.
    return text.endswith("\n") and not any(ord(c) < 0x20 and c != "\n" for c in text)


def sign_note(text: str, signer: NoteSigner) -> str:
    """Sign ``text`` (which must end in a newline) and return the whole signed note."""
    if not _check_text(text):
        raise InvalidInput("note text must end with a newline and hold no control characters")
    sig = signer.key.sign(text.encode())
    blob = base64.b64encode(signer.verifier.key_hash + sig).decode()
    return f"{text}\n{_SIG_PREFIX}{signer.name} {blob}\n"


def verify_note(note: str, verifier: NoteVerifier) -> str:
    """Return the note's text if one of its signatures is ``verifier``'s and verifies.

    Raises :class:`VerificationFailed` otherwise. Signatures by other keys are ignored, as
    the spec allows (witness cosignatures, for instance).
    """
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise VerificationFailed("signed note has no blank line before its signatures")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    if not _check_text(text):
        raise VerificationFailed("note text holds control characters")
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise VerificationFailed(f"signature line {line!r} does not start with an em dash")
        try:
            name, b64 = line[len(_SIG_PREFIX) :].split(" ")
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error):
            raise VerificationFailed(f"signature line {line!r} is malformed") from None
        if base64.b64encode(raw).decode() != b64:
            # Unused low bits in the last character would let one signature be spelled
            # several ways; accept only the canonical spelling, so a note is one string.
            raise VerificationFailed(f"signature line {line!r} is not canonical base64")
        if name != verifier.name or raw[:4] != verifier.key_hash:
            continue
        if len(raw) == 68 and verify_signature(verifier.public_key.hex(), text.encode(), raw[4:]):
            return text
        raise VerificationFailed(f"signature by {name} does not verify")
    raise VerificationFailed(f"note carries no signature by {verifier.name}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"

    def sign(self, signer: NoteSigner) -> str:
        return sign_note(self.body(), signer)


def parse_checkpoint(note: str, verifier: NoteVerifier) -> Checkpoint:
    """Verify a signed checkpoint note and parse its body."""
    text = verify_note(note, verifier)
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise VerificationFailed("checkpoint body has fewer than three lines")
    origin, size_s, root_b64, *ext = lines
    if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
        raise VerificationFailed(f"checkpoint size {size_s!r} is not a decimal number")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise VerificationFailed("checkpoint root is not base64") from None
    if len(root) != 32:
        raise VerificationFailed("checkpoint root is not a SHA-256 hash")
    return Checkpoint(origin, int(size_s), root, tuple(ext))
