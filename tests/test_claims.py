"""MerkleDistributor claims, checked against a reference that shares no code with the module.

The reference below hashes with ``sha3.keccak_256`` (safe-pysha3, the Keccak Code Package)
instead of pycryptodome, encodes leaves through hex text instead of ``int.to_bytes``, and
builds the tree the way Uniswap's ``src/merkle-tree.ts`` reads: sort the leaves as bytes,
drop duplicates, pair neighbours, let a lone last node rise unchanged. Every document the
module writes must equal the reference's, key for key and byte for byte; two outputs
published with the TypeScript tool are pinned as they were printed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import sha3
from hypothesis import given, settings
from hypothesis import strategies as st

from commonweal.community.claims import (
    UINT256_LIMIT,
    checksum_address,
    distributor,
    distributor_json,
    is_evm_address,
    keccak256,
    leaf_hash,
    verify_proof,
)

# -- the reference ----------------------------------------------------------------------


def _keccak(data: bytes) -> bytes:
    return bytes(sha3.keccak_256(data).digest())


def _eip55(address: str) -> str:
    hex_body = address[2:].lower()
    digest = _keccak(hex_body.encode()).hex()
    return "0x" + "".join(
        ch.upper() if ch in "abcdef" and digest[i] in "89abcdef" else ch
        for i, ch in enumerate(hex_body)
    )


def _leaf(index: int, account: str, amount: int) -> bytes:
    # abi.encodePacked(uint256, address, uint256), spelled out as hex text.
    return _keccak(bytes.fromhex(f"{index:064x}{account[2:].lower()}{amount:064x}"))


def _combined(first: bytes | None, second: bytes | None) -> bytes:
    if first is None:
        assert second is not None
        return second
    if second is None:
        return first
    return _keccak(b"".join(sorted([first, second])))


def _reference_layers(elements: Sequence[bytes]) -> list[list[bytes]]:
    ordered = sorted(elements)
    unique = [el for i, el in enumerate(ordered) if i == 0 or ordered[i - 1] != el]
    layers = [unique]
    while len(layers[-1]) > 1:
        layer = layers[-1]
        padded: list[bytes | None] = [*layer, None]
        layers.append([_combined(padded[i], padded[i + 1]) for i in range(0, len(layer), 2)])
    return layers


def _reference_proof(layers: list[list[bytes]], element: bytes) -> list[str]:
    idx = layers[0].index(element)
    proof = []
    for layer in layers:
        pair = idx + 1 if idx % 2 == 0 else idx - 1
        if pair < len(layer):
            proof.append("0x" + layer[pair].hex())
        idx //= 2
    return proof


def _reference_verify(root: str, index: int, account: str, amount: int, proof: list[str]) -> bool:
    node = _leaf(index, account, amount)
    for item in proof:
        node = _combined(node, bytes.fromhex(item[2:]))
    return "0x" + node.hex() == root


def _ethers_hex(value: int) -> str:
    text = hex(value)[2:]
    return "0x" + text.zfill(len(text) + len(text) % 2)


def _reference_document(balances: Mapping[str, int]) -> dict[str, Any]:
    by_address = {_eip55(account): amount for account, amount in balances.items()}
    addresses = sorted(by_address)
    leaves = [_leaf(i, a, by_address[a]) for i, a in enumerate(addresses)]
    layers = _reference_layers(leaves)
    return {
        "merkleRoot": "0x" + layers[-1][0].hex(),
        "tokenTotal": _ethers_hex(sum(by_address.values())),
        "claims": {
            a: {
                "index": i,
                "amount": _ethers_hex(by_address[a]),
                "proof": _reference_proof(layers, leaves[i]),
            }
            for i, a in enumerate(addresses)
        },
    }


def _assert_same_document(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got == want
    # dict equality ignores order; the JSON text (what gets published) must not.
    assert json.dumps(got) == json.dumps(want)


EMPTY_KECCAK = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_both_keccaks_give_the_known_hash_of_nothing() -> None:
    assert _keccak(b"").hex() == EMPTY_KECCAK
    assert keccak256(b"").hex() == EMPTY_KECCAK
    # and not NIST SHA3-256, whose padding differs
    assert (
        keccak256(b"").hex() != "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
    )


# -- EIP-55 -----------------------------------------------------------------------------

# The test vectors listed in EIP-55 itself (all caps, all lower, and normal).
EIP55_VECTORS = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("vector", EIP55_VECTORS)
def test_checksum_matches_the_eip55_vectors(vector: str) -> None:
    assert checksum_address(vector) == vector
    assert checksum_address(vector.lower()) == vector
    assert checksum_address("0x" + vector[2:].upper()) == vector
    assert _eip55(vector) == vector
    assert is_evm_address(vector)


@pytest.mark.parametrize("vector", EIP55_VECTORS[4:])
def test_a_mixed_case_address_with_one_letter_flipped_is_refused(vector: str) -> None:
    position = next(i for i, ch in enumerate(vector) if i >= 2 and ch.isalpha())
    flipped = vector[:position] + vector[position].swapcase() + vector[position + 1 :]
    assert not is_evm_address(flipped)
    with pytest.raises(ValueError, match="checksum"):
        checksum_address(flipped)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0x",
        "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",  # no 0x
        "0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",  # capital X
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",  # 39 digits
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAedd",  # 41 digits
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg",  # not hex
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\n",
        " 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0x٥aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",  # an Arabic-Indic digit
    ],
)
def test_malformed_addresses_are_refused(text: str) -> None:
    assert not is_evm_address(text)
    with pytest.raises(ValueError, match="not an EVM address"):
        checksum_address(text)


@pytest.mark.parametrize("value", [None, 0, b"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"])
def test_non_strings_are_not_addresses(value: object) -> None:
    assert not is_evm_address(value)
    with pytest.raises(ValueError):
        checksum_address(value)  # type: ignore[arg-type]


@given(st.binary(min_size=20, max_size=20))
def test_checksum_agrees_with_the_reference_and_is_idempotent(raw: bytes) -> None:
    lower = "0x" + raw.hex()
    want = _eip55(lower)
    assert checksum_address(lower) == want
    assert checksum_address("0x" + raw.hex().upper()) == want
    assert checksum_address(want) == want


# -- published outputs of the TypeScript tool --------------------------------------------

# Hardhat's first three default accounts, as used by the `parseBalanceMap` test in
# Uniswap/merkle-distributor `test/MerkleDistributor.test.ts` (wallet0, wallet1, wallets[2]).
HARDHAT_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
HARDHAT_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
HARDHAT_2 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def test_the_uniswap_parse_balance_map_fixture_is_reproduced_exactly() -> None:
    document = distributor({HARDHAT_0: 200, HARDHAT_1: 300, HARDHAT_2: 250})
    assert document["tokenTotal"] == "0x02ee"  # 750
    # The claims exactly as that test expects them (deep equality), in the order
    # JSON.stringify would print them.
    assert document["claims"] == {
        HARDHAT_0: {
            "index": 2,
            "amount": "0xc8",
            "proof": [
                "0x0782528e118c4350a2465fbeabec5e72fff06991a29f21c08d37a0d275e38ddd",
                "0xf3c5acb53398e1d11dcaa74e37acc33d228f5da944fbdea9a918684074a21cdb",
            ],
        },
        HARDHAT_1: {
            "index": 1,
            "amount": "0x012c",
            "proof": [
                "0xc86fd316fa3e7b83c2665b5ccb63771e78abcc0429e0105c91dde37cb9b857a4",
                "0xf3c5acb53398e1d11dcaa74e37acc33d228f5da944fbdea9a918684074a21cdb",
            ],
        },
        HARDHAT_2: {
            "index": 0,
            "amount": "0xfa",
            "proof": ["0x0c9bcaca2a1013557ef7f348b514ab8a8cd6c7051b69e46b1681a2aff22f4a88"],
        },
    }
    assert list(document) == ["merkleRoot", "tokenTotal", "claims"]
    assert list(document["claims"]) == [HARDHAT_2, HARDHAT_1, HARDHAT_0]
    # The fixture does not print the root; the proofs fix it, and the reference agrees.
    assert document["merkleRoot"] == (
        "0xfa438d67adba59048c48cd14c4cd5ff18d99a4e4e2729b3cf81b51c46223bd22"
    )
    _assert_same_document(
        document, _reference_document({HARDHAT_0: 200, HARDHAT_1: 300, HARDHAT_2: 250})
    )


def test_a_single_claim_is_its_own_root_with_an_empty_proof() -> None:
    # Printed by the TypeScript tool for {"0x5C69…aA6f": "100"} in the README of
    # Stevewu1234/merkle-distributor-array ("the same [result] of uniswap").
    document = distributor({"0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f": 100})
    assert document == {
        "merkleRoot": "0xdefa96435aec82d201dbd2e5f050fb4e1fef5edac90ce1e03953f916a5e1132d",
        "tokenTotal": "0x64",
        "claims": {
            "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f": {
                "index": 0,
                "amount": "0x64",
                "proof": [],
            }
        },
    }


def test_indices_follow_javascript_string_order_of_checksummed_addresses() -> None:
    # Numerically 0xa…02 < 0xb…04, but checksummed they read "0xa…" and "0xB…", and
    # JavaScript's default sort (like Python's) puts upper case before lower case.
    low_number = "0xa000000000000000000000000000000000000002"
    high_number = "0xb000000000000000000000000000000000000004"
    assert checksum_address(high_number) == "0xB000000000000000000000000000000000000004"
    assert checksum_address(low_number) == low_number
    claims = distributor({low_number: 1, high_number: 2})["claims"]
    assert claims["0xB000000000000000000000000000000000000004"]["index"] == 0
    assert claims[low_number]["index"] == 1


def test_amounts_and_total_are_ethers_even_length_hex() -> None:
    document = distributor(
        {
            HARDHAT_0: 1,
            HARDHAT_1: 15,
            HARDHAT_2: 256,
            EIP55_VECTORS[4]: UINT256_LIMIT - 1 - 272,
        }
    )
    amounts = {a: c["amount"] for a, c in document["claims"].items()}
    assert amounts[HARDHAT_0] == "0x01"
    assert amounts[HARDHAT_1] == "0x0f"
    assert amounts[HARDHAT_2] == "0x0100"
    assert document["tokenTotal"] == "0x" + "f" * 64


def test_the_json_text_is_what_json_stringify_prints() -> None:
    document = distributor({"0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f": 100})
    assert distributor_json(document) == (
        '{"merkleRoot":"0xdefa96435aec82d201dbd2e5f050fb4e1fef5edac90ce1e03953f916a5e1132d",'
        '"tokenTotal":"0x64","claims":{"0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f":'
        '{"index":0,"amount":"0x64","proof":[]}}}'
    )


# -- properties ---------------------------------------------------------------------------


def _spell(raw: bytes, how: int) -> str:
    checksummed = _eip55("0x" + raw.hex())
    return ["0x" + raw.hex(), "0x" + raw.hex().upper(), checksummed][how]


balance_maps = st.dictionaries(
    st.binary(min_size=20, max_size=20),
    st.tuples(st.integers(1, 2**250), st.integers(0, 2)),
    min_size=1,
    max_size=40,
).map(lambda entries: {_spell(raw, how): amount for raw, (amount, how) in entries.items()})


@settings(max_examples=150, deadline=None)
@given(balance_maps)
def test_documents_equal_the_reference_and_every_claim_verifies(balances: dict[str, int]) -> None:
    document = distributor(balances)
    _assert_same_document(document, _reference_document(balances))
    root = document["merkleRoot"]
    for account, claim in document["claims"].items():
        amount = int(claim["amount"], 16)
        assert verify_proof(root, claim["index"], account, amount, claim["proof"])
        assert verify_proof(root, claim["index"], account.lower(), amount, claim["proof"])
        assert verify_proof(
            root, claim["index"], account, amount, [bytes.fromhex(p[2:]) for p in claim["proof"]]
        )
        assert _reference_verify(root, claim["index"], account, amount, claim["proof"])
    assert int(document["tokenTotal"], 16) == sum(balances.values())
    assert sorted(c["index"] for c in document["claims"].values()) == list(range(len(balances)))


@settings(max_examples=100, deadline=None)
@given(balance_maps, st.randoms(use_true_random=False))
def test_the_document_does_not_depend_on_input_order(balances: dict[str, int], rng: Any) -> None:
    items = list(balances.items())
    rng.shuffle(items)
    assert distributor_json(distributor(dict(items))) == distributor_json(distributor(balances))


@settings(max_examples=100, deadline=None)
@given(balance_maps, st.data())
def test_a_changed_amount_index_or_account_does_not_verify(
    balances: dict[str, int], data: st.DataObject
) -> None:
    document = distributor(balances)
    root = document["merkleRoot"]
    account = data.draw(st.sampled_from(sorted(document["claims"])))
    claim = document["claims"][account]
    index, amount, proof = claim["index"], int(claim["amount"], 16), claim["proof"]

    other_amount = data.draw(st.integers(0, UINT256_LIMIT - 1).filter(lambda v: v != amount))
    assert not verify_proof(root, index, account, other_amount, proof)

    other_index = data.draw(st.integers(0, UINT256_LIMIT - 1).filter(lambda v: v != index))
    assert not verify_proof(root, other_index, account, amount, proof)

    other_raw = data.draw(st.binary(min_size=20, max_size=20))
    other_account = _eip55("0x" + other_raw.hex())
    if other_account != account:
        assert not verify_proof(root, index, other_account, amount, proof)


@settings(max_examples=100, deadline=None)
@given(balance_maps, st.data())
def test_a_tampered_root_or_proof_does_not_verify(
    balances: dict[str, int], data: st.DataObject
) -> None:
    document = distributor(balances)
    root = document["merkleRoot"]
    account = data.draw(st.sampled_from(sorted(document["claims"])))
    claim = document["claims"][account]
    index, amount, proof = claim["index"], int(claim["amount"], 16), claim["proof"]

    def tamper(hex_text: str) -> str:
        raw = bytearray(bytes.fromhex(hex_text[2:]))
        where = data.draw(st.integers(0, 31))
        raw[where] ^= data.draw(st.integers(1, 255))
        return "0x" + raw.hex()

    assert not verify_proof(tamper(root), index, account, amount, proof)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:which], tamper(proof[which]), *proof[which + 1 :]]
        assert not verify_proof(root, index, account, amount, bad)
        assert not verify_proof(root, index, account, amount, proof[:-1])
    assert not verify_proof(root, index, account, amount, [*proof, "0x" + "00" * 32])


@given(
    st.integers(0, UINT256_LIMIT - 1),
    st.binary(min_size=20, max_size=20),
    st.integers(0, UINT256_LIMIT - 1),
)
def test_leaf_hash_is_keccak_of_the_packed_encoding(index: int, raw: bytes, amount: int) -> None:
    account = _eip55("0x" + raw.hex())
    assert leaf_hash(index, account, amount) == _leaf(index, account, amount)


def test_odd_layers_promote_the_lone_node_without_hashing_it() -> None:
    # Five leaves: the fifth sorted leaf climbs two levels alone and is the root's right child.
    balances = {_eip55("0x" + f"{i:040x}"): i for i in range(1, 6)}
    document = distributor(balances)
    proof_lengths = sorted(len(c["proof"]) for c in document["claims"].values())
    assert proof_lengths == [1, 3, 3, 3, 3]
    _assert_same_document(document, _reference_document(balances))


# -- bad input ------------------------------------------------------------------------


def test_an_empty_balance_map_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one claim"):
        distributor({})


def test_an_invalid_address_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid address"):
        distributor({"0x1234": 5})
    flipped = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    with pytest.raises(ValueError, match="checksum"):
        distributor({flipped: 5})


def test_two_spellings_of_one_address_are_refused() -> None:
    lower = EIP55_VECTORS[4].lower()
    with pytest.raises(ValueError, match="duplicate address.*" + EIP55_VECTORS[4]):
        distributor({lower: 1, EIP55_VECTORS[4]: 2})


@pytest.mark.parametrize("amount", [0, -1, UINT256_LIMIT, 1.0, True, "5", None])
def test_an_amount_outside_uint256_or_not_an_integer_is_refused(amount: Any) -> None:
    with pytest.raises(ValueError, match="amount for " + HARDHAT_0):
        distributor({HARDHAT_0: amount})


def test_a_total_that_overflows_uint256_is_refused() -> None:
    with pytest.raises(ValueError, match="token total"):
        distributor({HARDHAT_0: UINT256_LIMIT - 1, HARDHAT_1: 1})


def test_a_non_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="mapping"):
        distributor([(HARDHAT_0, 1)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("index", "amount"), [(-1, 1), (UINT256_LIMIT, 1), (0, -1), (0, UINT256_LIMIT), (False, 1)]
)
def test_leaf_hash_refuses_values_outside_uint256(index: Any, amount: Any) -> None:
    with pytest.raises(ValueError):
        leaf_hash(index, HARDHAT_0, amount)


@pytest.mark.parametrize(
    ("root", "proof"),
    [
        ("0x" + "00" * 31, []),
        ("00" * 32, []),
        ("0x" + "zz" * 32, []),
        ("0x" + "00" * 32, ["0x1234"]),
        ("0x" + "00" * 32, [b"\x00" * 31]),
        ("0x" + "00" * 32, "0x" + "00" * 32),
    ],
)
def test_verify_proof_refuses_malformed_hashes(root: str, proof: Any) -> None:
    with pytest.raises(ValueError):
        verify_proof(root, 0, HARDHAT_0, 1, proof)
