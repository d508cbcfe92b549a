"""The Merkle tree pinned to RFC 9162 §2.1 by a reference written straight from the RFC.

`Rfc9162` below is the RFC's recursive definitions (MTH, PATH, PROOF/SUBPROOF) read
literally, over the leaf byte strings: no stored nodes, no frontier, no loops. The module
under test stores complete subtrees and folds them; every root and proof it produces must
equal the reference's, element for element, and every proof must survive its own verifier
while any tampering with it must not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commonweal.errors import InvalidInput, VerificationFailed
from commonweal.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryTree,
    NodeKey,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_nodes,
    root_at,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

# -- the reference: RFC 9162 §2.1, read literally ----------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """RFC 9162 §2.1.1: the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Rfc9162:
    """MTH, PATH and PROOF over ``D[lo:hi]`` of a fixed list of leaves.

    Ranges stand in for the RFC's sublists so the recursion need not copy them, and MTH
    results are cached per range; both leave the definitions as the RFC writes them.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.d = list(leaves)
        self._mth: dict[tuple[int, int], bytes] = {}

    def mth(self, lo: int, hi: int) -> bytes:
        key = (lo, hi)
        if key not in self._mth:
            n = hi - lo
            if n == 0:
                h = _sha256(b"")  # MTH({}) = SHA-256()
            elif n == 1:
                h = _sha256(b"\x00" + self.d[lo])  # MTH({d(0)}) = SHA-256(0x00 || d(0))
            else:
                k = _k(n)  # MTH(D_n) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
                h = _sha256(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))
            self._mth[key] = h
        return self._mth[key]

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """PATH(m, D[lo:hi]), m relative to lo (§2.1.3.1)."""
        n = hi - lo
        if n == 1:
            return []  # PATH(0, {d(0)}) = {}
        k = _k(n)
        if m < k:  # PATH(m, D_n) = PATH(m, D[0:k]) : MTH(D[k:n])
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        # PATH(m, D_n) = PATH(m - k, D[k:n]) : MTH(D[0:k])
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D_n) = SUBPROOF(m, D_n, true) (§2.1.4.1)."""
        return self.subproof(m, 0, n, True)

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            # SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
            return [] if b else [self.mth(lo, hi)]
        k = _k(n)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]

    def subtrees(self, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        """Every range the MTH recursion of D[lo:hi] visits (the tree's nodes)."""
        yield lo, hi
        if hi - lo > 1:
            k = _k(hi - lo)
            yield from self.subtrees(lo, lo + k)
            yield from self.subtrees(lo + k, hi)


# -- helpers ----------------------------------------------------------------------------


def distinct_leaves(n: int, salt: bytes = b"") -> list[bytes]:
    # Distinct leaves: with two equal leaves, a proof for one really does prove the other.
    return [salt + i.to_bytes(4, "big") for i in range(n)]


def flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def every_bit_flip(data: bytes) -> Iterator[bytes]:
    for bit in range(len(data) * 8):
        yield flip(data, bit)


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its complete subtrees, left to right (right fold)."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


class DictReader:
    def __init__(self, nodes: Mapping[NodeKey, bytes]) -> None:
        self.nodes = dict(nodes)

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        return {k: self.nodes[k] for k in keys if k in self.nodes}


leaf_lists = st.lists(st.binary(max_size=12), min_size=0, max_size=300, unique=True)
nonempty_leaf_lists = st.lists(st.binary(max_size=12), min_size=1, max_size=300, unique=True)

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- known answers -----------------------------------------------------------------------

EMPTY_ROOT_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# The Certificate Transparency reference tree (RFC 6962 test data, reused for RFC 9162 by
# every CT/tlog implementation): eight leaves and the root of each prefix.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    EMPTY_ROOT_HEX,
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [  # (index, size, proof)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_CONSISTENCY = [  # (old, new, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def test_empty_tree_root_is_sha256_of_the_empty_string() -> None:
    assert hashlib.sha256(b"").hexdigest() == EMPTY_ROOT_HEX
    assert EMPTY_ROOT.hex() == EMPTY_ROOT_HEX
    assert Rfc9162([]).mth(0, 0).hex() == EMPTY_ROOT_HEX
    tree = MemoryTree()
    assert tree.size == 0
    assert tree.root().hex() == EMPTY_ROOT_HEX
    assert tree.root(0).hex() == EMPTY_ROOT_HEX
    assert root_at(0, tree).hex() == EMPTY_ROOT_HEX
    assert Frontier().root().hex() == EMPTY_ROOT_HEX


def test_leaf_and_node_hashes_use_the_rfc_domain_separation_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    )
    # The one-leaf tree's root is its leaf hash; the empty leaf's is a published value.
    assert leaf_hash(b"").hex() == CT_ROOTS[1]


def test_roots_match_the_certificate_transparency_reference_tree() -> None:
    tree = MemoryTree()
    assert tree.root().hex() == CT_ROOTS[0]
    for n, leaf in enumerate(CT_LEAVES, start=1):
        tree.append(leaf)
        assert tree.root().hex() == CT_ROOTS[n], f"size {n}"
    for n in range(len(CT_LEAVES) + 1):
        assert tree.root(n).hex() == CT_ROOTS[n], f"root_at({n})"
        assert Rfc9162(CT_LEAVES).mth(0, n).hex() == CT_ROOTS[n], "the reference itself"


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_inclusion_proofs_match_the_certificate_transparency_vectors(
    index: int, size: int, proof: list[str]
) -> None:
    tree = MemoryTree(CT_LEAVES)
    got = inclusion_proof(index, size, tree)
    assert [h.hex() for h in got] == proof
    assert [h.hex() for h in Rfc9162(CT_LEAVES).path(index, 0, size)] == proof
    verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, got, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_consistency_proofs_match_the_certificate_transparency_vectors(
    old: int, new: int, proof: list[str]
) -> None:
    tree = MemoryTree(CT_LEAVES)
    got = consistency_proof(old, new, tree)
    assert [h.hex() for h in got] == proof
    verify_consistency(old, new, bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new]), got)


