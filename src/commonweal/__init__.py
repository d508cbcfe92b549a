"""Commonweal: a self-hostable hub for community-owned AI.

A community's members contribute, review and govern; every fact is an event in a signed,
append-only RFC 9162 Merkle log that anyone can verify and replay.
"""

from commonweal.errors import CommonwealError
from commonweal.hub import Hub
from commonweal.ledger.keys import SigningKey

__version__ = "0.1.0"

__all__ = ["CommonwealError", "Hub", "SigningKey", "__version__"]
