"""The rules of a community: its charter, its state, and what each event means.

Pure code: no storage, network, clock or randomness, so every hub and every verifier that
replays the same log reaches the same state."""

from commonweal.community.charter import Charter, validate_charter
from commonweal.community.rules import KINDS, apply, replay, touched
from commonweal.community.state import Invite, Member, State

__all__ = [
    "KINDS",
    "Charter",
    "Invite",
    "Member",
    "State",
    "apply",
    "replay",
    "touched",
    "validate_charter",
]
