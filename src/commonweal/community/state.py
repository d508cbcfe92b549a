"""The community's state: what replaying the log up to some size gives.

``State`` is immutable and built on persistent maps (HAMTs, from ``immutables``), so
``apply`` returns a new state that shares almost everything with the old one. That makes a
batch all-or-nothing for free — the hub keeps the old state until the batch commits — and
keeps replay of a long log fast.

The records are named tuples rather than dataclasses: replay makes one or more per log
entry, and a tuple is built and read several times faster, which `ledger verify` feels.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple

from immutables import Map

from commonweal.community.charter import Charter

__all__ = [
    "CONTRIBUTION_COLUMNS",
    "INVITE_COLUMNS",
    "MEMBER_COLUMNS",
    "NODE_COLUMNS",
    "REVIEW_COLUMNS",
    "ApiKey",
    "Contribution",
    "Epoch",
    "FlRound",
    "FlVersion",
    "Holding",
    "Invite",
    "Member",
    "MemberStats",
    "MemberStatus",
    "ModelVersion",
    "Node",
    "Payout",
    "Proposal",
    "Review",
    "State",
    "Treasury",
    "ValuationRecord",
    "Verdict",
]

MemberStatus = Literal["active", "pending", "removed", "left"]


class Member(NamedTuple):
    """A member, in the column order of the ``members`` projection."""

    key: str
    name: str
    status: MemberStatus
    role: Literal["founder", "member"]
    joined_index: int
    updated_index: int
    delegate: str = ""  # whom they delegate their vote to (governance), if anyone

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class Invite(NamedTuple):
    """An invitation, in the column order of the ``invites`` projection."""

    token_hash: str
    created_by: str
    created_index: int
    used_by: str | None = None
    used_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class Contribution(NamedTuple):
    """One contributed item: what the log knows of it (never its content)."""

    id: str
    member: str
    batch_index: int
    commitment: str
    label: str | None
    license: str
    consent: str  # comma-separated scopes, in charter order
    status: str  # screening | in_review | refused | accepted | rejected | withdrawn
    flags: str  # comma-separated quality flags
    reasons: str  # why it was refused, if it was
    reviews_needed: int
    reviews: int
    decided_label: str | None
    updated_index: int
    reviewers: frozenset[str] = frozenset()
    # An earlier item this one copies (exactly or nearly), as screening found: the log
    # order decides which is the original, and the charter who is credited for a copy.
    resembles: str | None = None

    def row(self) -> tuple[Any, ...]:
        return tuple(self)[:-2]  # reviewers live in the reviews table; resembles in the log

    def to_json(self) -> dict[str, Any]:
        return {
            **dict(zip(CONTRIBUTION_COLUMNS, self.row(), strict=True)),
            "resembles": self.resembles,
        }


class Review(NamedTuple):
    """One member's verdict on one item, logged at entry ``entry``."""

    entry: int  # the review's own log index
    item: str
    reviewer: str
    verdict: str  # accept | reject | relabel | flag
    label: str | None
    reason: str | None

    def row(self) -> tuple[Any, ...]:
        return tuple(self)

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


class MemberStats(NamedTuple):
    """Per-member counters the rules need: accepted items (the newcomer rule) and items
    submitted on the current UTC day (the rate limit)."""

    accepted: int = 0
    day: str = ""
    day_items: int = 0


class ModelVersion(NamedTuple):
    """A trained model version, in the column order of the ``models`` projection. The
    event itself holds the rest (per-shard manifests, parameters, library versions)."""

    version: int
    entry: int  # the model.version event's log index
    log_time: str
    trainer: str
    shards: int
    seed: int
    items: int
    manifest_root: str
    eval_items: int
    eval_root: str
    metrics: str  # canonical JSON: name -> decimal string
    artifact_sha256: str
    previous: int | None
    license: str = ""  # set by a model.release vote
    weights: str = "private"  # private | public: whether anyone may download the artifact

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class ApiKey(NamedTuple):
    """A consumer's API key: the log holds only the SHA-256 of the secret."""

    key_hash: str
    consumer: str
    issued_by: str
    quota_per_day: int
    status: str  # active | revoked
    created_index: int
    updated_index: int

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class Treasury(NamedTuple):
    """The community's credits: revenue in, payouts out. Integers only; balance is always
    revenue minus paid."""

    id: int = 1
    balance: int = 0
    revenue: int = 0
    calls: int = 0
    updated_index: int = 0
    paid: int = 0

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class Verdict(NamedTuple):
    """A review verdict kept until its item is decided, when it is scored against the
    consensus (the review pool pays verdicts that matched)."""

    reviewer: str
    verdict: str
    label: str | None


