"""Reward claims an EVM chain can pay out: EIP-55 addresses and the MerkleDistributor document.

An epoch's shares become a balance map, address → integer amount, and ``distributor`` turns
it into the JSON document Uniswap's MerkleDistributor tooling produces
(``parseBalanceMap`` in ``src/parse-balance-map.ts``, with ``src/balance-tree.ts`` and
``src/merkle-tree.ts``), so the same root can be handed to the deployed contract and the
same proofs to its ``claim``. Everything that decides a byte of the output is fixed here:
addresses are EIP-55 checksummed and sorted as strings (that order is the claim index);
leaves are ``keccak256(abi.encodePacked(uint256 index, address account, uint256 amount))``;
the leaves are sorted as bytes before the tree is built; each parent hashes its two
children in sorted order; a node left without a partner moves up a level unchanged;
amounts and the total are ethers' even-length hex strings. The module is pure — no I/O,
no clock — because the log's rules import it and every replay must agree byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "UINT256_LIMIT",
    "checksum_address",
    "distributor",
    "distributor_json",
    "is_evm_address",
    "keccak256",
    "leaf_hash",
    "verify_proof",
]

UINT256_LIMIT: Final = 1 << 256
"""Amounts, indices and the token total must be below this: they are Solidity ``uint256``."""

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_BYTES32 = re.compile(r"0x[0-9a-fA-F]{64}")


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (the original padding, not NIST SHA3-256)."""
    # pycryptodome loads on first use: every hub process imports these rules, few export
    # claims.
    from Crypto.Hash import keccak

    return keccak.new(digest_bits=256, data=data).digest()


# -- addresses (EIP-55) -------------------------------------------------------------------


def checksum_address(text: str) -> str:
    """The EIP-55 form of ``text``; ValueError unless it is ``0x`` + 40 hex digits whose
    letters are all lower case, all upper case, or already a correct checksum."""
    if not isinstance(text, str) or not _ADDRESS.fullmatch(text):
        raise ValueError(f"not an EVM address (want 0x followed by 40 hex digits): {text!r}")
    body = text[2:]
    lowered = body.lower()
    digest = keccak256(lowered.encode("ascii")).hex()
    # EIP-55: a letter is upper case exactly when the matching nibble of the hash is >= 8.
    checked = "".join(
        char.upper() if char.isalpha() and int(nibble, 16) >= 8 else char
        for char, nibble in zip(lowered, digest, strict=False)
    )
    # Mixed case is a claim to carry a checksum, so it has to be the right one (as ethers'
    # getAddress does); a single-case address carries none and is taken as written.
    mixed = body != lowered and body != body.upper()
    if mixed and body != checked:
        raise ValueError(f"bad EIP-55 checksum in {text!r} (the checksummed form is 0x{checked})")
    return "0x" + checked


def is_evm_address(text: object) -> bool:
    """True when ``text`` is a string ``checksum_address`` accepts."""
    if not isinstance(text, str):
        return False
    try:
        checksum_address(text)
    except ValueError:
        return False
    return True


# -- leaves and proofs --------------------------------------------------------------------


def _uint256(value: object, what: str) -> int:
    # bool is an int in Python, but True is never a meant amount or index.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, not {type(value).__name__}: {value!r}")
    if not 0 <= value < UINT256_LIMIT:
        raise ValueError(f"{what} must be in [0, 2**256): {value}")
    return value


def leaf_hash(index: int, account: str, amount: int) -> bytes:
    """The tree leaf the contract recomputes in ``claim``:
    ``keccak256(abi.encodePacked(uint256 index, address account, uint256 amount))``."""
    index = _uint256(index, "index")
    amount = _uint256(amount, "amount")
    address = bytes.fromhex(checksum_address(account)[2:])
    return keccak256(index.to_bytes(32, "big") + address + amount.to_bytes(32, "big"))


def _parent(left: bytes, right: bytes) -> bytes:
    # Pairs are hashed smaller-first, so a proof needs no left/right flags.
    low, high = sorted((left, right))
    return keccak256(low + high)


