"""``hub.log``: reading the community's log — checkpoints, entries and Merkle proofs.

Everything here is a read; the only way to write the log is ``Hub.append``. Proof sizes
outside the log are ``NotFound`` (a range that does not exist), a malformed range is
``InvalidInput``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from commonweal.community import rules, views
from commonweal.errors import InvalidInput, NotFound
from commonweal.ledger.event import Leaf, decode_leaf
from commonweal.ledger.merkle import consistency_proof, inclusion_proof, leaf_hash, root_at

if TYPE_CHECKING:
    from commonweal.hub.core import Hub

__all__ = ["LogArea"]

PAGE = 1000


class LogArea:
    """The log as readers see it (``hub.log``)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._store = hub.store

    def checkpoint(self) -> str:
        """The latest signed checkpoint, a C2SP signed note."""
        with self._hub.read() as conn:
            return self._store.latest_checkpoint(conn)

    def size(self) -> int:
        """How many entries the log holds (in the database, not the cache)."""
        with self._hub.read() as conn:
            return self._store.head(conn)[0]

    def entries(self, start: int = 0, end: int | None = None, *, limit: int = PAGE) -> list[Leaf]:
        """Entries ``[start, end)``, at most ``limit`` of them, decoded."""
        with self._hub.read() as conn:
            size = self._store.head(conn)[0]
            if start > size:  # past the end: as a proof of an entry past it, not found
                raise NotFound(f"entries: start {start} is past the log, which holds {size}")
            if start < 0:
                raise InvalidInput(f"entries: start must be 0 or more; got {start}")
            # ``[start, end)`` with end at or before start is empty, as a slice is.
            end = size if end is None else max(start, min(end, size))
            end = min(end, start + limit)
            return self._store.leaves(conn, start, end)

    def entry(self, index: int) -> Leaf:
        """Entry ``index``, decoded; NotFound past the head."""
        with self._hub.read() as conn:
            found = self._store.leaves(conn, index, index + 1) if index >= 0 else []
            if not found:
                size = self._store.head(conn)[0]
                raise NotFound(f"entry {index} is not in the log, which holds {size} entries")
            return found[0]

    def find(
        self,
        *,
        kinds: Sequence[str] = (),
        actors: Sequence[str] = (),
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[Leaf]:
        """Entries of one of ``kinds`` by one of ``actors`` (empty: any), newest first: the
        ``limit`` below index ``before`` (default: the newest), or just above ``after``.
        Fast at any log size: each filter is an index on ``(kind, idx)``/``(actor, idx)``."""
        if not 1 <= limit <= PAGE:
            raise InvalidInput(f"limit must be 1-{PAGE}, got {limit}")
        with self._hub.read() as conn:
            leaves = self._store.find_leaf_bytes(
                conn, kinds=kinds, actors=actors, before=before, after=after, limit=limit
            )
        return [decode_leaf(b, strict=False) for b in leaves]

    def count(self, *, kinds: Sequence[str] = (), actors: Sequence[str] = (), cap: int) -> int:
        """How many entries ``find`` would page through, counted up to ``cap``."""
        with self._hub.read() as conn:
            return self._store.count_entries(conn, kinds=kinds, actors=actors, cap=cap)

    def actors(self, query: str) -> list[str]:
        """The keys a person means by ``query`` (a name, a key prefix, or "hub")."""
        return views.actors_matching(self._hub.state, query)

    @staticmethod
    def kinds() -> list[str]:
        """Every kind of event the community's rules know, sorted."""
        return sorted(rules.KINDS)

    def leaf_bytes(self, start: int, end: int) -> list[bytes]:
        """The raw leaves ``[start, end)``, exactly as hashed into the tree."""
        with self._hub.read() as conn:
            return self._store.leaf_bytes(conn, start, end)

    def iter_leaf_bytes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Every raw leaf from ``start`` to ``end`` (default: the head), streamed in one
        read transaction."""
        with self._hub.read() as conn:
            stop = self._store.head(conn)[0] if end is None else end
            yield from self._store.iter_leaf_bytes(conn, start, stop)

    def _size_arg(self, conn: Connection, size: int | None) -> int:
        head = self._store.head(conn)[0]
        if size is None:
            return head
        if not 0 <= size <= head:
            raise NotFound(f"tree size {size} is not between 0 and the log's size {head}")
        return size

    def inclusion(self, index: int, size: int | None = None) -> dict[str, Any]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` (default: now)."""
        with self._hub.read() as conn:
            n = self._size_arg(conn, size)
            if not 0 <= index < n:
                raise NotFound(f"entry {index} is not in a tree of size {n}")
            reader = self._store.node_reader(conn)
            proof = inclusion_proof(index, n, reader)
            leaf = self._store.leaf_bytes(conn, index, index + 1)[0]
            return {
                "index": index,
                "size": n,
                "leaf_hash": leaf_hash(leaf).hex(),
                "root": root_at(n, reader).hex(),
                "proof": [h.hex() for h in proof],
            }

    def consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        """RFC 9162 consistency proof that the tree of size ``new`` extends size ``old``."""
        with self._hub.read() as conn:
            n = self._size_arg(conn, new)
            if not 0 <= old <= n:
                raise NotFound(f"old size {old} is not between 0 and {n}")
            reader = self._store.node_reader(conn)
            return {
                "old": old,
                "new": n,
                "old_root": root_at(old, reader).hex(),
                "new_root": root_at(n, reader).hex(),
                "proof": [h.hex() for h in consistency_proof(old, n, reader)],
            }