class ValuationRecord(NamedTuple):
    """A logged valuation of a model version, in the column order of ``valuations``."""

    valuation: int
    entry: int
    model: int
    method: str
    params: str  # canonical JSON
    eval_root: str
    values_root: str
    items: int
    negative: int
    total: str  # decimal string: the sum of every item's value
    members: str  # canonical JSON: member key -> decimal string

    def member_totals(self) -> dict[str, str]:
        """Each credited member's value in all (a decimal string), read from ``members``."""
        totals: dict[str, str] = json.loads(self.members)
        return totals

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class Holding(NamedTuple):
    """A member's ownership: shares held, shares earned per pool, credits paid out to
    them, and the EVM address they registered for on-chain claims (if any)."""

    member: str
    shares: int = 0
    data: int = 0
    review: int = 0
    compute: int = 0
    credits: int = 0
    address: str = ""
    updated_index: int = 0

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class Epoch(NamedTuple):
    """A closed reward epoch. ``awards`` is canonical JSON: the per-member awards of each
    pool, as logged; ``claims_root`` the one on-chain claims root logged for it (one per
    epoch, ever)."""

    epoch: int
    entry: int
    valuation: int
    minted: int
    data: int
    review: int
    compute: int
    awards: str
    claims_root: str = ""

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class Payout(NamedTuple):
    """A payout of treasury credits to shareholders. ``parts`` is canonical JSON:
    ``[[member, shares, credits], ...]`` as logged."""

    payout: int
    entry: int
    amount: int
    shares_total: int
    holders: int
    parts: str

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class Proposal(NamedTuple):
    """A proposal, in the column order of the ``proposals`` projection. Times are RFC 3339
    UTC from the log; ``status`` is open, cancelled or executed (whether an open one is
    pending, active, passed or defeated depends on the time and the votes)."""

    proposal: int
    entry: int
    proposer: str
    title: str
    description: str
    actions: str  # canonical JSON: [{type, ...}]
    choice: str  # basic | approval | ranked-choice
    options: str  # canonical JSON list (approval, ranked-choice)
    weighting: str
    approval: str
    quorum_pct: int
    quorum_counts: str  # canonical JSON list
    secret: bool
    created: str
    starts: str
    ends: str
    reveal_ends: str  # = ends unless the ballot is secret
    executable_after: str
    expires: str
    total_power: int
    eligible: int
    status: str
    closed_index: int | None = None
    tally: str = ""  # canonical JSON of the tally it was executed on
    charter_base: str = ""  # SHA-256 of the charter when proposed (an amendment rewrites it)

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class Node(NamedTuple):
    """A member's federated node, in the column order of the ``nodes`` projection: what
    their latest ``federated.enroll`` logged (never their data) and the accepted rounds it
    has taken part in. ``status`` is the enrollment's (enrolled | withdrawn); a member who
    is no longer active has their node out whatever it says (``federated.node_status``)."""

    member: str
    node_key: str  # OpenSSH public key, ecdsa-sha2-nistp384
    items: int
    labels: str  # canonical JSON: label -> count
    root: str  # Merkle root over the salted item commitments
    license: str
    consent: str  # comma-separated scopes, in charter order
    status: str  # enrolled | withdrawn
    enrolled_index: int
    updated_index: int
    rounds: int = 0  # accepted rounds, over every run

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    def row(self) -> tuple[Any, ...]:
        return tuple(self)


class FlRound(NamedTuple):
    """One logged ``federated.round``, as later rules need it: its run, round number and
    start version, the accepted members (sorted) and their Shapley values that round."""

    run: str
    round: int
    start: int
    accepted: tuple[str, ...]
    values: tuple[tuple[str, str], ...]  # (member, decimal string), sorted by member


class FlVersion(NamedTuple):
    """What a federated model version was trained from: its Flower run, the round entries,
    the start version, and each participant's (member, enroll root, items, accepted
    rounds), sorted by member."""

    run: str
    rounds: tuple[int, ...]
    start: int
    participants: tuple[tuple[str, str, int, int], ...]


MEMBER_COLUMNS = Member._fields
INVITE_COLUMNS = Invite._fields
CONTRIBUTION_COLUMNS = Contribution._fields[:-2]  # not reviewers, not resembles
REVIEW_COLUMNS = Review._fields
NODE_COLUMNS = Node._fields
_EMPTY: Any = Map()  # immutable, so one instance serves every default


