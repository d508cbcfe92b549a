"""RFC 9162 Merkle trees: hashing, inclusion and consistency proofs, and their verifiers.

The tree is stored as *complete subtree* hashes: node ``(level, idx)`` is the hash of
leaves ``[idx * 2**level, (idx + 1) * 2**level)``. Every node the RFC's recursive
definitions need is either such a node or is folded from a few of them, so a proof for a
tree of a million leaves needs at most ~40 stored hashes, fetched in one query. Appending
keeps only the *frontier* (the complete subtrees that make up ``[0, size)``: one per set bit
of ``size``) and writes each new complete node once.

Proof generation works in two passes so that a storage backend can answer in one round
trip: first the list of ranges the proof needs (pure arithmetic), then the hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from commonweal.errors import InvalidInput, VerificationFailed

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "MemoryTree",
    "NodeKey",
    "NodeReader",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_nodes",
    "root_at",
    "verify_consistency",
    "verify_inclusion",
]

NodeKey = tuple[int, int]  # (level, idx)

EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """MTH of ``leaves`` (RFC 9162 §2.1.1), level by level: pairing adjacent nodes and
    carrying an odd last node up unchanged gives the same tree as the recursive split at
    the largest power of two, without building one."""
    if not leaves:
        return EMPTY_ROOT
    level = [_sha256(b"\x00" + d).digest() for d in leaves]
    while len(level) > 1:
        nxt = [
            _sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[NodeKey]:
    """The complete subtrees whose fold is MTH(D[start:end]), left to right.

    ``[start, end)`` must be a subtree that RFC 9162's recursion reaches: every left part
    it produces is aligned to its own size, which is what makes it a stored node.
    """
    out: list[NodeKey] = []
    while end > start:
        n = end - start
        if n & (n - 1) == 0:
            level = n.bit_length() - 1
            if start % n:
                raise ValueError(f"range [{start}, {end}) is not an aligned subtree")
            out.append((level, start >> level))
            return out
        k = _split(n)
        level = k.bit_length() - 1
        if start % k:
            raise ValueError(f"range [{start}, {end}) is not an aligned subtree")
        out.append((level, start >> level))
        start += k
    return out


def _fold(hashes: Sequence[bytes]) -> bytes:
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


class NodeReader(Protocol):
    """Anything that can hand back stored complete-subtree hashes."""

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]: ...


def _hashes_for(ranges: Sequence[tuple[int, int]], reader: NodeReader) -> list[bytes]:
    per_range = [range_nodes(a, b) for a, b in ranges]
    wanted = sorted({k for keys in per_range for k in keys})
    got = reader.get_nodes(wanted)
    missing = [k for k in wanted if k not in got]
    if missing:
        raise VerificationFailed(f"tree nodes missing from storage: {missing[:3]}")
    return [_fold([got[k] for k in keys]) for keys in per_range]


def root_at(size: int, reader: NodeReader) -> bytes:
    """MTH of the first ``size`` leaves."""
    if size == 0:
        return EMPTY_ROOT
    return _hashes_for([(0, size)], reader)[0]


def _inclusion_ranges(m: int, start: int, end: int) -> list[tuple[int, int]]:
    # RFC 9162 §2.1.3.1 PATH(m, D[n]), as ranges, leaf upward.
    out: list[tuple[int, int]] = []
    while end - start > 1:
        k = _split(end - start)
        if m < start + k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    out.reverse()
    return out


def _consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    # RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], true), as ranges.
    out: list[tuple[int, int]] = []
    start, end, whole = 0, n, True
    while True:
        size = end - start
        if m == size:
            if not whole:
                out.append((start, end))
            break
        k = _split(size)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
            m -= k
            whole = False
    out.reverse()
    return out


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    if not 0 <= index < size:
        raise InvalidInput(f"index {index} is not in a tree of size {size}")
    return _hashes_for(_inclusion_ranges(index, 0, size), reader)


def consistency_proof(old: int, new: int, reader: NodeReader) -> list[bytes]:
    if not 0 <= old <= new:
        raise InvalidInput(f"no consistency proof from size {old} to size {new}: need old <= new")
    if old == 0 or old == new:
        return []
    return _hashes_for(_consistency_ranges(old, new), reader)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2. ``leaf`` is the leaf *hash*. Raises VerificationFailed."""
    if not 0 <= index < size:
        raise VerificationFailed(f"index {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationFailed("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationFailed("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise VerificationFailed(f"inclusion proof for leaf {index} does not lead to the root")


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2. Raises VerificationFailed."""
    if not 0 <= old <= new:
        raise VerificationFailed(f"size {new} cannot extend size {old}")
    if old == new:
        if proof or old_root != new_root:
            raise VerificationFailed("same size but different roots (or a non-empty proof)")
        return
    if old == 0:
        if proof:
            raise VerificationFailed("a proof from the empty tree must be empty")
        return
    if not proof:
        raise VerificationFailed("consistency proof is empty")
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationFailed("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise VerificationFailed(f"tree of size {new} does not extend the tree of size {old}")


class Frontier:
    """The right edge of a growing tree: enough to append leaves and compute the root."""

    __slots__ = ("_hashes", "_levels", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        keys = range_nodes(0, size) if size else []
        if len(keys) != len(hashes):
            raise ValueError(f"a frontier of size {size} needs {len(keys)} hashes")
        self.size = size
        self._levels = [lvl for lvl, _ in keys]
        self._hashes = list(hashes)

    @staticmethod
    def keys_for(size: int) -> list[NodeKey]:
        return range_nodes(0, size) if size else []

    def append(self, lh: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the complete nodes ``(level, idx, hash)`` it creates."""
        index = self.size
        created = [(0, index, lh)]
        level, h = 0, lh
        levels, hashes = self._levels, self._hashes
        while levels and levels[-1] == level:
            levels.pop()
            h = node_hash(hashes.pop(), h)
            level += 1
            created.append((level, index >> level, h))
        levels.append(level)
        hashes.append(h)
        self.size = index + 1
        return created

    def root(self) -> bytes:
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT

    def copy(self) -> Frontier:
        f = Frontier.__new__(Frontier)
        f.size, f._levels, f._hashes = self.size, list(self._levels), list(self._hashes)
        return f


class MemoryTree:
    """A whole tree in memory: for tests, exports and offline verification."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.nodes: dict[NodeKey, bytes] = {}
        self.frontier = Frontier()
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return self.frontier.size

    def append(self, data: bytes) -> bytes:
        lh = leaf_hash(data)
        for level, idx, h in self.frontier.append(lh):
            self.nodes[(level, idx)] = h
        return lh

    def root(self, size: int | None = None) -> bytes:
        if size is None:
            return self.frontier.root()
        return root_at(size, self)

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        return {k: self.nodes[k] for k in keys if k in self.nodes}
