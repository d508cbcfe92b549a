"""A node's key: the ECDSA P-384 key a member's SuperNode proves itself with.

Flower's SuperLink (with ``--enable-supernode-auth``) admits only SuperNodes whose public
key was registered; the member logs that public key in ``federated.enroll`` so the hub can
register it. The private key is an OpenSSH file beside the member's signing key
(``KEY.node``, 0600), the public key one line beside it (``KEY.node.pub``, no comment: the
line is what the log holds).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from commonweal.errors import InvalidInput
from commonweal.ledger.files import write_private

__all__ = ["make_node_key", "node_key_path", "public_line", "read_public_line"]

KEY_TYPE = "ecdsa-sha2-nistp384"


def node_key_path(member_key: Path) -> Path:
    """Where the node key of the member whose signing key is ``member_key`` lives."""
    return member_key.with_name(member_key.name + ".node")


def public_line(private: ec.EllipticCurvePrivateKey) -> str:
    """The OpenSSH public line (``ecdsa-sha2-nistp384 AAAA…``, no comment) of a key."""
    raw = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return raw.decode().strip()


def make_node_key(path: Path) -> str:
    """Make a new P-384 node key at ``path`` (0600) and ``path.pub``; its public line.
    An existing key is never overwritten (a registered key cannot be registered again)."""
    if path.exists():
        raise InvalidInput(f"{path} exists already; use it, or move it away to make a new one")
    private = ec.generate_private_key(ec.SECP384R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    write_private(path, pem, replace=False)
    line = public_line(private)
    path.with_name(path.name + ".pub").write_text(line + "\n")
    return line


def read_public_line(path: Path) -> str:
    """The public line of the node key at ``path`` (read from the private key itself, so
    an edited ``.pub`` cannot disagree with the key the SuperNode proves)."""
    try:
        private = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise InvalidInput(
            f"{path}: no node key there; `commonweal node enroll` makes one"
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"{path}: not an OpenSSH private key ({exc})") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp384r1":
        raise InvalidInput(f"{path}: a node key must be ECDSA P-384; make a new one")
    return public_line(private)