# -- roots -------------------------------------------------------------------------------


@FAST
@given(leaves=leaf_lists)
def test_every_prefix_root_equals_the_rfc_mth(leaves: list[bytes]) -> None:
    ref = Rfc9162(leaves)
    tree = MemoryTree()
    assert tree.root() == ref.mth(0, 0)
    for n, leaf in enumerate(leaves, start=1):
        assert tree.append(leaf) == leaf_hash(leaf)
        assert tree.size == n
        assert tree.root() == ref.mth(0, n)  # from the frontier
    for n in range(len(leaves) + 1):
        assert tree.root(n) == ref.mth(0, n)  # from stored nodes
        assert root_at(n, tree) == ref.mth(0, n)


# -- inclusion ---------------------------------------------------------------------------


def test_inclusion_proofs_equal_the_reference_for_every_index_of_every_small_tree() -> None:
    leaves = distinct_leaves(70)
    ref = Rfc9162(leaves)
    tree = MemoryTree(leaves)
    for size in range(1, len(leaves) + 1):
        root = ref.mth(0, size)
        for index in range(size):
            proof = inclusion_proof(index, size, tree)
            assert proof == ref.path(index, 0, size), (index, size)
            verify_inclusion(leaf_hash(leaves[index]), index, size, proof, root)


@FAST
@given(leaves=nonempty_leaf_lists, data=st.data())
def test_inclusion_proofs_equal_the_reference_and_verify(
    leaves: list[bytes], data: st.DataObject
) -> None:
    ref = Rfc9162(leaves)
    tree = MemoryTree(leaves)
    n = len(leaves)
    # Every leaf of the whole tree, then some (index, size) pairs of earlier trees.
    pairs = [(i, n) for i in range(n)]
    for _ in range(20):
        size = data.draw(st.integers(1, n), label="size")
        pairs.append((data.draw(st.integers(0, size - 1), label="index"), size))
    for index, size in pairs:
        proof = inclusion_proof(index, size, tree)
        assert proof == ref.path(index, 0, size), (index, size)
        verify_inclusion(leaf_hash(leaves[index]), index, size, proof, ref.mth(0, size))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 300), data=st.data())
