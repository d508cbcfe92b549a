"""Ed25519 keys: members sign their own acts, the hub signs checkpoints.

A member's key id is the hex of their 32-byte public key, so anyone can check an event's
signature from the event alone, without asking the hub who the actor is. Key files are
small JSON documents written with mode 0600; the private part is the 32-byte seed.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import nacl.signing

from commonweal.errors import BadSignature, ConfigError, InvalidInput
from commonweal.ledger.files import private_directory

__all__ = ["SigningKey", "is_key_id", "verify_signature"]

_KEY_FILE_KIND = "commonweal-member-key"


_KEY_ID = re.compile(r"[0-9a-f]{64}")


def is_key_id(value: object) -> bool:
    """True if ``value`` looks like a key id: exactly 64 lowercase hex digits."""
    return isinstance(value, str) and _KEY_ID.fullmatch(value) is not None


def verify_signature(key_id: str, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``key_id``'s Ed25519 signature of ``message``."""
    if len(signature) != 64:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, bytes.fromhex(key_id))
    except (nacl.exceptions.BadSignatureError, ValueError, nacl.exceptions.CryptoError):
        return False
    return True


class SigningKey:
    """An Ed25519 private key with its public key id."""

    __slots__ = ("_sk", "key_id", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise InvalidInput(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        self._sk = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._sk.verify_key)
        self.key_id: str = self.public_key.hex()

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(32))

    @property
    def seed(self) -> bytes:
        return bytes(self._sk)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached signature of ``message``."""
        return bytes(self._sk.sign(message).signature)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id[:16]}…)"

    # -- files ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        """Write the key as JSON with mode 0600; refuse to overwrite an existing file."""
        doc = {
            "kind": _KEY_FILE_KIND,
            "v": 1,
            "algorithm": "ed25519",
            "key_id": self.key_id,
            "seed": base64.b64encode(self.seed).decode(),
        }
        if name is not None:
            doc["name"] = name
        p = Path(path)
        private_directory(p.parent)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(
                f"{p} already exists; choose another --out or delete it first"
            ) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(doc, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        p = Path(path)
        try:
            doc = json.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"key file {p} does not exist; make one with `commonweal key new --out {p}`"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"key file {p} is not readable JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("kind") != _KEY_FILE_KIND:
            raise ConfigError(f"{p} is not a Commonweal member key file")
        try:
            key = cls(base64.b64decode(doc["seed"], validate=True))
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"key file {p} has no valid seed: {exc}") from None
        if doc.get("key_id") not in (None, key.key_id):
            raise ConfigError(f"key file {p}: key_id does not match its seed")
        return key


def check_signature(key_id: str, message: bytes, signature: bytes, *, what: str) -> None:
    """Raise :class:`BadSignature` naming ``what`` if the signature does not verify."""
    if not verify_signature(key_id, message, signature):
        raise BadSignature(
            f"{what}: signature does not verify for actor {key_id[:16]}…; "
            "sign the canonical (RFC 8785) bytes of the event with the actor's key"
        )