class State(NamedTuple):
    """Replay of the first ``size`` log entries."""

    size: int = 0
    charter: Charter | None = None
    origin: str = ""
    hub_key: str = ""
    founder: str = ""
    members: Map[str, Member] = _EMPTY
    names: Map[str, str] = _EMPTY  # casefolded name -> member key
    nonces: Map[str, int] = _EMPTY  # "actor:nonce" -> index
    invites: Map[str, Invite] = _EMPTY
    # Part 9: member -> log time they joined (probation counts from it); pending newcomer ->
    # the active members who approved them; member -> log times of their invites still
    # inside the charter's invite period (the invite limit counts them).
    joined_at: Map[str, str] = _EMPTY
    approvals: Map[str, frozenset[str]] = _EMPTY
    invite_times: Map[str, tuple[str, ...]] = _EMPTY
    contributions: Map[str, Contribution] = _EMPTY
    reviews: Map[int, Review] = _EMPTY  # by log index
    batches: Map[int, tuple[str, ...]] = _EMPTY  # submit index -> item ids awaiting screening
    stats: Map[str, MemberStats] = _EMPTY  # per member
    # Screened batch index -> SHA-256 of its screening entry: the draw that places its
    # items in or out of the evaluation set (see community.models.in_evaluation).
    beacons: Map[int, str] = _EMPTY
    models: Map[int, ModelVersion] = _EMPTY  # by version number
    apikeys: Map[str, ApiKey] = _EMPTY  # by key hash
    treasury: Treasury = Treasury()
    revenue_until: str = ""  # the end of the last billed usage period
    # Part 4: valuations, rewards, ownership, payouts.
    verdicts: Map[str, tuple[Verdict, ...]] = _EMPTY  # item in review -> its verdicts
    review_credit: Map[str, int] = _EMPTY  # member -> matched verdicts not yet rewarded
    # Part 7: member -> their verdicts since the last epoch, by outcome (community.review_pay)
    review_tallies: Map[str, Any] = _EMPTY
    rewarded_value: Map[str, int] = _EMPTY  # member -> highest data weight rewarded so far
    orders: Map[str, int] = _EMPTY  # hub job -> entry of the latest vote that ordered it
    # Every item some version was evaluated on: it stays in the evaluation set for good,
    # so versions are compared on the same items (community.models.pool).
    evaluated: frozenset[str] = frozenset()
    valuations: Map[int, ValuationRecord] = _EMPTY  # by number
    rewarded_valuation: int = 0  # the valuation the last epoch paid on
    epochs: Map[int, Epoch] = _EMPTY  # by number
    holdings: Map[str, Holding] = _EMPTY  # by member
    payouts: Map[int, Payout] = _EMPTY  # by number
    # Epoch -> the balances (address -> shares) its one claims root was logged over: an
    # address registered later applies to later epochs, not to a root already published.
    claimed: Map[int, Map[str, int]] = _EMPTY
    # Part 5: governance.
    proposals: Map[int, Proposal] = _EMPTY  # by number
    delegates: Map[str, str] = _EMPTY  # member -> whom they delegate to
    powers: Map[int, Map[str, int]] = _EMPTY  # proposal -> voting power at its start
    delegations: Map[int, Map[str, str]] = _EMPTY  # proposal -> delegations at its start
    ballots: Map[int, Map[str, Any]] = _EMPTY  # proposal -> member -> choice
    commits: Map[int, Map[str, str]] = _EMPTY  # proposal -> member -> commitment (secret)
    # Part 10: federated members (community.federated).
    nodes: Map[str, Node] = _EMPTY  # member -> their node's latest enrollment
    node_keys: Map[str, str] = _EMPTY  # every node key ever enrolled -> its member
    fl_runs: Map[str, int] = _EMPTY  # Flower run id -> its last logged round
    fl_rounds: Map[int, FlRound] = _EMPTY  # federated.round entry -> what it decided
    fl_versions: Map[int, FlVersion] = _EMPTY  # federated model version -> its run
    compute_credit: Map[str, int] = _EMPTY  # member -> accepted rounds since the last epoch
    dp_rounds: Map[str, int] = _EMPTY  # member -> rounds they took part in under DP

    def evolve(self, changes: dict[str, Any]) -> State:
        """A copy with ``changes`` applied (cheaper than ``_replace`` on the replay hot
        path). The maps are shared, not copied."""
        values = list(self)
        for name, value in changes.items():
            values[_INDEX[name]] = value
        return tuple.__new__(State, values)

    @property
    def latest_model(self) -> ModelVersion | None:
        return self.models.get(len(self.models)) if self.models else None

    def is_active(self, key: str) -> bool:
        m = self.members.get(key)
        return m is not None and m.status == "active"


_INDEX = {name: i for i, name in enumerate(State._fields)}