def _bytes32(value: str | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        if len(value) != 32:
            raise ValueError(f"{what} must be 32 bytes, got {len(value)}")
        return value
    if not isinstance(value, str) or not _BYTES32.fullmatch(value):
        raise ValueError(f"{what} must be 0x followed by 64 hex digits: {value!r}")
    return bytes.fromhex(value[2:])


def verify_proof(
    root_hex: str, index: int, account: str, amount: int, proof: Sequence[str | bytes]
) -> bool:
    """Whether ``proof`` leads from the claim's leaf to ``root_hex``, folding sorted pairs as
    the contract's ``MerkleProof.verify`` does. A well-formed claim that is not in the tree
    gives False; a malformed root, proof element, address, index or amount raises ValueError."""
    root = _bytes32(root_hex, "root")
    if isinstance(proof, str | bytes):
        raise ValueError("proof must be a sequence of 32-byte hashes, not a single string")
    node = leaf_hash(index, account, amount)
    for position, sibling in enumerate(proof):
        node = _parent(node, _bytes32(sibling, f"proof[{position}]"))
    return node == root


# -- the MerkleDistributor document -------------------------------------------------------


def _hex_quantity(value: int) -> str:
    # ethers' BigNumber.toHexString: lower case, padded to whole bytes (750 -> "0x02ee").
    digits = format(value, "x")
    return "0x" + ("0" + digits if len(digits) % 2 else digits)


def _layers(leaves: list[bytes]) -> list[list[bytes]]:
    layers = [leaves]
    while len(layers[-1]) > 1:
        below = layers[-1]
        layers.append(
            [
                _parent(below[i], below[i + 1]) if i + 1 < len(below) else below[i]
                for i in range(0, len(below), 2)
            ]
        )
    return layers


def _proof(layers: list[list[bytes]], position: int) -> list[str]:
    path = []
    for layer in layers:
        sibling = position ^ 1
        # The last node of an odd layer has no partner: nothing joins the proof there.
        if sibling < len(layer):
            path.append("0x" + layer[sibling].hex())
        position //= 2
    return path


def distributor(balances: Mapping[str, int]) -> dict[str, Any]:
    """The ``{merkleRoot, tokenTotal, claims}`` document for ``balances`` (address → amount),
    as Uniswap's ``parseBalanceMap`` writes it. ValueError for an empty map, a bad address,
    two spellings of one address, or an amount that is not an integer in [1, 2**256)."""
    if not isinstance(balances, Mapping):
        raise ValueError(f"balances must be a mapping of address to amount, not {balances!r}")
    if not balances:
        raise ValueError("no balances: a distribution needs at least one claim")
    amounts: dict[str, int] = {}
    spelled: dict[str, str] = {}
    for account, amount in balances.items():
        try:
            address = checksum_address(account)
        except ValueError as exc:
            raise ValueError(f"invalid address: {exc}") from None
        if address in amounts:
            raise ValueError(
                f"duplicate address: {spelled[address]!r} and {account!r} are both {address}"
            )
        value = _uint256(amount, f"amount for {address}")
        if value <= 0:
            raise ValueError(f"amount for {address} must be positive: {value}")
        amounts[address] = value
        spelled[address] = account
    total = sum(amounts.values())
    if total >= UINT256_LIMIT:
        raise ValueError(f"token total does not fit in a uint256: {total}")

    # The index is the position in the checksummed addresses sorted as plain strings, as
    # JavaScript's default sort orders them: digits < A-F < a-f, so not numeric order.
    accounts = sorted(amounts)
    leaves = [leaf_hash(index, account, amounts[account]) for index, account in enumerate(accounts)]
    # The tree is built over the leaves sorted as bytes (and deduplicated, though distinct
    # indices make every leaf distinct), not in index order.
    ordered = sorted(set(leaves))
    position = {leaf: place for place, leaf in enumerate(ordered)}
    layers = _layers(ordered)
    claims = {
        account: {
            "index": index,
            "amount": _hex_quantity(amounts[account]),
            "proof": _proof(layers, position[leaves[index]]),
        }
        for index, account in enumerate(accounts)
    }
    return {
        "merkleRoot": "0x" + layers[-1][0].hex(),
        "tokenTotal": _hex_quantity(total),
        "claims": claims,
    }


def distributor_json(document: Mapping[str, Any]) -> str:
    """``document`` as ``JSON.stringify`` writes it: compact, keys in insertion order, no
    trailing newline (the reference script's ``console.log`` adds one)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