def test_any_tampering_with_an_inclusion_proof_fails(n: int, data: st.DataObject) -> None:
    leaves = distinct_leaves(n)
    ref = Rfc9162(leaves)
    tree = MemoryTree(leaves)
    size = data.draw(st.integers(2, n), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    lh, root = leaf_hash(leaves[index]), ref.mth(0, size)
    proof = inclusion_proof(index, size, tree)
    verify_inclusion(lh, index, size, proof, root)

    def refused(lh: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> None:
        with pytest.raises(VerificationFailed):
            verify_inclusion(lh, index, size, proof, root)

    # Every single bit of every proof element, of the leaf hash, and of the root.
    for pos, element in enumerate(proof):
        for bad in every_bit_flip(element):
            refused(lh, index, size, [*proof[:pos], bad, *proof[pos + 1 :]], root)
    for bad in every_bit_flip(lh):
        refused(bad, index, size, proof, root)
    for bad in every_bit_flip(root):
        refused(lh, index, size, proof, bad)
    # Another leaf's hash, every other index, and every other tree size (with that size's
    # true root, so the claim is false rather than merely inconsistent).
    for j in range(size):
        if j != index:
            refused(leaf_hash(leaves[j]), index, size, proof, root)
            refused(lh, j, size, proof, root)
    for other in range(index + 1, n + 1):
        if other != size:
            refused(lh, index, other, proof, ref.mth(0, other))
    # Indices outside the tree.
    refused(lh, size, size, proof, root)
    refused(lh, -1, size, proof, root)
    refused(lh, index, 0, proof, root)
    # A proof one element short, one too long, or with elements swapped or duplicated.
    if proof:
        refused(lh, index, size, proof[:-1], root)
        refused(lh, index, size, proof[1:], root)
    refused(lh, index, size, [*proof, root], root)
    refused(lh, index, size, [root, *proof], root)
    refused(lh, index, size, [*proof, proof[-1]], root)
    if len(proof) > 1 and proof[0] != proof[1]:
        refused(lh, index, size, [proof[1], proof[0], *proof[2:]], root)


def test_single_leaf_tree_has_an_empty_inclusion_proof() -> None:
    tree = MemoryTree([b"only"])
    assert inclusion_proof(0, 1, tree) == []
    verify_inclusion(leaf_hash(b"only"), 0, 1, [], tree.root())
    with pytest.raises(VerificationFailed):
        verify_inclusion(leaf_hash(b"other"), 0, 1, [], tree.root())
    with pytest.raises(VerificationFailed):
        verify_inclusion(leaf_hash(b"only"), 0, 1, [EMPTY_ROOT], tree.root())


@pytest.mark.parametrize(("index", "size"), [(0, 0), (3, 3), (5, 3), (-1, 3), (0, -1)])
def test_inclusion_proof_outside_the_tree_is_invalid_input(index: int, size: int) -> None:
    tree = MemoryTree(distinct_leaves(5))
    with pytest.raises(InvalidInput, match=str(index)):
        inclusion_proof(index, size, tree)


# -- consistency -------------------------------------------------------------------------


def test_consistency_proofs_equal_the_reference_for_every_pair_of_small_sizes() -> None:
    leaves = distinct_leaves(70)
    ref = Rfc9162(leaves)
    tree = MemoryTree(leaves)
    for new in range(0, len(leaves) + 1):
        for old in range(0, new + 1):
            proof = consistency_proof(old, new, tree)
            expected = ref.proof(old, new) if 0 < old < new else []
            assert proof == expected, (old, new)
            verify_consistency(old, new, ref.mth(0, old), ref.mth(0, new), proof)


@FAST
@given(leaves=leaf_lists, data=st.data())
def test_consistency_proofs_equal_the_reference_and_verify(
    leaves: list[bytes], data: st.DataObject
) -> None:
    ref = Rfc9162(leaves)
    tree = MemoryTree(leaves)
    n = len(leaves)
    pairs = [(m, n) for m in range(n + 1)]
    for _ in range(20):
        new = data.draw(st.integers(0, n), label="new")
        pairs.append((data.draw(st.integers(0, new), label="old"), new))
    for old, new in pairs:
        proof = consistency_proof(old, new, tree)
        assert proof == (ref.proof(old, new) if 0 < old < new else []), (old, new)
        verify_consistency(old, new, ref.mth(0, old), ref.mth(0, new), proof)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 300), data=st.data())
