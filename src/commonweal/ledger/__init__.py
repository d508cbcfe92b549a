"""The log itself: canonical encoding, keys and signed notes, the RFC 9162 Merkle tree,
and signed events wrapped as leaves. Nothing here knows what an event *means*."""

from commonweal.ledger.canonical import canonical, parse
from commonweal.ledger.event import Leaf, SignedEvent, decode_leaf, encode_leaf, sign_event
from commonweal.ledger.keys import SigningKey, verify_signature
from commonweal.ledger.merkle import Frontier, MemoryTree, leaf_hash
from commonweal.ledger.note import Checkpoint, NoteSigner, NoteVerifier, parse_checkpoint

__all__ = [
    "Checkpoint",
    "Frontier",
    "Leaf",
    "MemoryTree",
    "NoteSigner",
    "NoteVerifier",
    "SignedEvent",
    "SigningKey",
    "canonical",
    "decode_leaf",
    "encode_leaf",
    "leaf_hash",
    "parse",
    "parse_checkpoint",
    "sign_event",
    "verify_signature",
]