def test_any_tampering_with_a_consistency_proof_fails(n: int, data: st.DataObject) -> None:
    leaves = distinct_leaves(n)
    ref = Rfc9162(leaves)
    tree = MemoryTree(leaves)
    new = data.draw(st.integers(2, n), label="new")
    old = data.draw(st.integers(1, new - 1), label="old")
    old_root, new_root = ref.mth(0, old), ref.mth(0, new)
    proof = consistency_proof(old, new, tree)
    assert proof, "a proof between two different non-empty sizes is never empty"
    verify_consistency(old, new, old_root, new_root, proof)

    def refused(old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> None:
        with pytest.raises(VerificationFailed):
            verify_consistency(old, new, old_root, new_root, proof)

    for pos, element in enumerate(proof):
        for bad in every_bit_flip(element):
            refused(old, new, old_root, new_root, [*proof[:pos], bad, *proof[pos + 1 :]])
    for bad in every_bit_flip(old_root):
        refused(old, new, bad, new_root, proof)
    for bad in every_bit_flip(new_root):
        refused(old, new, old_root, bad, proof)
    # Every other old size and every other new size, each with its true root.
    for other in range(1, new):
        if other != old:
            refused(other, new, ref.mth(0, other), new_root, proof)
    for other in range(old + 1, n + 1):
        if other != new:
            refused(old, other, old_root, ref.mth(0, other), proof)
    # Swapped roots, time travel, and proofs cut short, padded or emptied.
    refused(old, new, new_root, old_root, proof)
    refused(new, old, new_root, old_root, proof)
    refused(old, new, old_root, new_root, [])
    refused(old, new, old_root, new_root, proof[:-1])
    refused(old, new, old_root, new_root, [*proof, old_root])
    refused(old, new, old_root, new_root, [*proof, new_root])
    refused(old, new, old_root, new_root, [old_root, *proof])
    refused(old, new, old_root, new_root, [new_root, *proof])
    refused(old, new, old_root, new_root, [proof[0], *proof])


def test_consistency_between_equal_sizes_needs_equal_roots_and_an_empty_proof() -> None:
    tree = MemoryTree(distinct_leaves(9))
    for size in range(10):
        assert consistency_proof(size, size, tree) == []
        root = tree.root(size)
        verify_consistency(size, size, root, root, [])
        for bad in every_bit_flip(root):
            with pytest.raises(VerificationFailed):
                verify_consistency(size, size, root, bad, [])
        with pytest.raises(VerificationFailed):
            verify_consistency(size, size, root, root, [root])


def test_every_tree_extends_the_empty_tree_with_an_empty_proof() -> None:
    # As in RFC 6962's reference verifiers (CT, transparency-dev/merkle): size 0 is
    # consistent with any size, whatever the roots, and the proof must be empty.
    tree = MemoryTree(distinct_leaves(5))
    assert consistency_proof(0, 5, tree) == []
    verify_consistency(0, 5, EMPTY_ROOT, tree.root(), [])
    with pytest.raises(VerificationFailed):
        verify_consistency(0, 5, EMPTY_ROOT, tree.root(), [EMPTY_ROOT])


@pytest.mark.parametrize(("old", "new"), [(2, 1), (1, 0), (-1, 3), (6, 7)])
def test_consistency_proof_between_impossible_sizes_is_refused(old: int, new: int) -> None:
    tree = MemoryTree(distinct_leaves(5))
    if 0 <= old <= new:
        # Sizes past the tree's end: the nodes are not there to build a proof from.
        with pytest.raises(VerificationFailed, match="missing"):
            consistency_proof(old, new, tree)
        return
    with pytest.raises(InvalidInput, match=f"size {old}"):
        consistency_proof(old, new, tree)
    with pytest.raises(VerificationFailed):
        verify_consistency(old, new, EMPTY_ROOT, EMPTY_ROOT, [])


# -- larger trees ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [511, 512, 513, 1000, 1025, 4099])
def test_larger_trees_match_the_reference(n: int) -> None:
    leaves = distinct_leaves(n, salt=b"big")
    ref = Rfc9162(leaves)
    tree = MemoryTree(leaves)
    assert tree.root() == ref.mth(0, n)
    edges = {1, 2, 3, n - 2, n - 1, n}
    edges |= {p + d for p in (2**k for k in range(n.bit_length())) for d in (-1, 0, 1)}
    sizes = sorted(s for s in edges if 1 <= s <= n)
    for size in sizes:
        root = ref.mth(0, size)
        assert tree.root(size) == root
        for index in sorted({0, 1, size // 2, size - 2, size - 1} & set(range(size))):
            proof = inclusion_proof(index, size, tree)
            assert proof == ref.path(index, 0, size), (index, size)
            verify_inclusion(leaf_hash(leaves[index]), index, size, proof, root)
        for old in sizes:
            if old < size:
                proof = consistency_proof(old, size, tree)
                assert proof == ref.proof(old, size), (old, size)
                verify_consistency(old, size, ref.mth(0, old), root, proof)


# -- frontier and stored nodes -----------------------------------------------------------


def complete_subtrees(size: int) -> set[NodeKey]:
    """Every node (level, idx) whose leaves [idx * 2**level, (idx + 1) * 2**level) exist."""
    return {(level, idx) for level in range(size.bit_length()) for idx in range(size >> level)}


@FAST
@given(leaves=leaf_lists)
def test_frontier_append_creates_exactly_the_nodes_memory_tree_stores(
    leaves: list[bytes],
) -> None:
    ref = Rfc9162(leaves)
    frontier = Frontier()
    created: dict[NodeKey, bytes] = {}
    for index, leaf in enumerate(leaves):
        new = frontier.append(leaf_hash(leaf))
        keys = [(level, idx) for level, idx, _ in new]
        # The leaf itself, then each complete subtree the new leaf closes, going up.
        assert keys == [(level, index >> level) for level in range(len(keys))]
        assert keys == sorted(complete_subtrees(index + 1) - complete_subtrees(index))
        for level, idx, h in new:
            assert (level, idx) not in created, "each node is written once"
            assert h == ref.mth(idx << level, (idx + 1) << level)
            created[(level, idx)] = h
        assert frontier.size == index + 1
        assert frontier.root() == ref.mth(0, index + 1)
    tree = MemoryTree(leaves)
    assert tree.nodes == created
    assert set(tree.nodes) == complete_subtrees(len(leaves))


@FAST
@given(leaves=leaf_lists, data=st.data())
def test_frontier_restored_from_stored_nodes_continues_the_same_tree(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MemoryTree(leaves)
    cut = data.draw(st.integers(0, len(leaves)), label="cut")
    keys = Frontier.keys_for(cut)
    assert keys == (range_nodes(0, cut) if cut else [])
    got = tree.get_nodes(keys)
    restored = Frontier(cut, [got[k] for k in keys])
    assert restored.root() == tree.root(cut)
    copy = restored.copy()
    nodes: dict[NodeKey, bytes] = {}
    for leaf in leaves[cut:]:
        for level, idx, h in restored.append(leaf_hash(leaf)):
            nodes[(level, idx)] = h
    assert restored.size == len(leaves)
    assert restored.root() == tree.root()
    assert nodes == {k: v for k, v in tree.nodes.items() if k not in complete_subtrees(cut)}
    # The copy taken before is untouched by the appends.
    assert copy.size == cut
    assert copy.root() == tree.root(cut)


def test_frontier_refuses_the_wrong_number_of_hashes() -> None:
    with pytest.raises(ValueError, match="needs 2 hashes"):
        Frontier(3, [EMPTY_ROOT])  # 3 = 0b11: two complete subtrees
    with pytest.raises(ValueError, match="needs 0 hashes"):
        Frontier(0, [EMPTY_ROOT])


# -- range_nodes -------------------------------------------------------------------------


def assert_tiles(start: int, end: int, keys: list[NodeKey]) -> None:
    """``keys`` are aligned complete subtrees covering [start, end) exactly, left to right,
    in strictly shrinking sizes (the RFC's split: a power of two, then the rest)."""
    pos = start
    last_level = None
    for level, idx in keys:
        assert idx << level == pos, f"node {(level, idx)} does not start at {pos}"
        if last_level is not None:
            assert level < last_level
        last_level = level
        pos += 1 << level
    assert pos == end, f"nodes cover [{start}, {pos}), not [{start}, {end})"


def test_range_nodes_tile_every_subtree_the_rfc_recursion_reaches() -> None:
    leaves = distinct_leaves(130)
    ref = Rfc9162(leaves)
    tree = MemoryTree(leaves)
    for n in range(1, len(leaves) + 1):
        for lo, hi in ref.subtrees(0, n):
            keys = range_nodes(lo, hi)
            assert_tiles(lo, hi, keys)
            got = tree.get_nodes(keys)
            assert set(got) == set(keys), "every node of a reachable range is stored"
            assert fold([got[k] for k in keys]) == ref.mth(lo, hi)
    assert range_nodes(5, 5) == []


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 2**20), length=st.integers(1, 2**20))
def test_range_nodes_either_tile_the_range_or_refuse_it(start: int, length: int) -> None:
    end = start + length
    try:
        keys = range_nodes(start, end)
    except ValueError:
        # Refused only when the RFC split of [start, end) puts a power-of-two part at an
        # offset not aligned to its size, so no stored node holds it.
        pos = start
        while end - pos > 0:
            n = end - pos
            k = n if n & (n - 1) == 0 else _k(n)
            if pos % k:
                return
            pos += k
        raise AssertionError(f"[{start}, {end}) is aligned but was refused") from None
    assert_tiles(start, end, keys)


@FAST
@given(leaves=nonempty_leaf_lists, data=st.data())
def test_range_nodes_fold_to_the_rfc_mth_of_the_range(
    leaves: list[bytes], data: st.DataObject
) -> None:
    ref = Rfc9162(leaves)
    tree = MemoryTree(leaves)
    for _ in range(20):
        end = data.draw(st.integers(1, len(leaves)), label="end")
        start = data.draw(st.integers(0, end - 1), label="start")
        try:
            keys = range_nodes(start, end)
        except ValueError:
            continue
        got = tree.get_nodes(keys)
        assert fold([got[k] for k in keys]) == ref.mth(start, end)


def test_proofs_refuse_to_be_built_from_missing_nodes() -> None:
    tree = MemoryTree(distinct_leaves(12))
    nodes = dict(tree.nodes)
    del nodes[(2, 1)]  # leaves [4, 8)
    reader = DictReader(nodes)
    with pytest.raises(VerificationFailed, match="missing"):
        inclusion_proof(0, 12, reader)
    with pytest.raises(VerificationFailed, match="missing"):
        consistency_proof(3, 12, reader)
    assert root_at(12, reader) == tree.root(12)  # [0, 8) and [8, 12): both still stored
    del nodes[(3, 0)]
    with pytest.raises(VerificationFailed, match="missing"):
        root_at(12, DictReader(nodes))
    # Proofs that do not touch the missing node still work.
    assert inclusion_proof(9, 12, reader) == inclusion_proof(9, 12, tree)


@given(st.lists(st.binary(max_size=8), max_size=70))
def test_level_by_level_root_is_the_rfc_root(leaves: list[bytes]) -> None:
    assert tree_root(leaves) == MemoryTree(leaves).root()
