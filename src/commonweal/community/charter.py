"""The charter: a community's constitution, saved in the log's first event.

It is a pydantic model that refuses unknown fields, so a typo in a charter file or an
amendment is an error that names the field rather than a rule silently ignored. Later parts
add their sections (task, review, rewards, governance) here as optional fields with defaults,
so that charters written today still validate tomorrow.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from commonweal.errors import CharterInvalid

__all__ = [
    "ACTION_TYPES",
    "CHARTER_VERSION",
    "CONSENT_SCOPES",
    "FEDERATED_TASKS",
    "Charter",
    "Column",
    "Duplicates",
    "Evaluation",
    "Events",
    "Federated",
    "Governance",
    "JoinPolicy",
    "Limits",
    "Membership",
    "Privacy",
    "ReviewRules",
    "Rewards",
    "Schedule",
    "Serving",
    "Task",
    "Training",
    "Valuation",
    "VotingRule",
    "validate_charter",
    "with_federated_app",
]

CHARTER_VERSION = 3
# What a version-2 charter (founded before part 9) meant by the fields it does not have:
# no clock-skew bound on event times, unlimited invites, no probation. Its logs verify as
# written; a vote that amends the charter to version 3 brings the part-9 rules in.
_V2_MEANING: dict[str, dict[str, Any]] = {
    "events": {"max_clock_skew_seconds": 0},
    "membership": {"invites_per_member": 0, "approvals_required": 0},
    "governance": {"probation_seconds": 0},
}
# What a version-1 charter (founded before part 7) meant by the fields it does not have:
# its community keeps the rules it was founded under, and its history verifies as it was
# written, until a vote amends the charter to version 2.
_V1_MEANING: dict[str, dict[str, Any]] = {
    "rewards": {"review_weight": "matched", "reward_once": False, "label_accuracy_power": 0},
    "review": {"rereview_flags": []},
    "duplicates": {"copy_credit": "copier"},
    "governance": {"secret_per_proposal": False, **_V2_MEANING["governance"]},
    "events": _V2_MEANING["events"],
    "membership": _V2_MEANING["membership"],
    # Before part 7 the shard count was fixed, however small the pool.
    "training": {
        "min_rows_per_shard": 1,
        "min_rows_per_class_per_shard": 1,
        "evaluation": {"min_per_class": 0},
    },
    "serving": {"founder_revokes_keys": True},
    # Before part 7 the hub did nothing on its own: every job waited for its operator.
    "schedule": {
        "train_after_items": 0,
        "train_every_seconds": 0,
        "value_new_versions": False,
        "close_epoch_after_valuation": False,
        "payout_every_seconds": 0,
        "scan_every_seconds": 0,
    },
}
JoinPolicy = Literal["open", "invite", "approval"]
TaskKind = Literal[
    "text-classification", "tabular-classification", "tabular-regression", "image-classification"
]
ConsentScope = Literal["train", "evaluate", "commercial", "publish"]
CONSENT_SCOPES: tuple[str, ...] = ("train", "evaluate", "commercial", "publish")
_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
_DECIMAL = r"^[0-9]{1,12}(\.[0-9]{1,12})?$"
# Federated members train a linear softmax over the charter's fixed features: text's 2^18
# hashed columns make each update too large to send, and regression is not softmax.
FEDERATED_TASKS = ("image-classification", "tabular-classification")
_SPDX = r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,63}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Column(_Section):
    """One named input column of a tabular task."""

    name: str = Field(pattern=_NAME)
    type: Literal["numeric", "categorical"] = "numeric"
    categories: list[str] = Field(default_factory=list, max_length=1000)


class Task(_Section):
    """What the community's model learns, and so what a contribution must look like."""

    kind: TaskKind
    labels: list[str] = Field(default_factory=list, max_length=1000)
    columns: list[Column] = Field(default_factory=list, max_length=1000)
    target: str = Field(default="target", pattern=_NAME)
    image_width: int = Field(default=8, ge=1, le=1024)
    image_height: int = Field(default=8, ge=1, le=1024)

    @model_validator(mode="after")
    def _fits_kind(self) -> Task:
        classification = self.kind.endswith("classification")
        if classification and len(self.labels) < 2:
            raise ValueError(f"a {self.kind} task needs at least two labels")
        if not classification and self.labels:
            raise ValueError(f"a {self.kind} task has no labels")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be distinct")
        if any(not 1 <= len(x) <= 64 or x != x.strip() for x in self.labels):
            raise ValueError("each label is 1-64 characters without surrounding spaces")
        tabular = self.kind.startswith("tabular")
        if tabular and not self.columns:
            raise ValueError(f"a {self.kind} task needs its columns")
        if not tabular and self.columns:
            raise ValueError(f"a {self.kind} task has no columns")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names) or self.target in names:
            raise ValueError("column names must be distinct and differ from the target")
        return self


class Limits(_Section):
    """How much one item, one batch and one member's day may hold, and how fast a served
    hub lets one member append or one address ask. The rates are the server's guard
    against floods, not rules of the log: replay never looks at them."""

    max_item_bytes: int = Field(default=8192, ge=64, le=1_048_576)
    max_batch_items: int = Field(default=1000, ge=1, le=1000)
    max_items_per_member_per_day: int = Field(default=100_000, ge=1)
    # Ten a second for a whole minute: far more than a member reviewing or voting by hand
    # or through the CLI, a sixtieth of the flood seen in review (1,000 a second).
    events_per_member_per_minute: int = Field(
        default=600,
        ge=1,
        le=10**9,
        description="events one member may append a minute, across all of the hub's servers "
        "(a batch counts each of its events); more get 429 with Retry-After",
    )
    requests_per_ip_per_minute: int = Field(
        default=6000,
        ge=1,
        le=10**9,
        description="requests one IP address may make a minute to each server process; "
        "more get 429 with Retry-After",
    )


class Privacy(_Section):
    """What to do with personal data (emails, phone and card numbers, IBANs, IPs)."""

    personal_data: Literal["redact", "refuse", "flag"] = "redact"
    phone_regions: list[str] = Field(
        default_factory=lambda: ["GB", "US", "CA"],
        min_length=1,
        max_length=20,
        description="ISO 3166 countries whose national phone formats are recognised "
        "(numbers written with a +country code are found whatever these are)",
    )

    @model_validator(mode="after")
    def _regions_are_countries(self) -> Privacy:
        import phonenumbers

        unknown = [r for r in self.phone_regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone region(s) {unknown}: use ISO 3166 codes like GB")
        return self


class Duplicates(_Section):
    """Exact copies and near copies of items the community already holds."""

    exact: Literal["refuse", "flag"] = "refuse"
    near: Literal["refuse", "flag"] = "flag"
    near_threshold_pct: int = Field(default=80, ge=50, le=100)
    image_max_distance: int = Field(default=4, ge=0, le=32)
    copy_credit: Literal["original", "nobody", "copier"] = Field(
        default="original",
        description="who a copy's value is credited to: the contributor of the item it "
        "copies (the one logged first), no one, or (version-1 charters) the copier",
    )


class ReviewRules(_Section):
    """Peer review: how many reviews an item needs and how they are combined."""

    reviews_needed: int = Field(default=2, ge=1, le=20)
    newcomer_reviews_needed: int = Field(default=3, ge=1, le=20)
    newcomer_until_accepted: int = Field(
        default=10, ge=0, description="a member is a newcomer until this many items are accepted"
    )
    consensus: Literal["dawid-skene", "majority"] = "dawid-skene"
    accept_threshold_pct: int = Field(default=50, ge=1, le=100)
    rereview_flags: list[str] = Field(
        default_factory=lambda: ["suspected-label-error", "negative-value", "near-duplicate"],
        max_length=20,
        description="flags that send an accepted item back to review (reviewers see why); "
        "the new verdicts join the old ones and consensus decides again",
    )
    rereviews_needed: int = Field(
        default=2, ge=1, le=20, description="further reviews a re-reviewed item needs"
    )


class Evaluation(_Section):
    """The community's held-out evaluation set: never trained on, every version scored on it.

    An accepted item belongs to it when a SHA-256 of its id and of the hub's screening entry
    for its batch falls in the first ``holdout_pct`` percent: a draw anyone can recompute
    from the log, and that a member cannot steer by choosing salts."""

    holdout_pct: int = Field(default=10, ge=1, le=50)
    min_items: int = Field(
        default=20,
        ge=1,
        description="fewer than this and training refuses; from version 2, a pool of at "
        "least four times this many tops the set up with its lowest draws instead",
    )
    min_per_class: int = Field(
        default=5,
        ge=0,
        description="each label gets at least this many evaluation items (while it has "
        "twice as many accepted): the label's items with the lowest draw join the set",
    )


class Training(_Section):
    """How the community's model is trained (see ``commonweal.ml.trainers``)."""

    trainer: str = Field(
        default="auto", pattern=r"^[a-z][a-z0-9-]{0,40}$", description="auto picks per task"
    )
    shards: int = Field(
        default=8,
        ge=1,
        le=64,
        description="most SISA shards: a withdrawal retrains only its shard; fewer while "
        "the pool is small (see min_rows_per_shard)",
    )
    min_rows_per_shard: int = Field(
        # 200 split breast cancer's 512 training rows in two and cost a gradient-boosting
        # model up to 7 points against one model (bench/fairness.py, seed 0); at 300 every
        # bundled set stays within 2 points, and a large community still gets its shards.
        default=300,
        ge=1,
        description="a shard gets at least this many training items: a small community "
        "trains one model, a large one up to `shards`",
    )
    min_rows_per_class_per_shard: int = Field(
        default=10, ge=1, description="and at least this many of each label, on average"
    )
    behind_unsharded_pct: int = Field(
        default=2,
        ge=0,
        le=100,
        description="how many points (accuracy, or R² x 100) the sharded model may fall "
        "behind one unsharded model fitted on the same rows",
    )
    when_behind: Literal["warn", "refuse"] = Field(
        default="warn", description="what training does when it falls further behind"
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    evaluation: Evaluation = Field(default_factory=Evaluation)


class Serving(_Section):
    """Who may issue API keys, what a prediction costs, and how often usage is billed."""

    apikeys: Literal["member", "founder"] = Field(
        default="member", description="who may issue API keys to consumers"
    )
    price_per_call: int = Field(
        default=1, ge=0, le=10**12, description="credits per input predicted (integers)"
    )
    founder_revokes_keys: bool = Field(
        default=False,
        description="whether the founder may revoke any API key (otherwise only the key's "
        "issuer, or the members by an apikey.revoke vote)",
    )
    quota_per_key_per_day: int = Field(default=100_000, ge=1, le=10**12)
    revenue_period_seconds: int = Field(
        default=3600, ge=1, le=31 * 86400, description="how often usage becomes a revenue event"
    )


class Valuation(_Section):
    """How each contribution to a model version is valued (``commonweal value``).

    ``knn-shapley`` is exact and deterministic: the Shapley value of each item to a
    K-nearest-neighbour classifier in the model's feature space, over the evaluation set.
    ``tmc-shapley`` values each member on the real trainer: truncated Monte Carlo Shapley
    over members, each coalition's model fitted with the charter's recipe and scored on the
    evaluation set (seeded by ``training.seed``). ``auto`` is knn-shapley for
    classification and tmc-shapley for regression."""

    method: Literal["auto", "knn-shapley", "tmc-shapley"] = "auto"
    k: int = Field(default=5, ge=1, le=100, description="neighbours, for knn-shapley")
    permutations: int = Field(
        default=100, ge=1, le=100_000, description="sampled permutations, for tmc-shapley"
    )
    truncation_pct: int = Field(
        default=1,
        ge=0,
        le=50,
        description="tmc-shapley stops a permutation once the coalition is within this "
        "percent of the full model's score",
    )


class Schedule(_Section):
    """What the hub does on its own, so that no one needs shell access for the community to
    run: each job also runs when a passed ``hub.run`` proposal orders it."""

    train_after_items: int = Field(
        default=50,
        ge=0,
        description="train a new version once this many items were "
        "accepted or withdrawn since the last one (0: never on this count)",
    )
    train_every_seconds: int = Field(
        default=86400,
        ge=0,
        description="train at most this often when anything changed "
        "since the last version (0: never on a timer)",
    )
    value_new_versions: bool = Field(default=True, description="value each new version")
    close_epoch_after_valuation: bool = Field(
        default=True, description="close a reward epoch after each valuation of new work"
    )
    payout_every_seconds: int = Field(
        default=7 * 86400, ge=0, description="pay the treasury out this often (0: never)"
    )
    scan_every_seconds: int = Field(
        default=86400,
        ge=0,
        description="scan the pool for suspected label errors this often (0: never)",
    )


class Events(_Section):
    """What the hub accepts of the times members put on their events."""

    max_clock_skew_seconds: int = Field(
        default=300,
        ge=0,
        le=30 * 86400,
        description="an event's own time may differ from the log time the hub gives it by "
        "at most this many seconds, so no one back- or forward-dates an act (0: no bound)",
    )


class Membership(_Section):
    """Joining and leaving, and the join policies that keep one person from minting voters
    (see the README's "Who can join" section for what each one does and does not stop)."""

    invites_per_member: int = Field(
        default=5,
        ge=0,
        le=10_000,
        description="invites one member may create per invite period (0: no limit)",
    )
    invite_period_seconds: int = Field(
        default=30 * 86400,
        ge=1,
        le=366 * 86400,
        description="the rolling window the invite limit counts over",
    )
    approvals_required: int = Field(
        default=0,
        ge=0,
        le=100,
        description="distinct active members who must approve a newcomer before they may "
        "contribute, review or vote (0: none, except under join_policy approval: one)",
    )

    leaving_shares: Literal["keep", "give-up"] = Field(
        default="keep",
        description="keep: a member who leaves stays an owner (and is paid out); give-up: "
        "their shares are burned when they leave",
    )


class Rewards(_Section):
    """Reward epochs: the shares each epoch mints, and how they are split into pools.

    The data pool goes pro rata to each member's (positive) value on the valued version —
    with ``reward_once``, only to value not rewarded by an earlier epoch, and only the
    part of the pool that new value is of all value; the review pool to reviewers by the
    information in their verdicts (``review_weight``); the compute pool to validated
    training work (federated training, later parts). A pool with no one to pay is not
    minted."""

    shares_per_epoch: int = Field(default=1_000_000, ge=1, le=10**15)
    data_pct: int = Field(default=70, ge=0, le=100)
    review_pct: int = Field(default=20, ge=0, le=100)
    compute_pct: int = Field(default=10, ge=0, le=100)
    transferable: bool = Field(
        default=False, description="whether members may transfer shares to each other"
    )
    review_weight: Literal["informative", "matched"] = Field(
        default="informative",
        description="informative: each reviewer by how far their verdicts agreed with "
        "consensus beyond what their own habits would by chance (Cohen's kappa), so "
        "accepting everything earns nothing; matched: by verdicts that matched consensus",
    )
    label_accuracy_power: int = Field(
        default=2,
        ge=0,
        le=4,
        description="a member's data weight is multiplied by (share of their reviewed items "
        "kept as labelled) to this power: care pays, careless volume does not (0: off)",
    )
    reward_once: bool = Field(
        default=True,
        description="an epoch pays only value not rewarded by an earlier epoch (each "
        "member's high-water mark), and mints only the new value's part of the data pool",
    )

    @model_validator(mode="after")
    def _pools_add_up(self) -> Rewards:
        if self.data_pct + self.review_pct + self.compute_pct != 100:
            raise ValueError("data_pct, review_pct and compute_pct must add up to 100")
        return self


class Federated(_Section):
    """Federated members: members who train the community's model on their own machines
    (Flower), so their data never leaves them. Each round is logged with every node's
    update hash, what robust aggregation rejected and why, and each member's value."""

    enabled: bool = Field(
        default=False,
        description="whether members may enroll nodes and the hub may train with them "
        "(image- or tabular-classification tasks only)",
    )
    rounds: int = Field(default=5, ge=1, le=1000, description="rounds of one training run")
    clients_per_round: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="nodes asked per round (0: every enrolled node online)",
    )
    min_clients: int = Field(
        default=2, ge=1, le=1000, description="a round needs this many nodes' replies"
    )
    aggregation: Literal["fedavg", "trimmed-mean", "median", "krum", "multi-krum", "bulyan"] = (
        Field(default="fedavg", description="how the nodes' updates are combined")
    )
    trim_pct: int = Field(
        default=20, ge=0, le=49, description="trimmed-mean: the percent cut at each end"
    )
    malicious: int = Field(
        default=1,
        ge=0,
        le=100,
        description="krum, multi-krum, bulyan: how many Byzantine nodes are tolerated",
    )
    outlier_factor: int = Field(
        default=3,
        ge=0,
        le=1000,
        description="an update further from the median update than this many times the "
        "median such distance is rejected (0: off)",
    )
    local_epochs: int = Field(
        default=5, ge=1, le=1000, description="gradient steps per round on each node"
    )
    learning_rate: str = Field(default="0.5", pattern=_DECIMAL)
    l2: str = Field(default="0.0001", pattern=_DECIMAL)
    dp: Literal["off", "server-fixed", "client-fixed"] = Field(
        default="off",
        description="differential privacy: off, or Flower's fixed-clipping wrapper with "
        "noise added by the hub (server-fixed) or by each node (client-fixed)",
    )
    noise_multiplier: str = Field(default="1.0", pattern=_DECIMAL)
    clipping_norm: str = Field(default="10", pattern=_DECIMAL)
    delta: str = Field(default="0.00001", pattern=_DECIMAL)
    epsilon_budget: str = Field(
        default="0",
        pattern=_DECIMAL,
        description="the privacy loss a member may spend across all rounds (0: no cap)",
    )
    valuation: Literal["round-shapley"] = Field(
        default="round-shapley",
        description="each round's accepted nodes valued by Shapley over the round's "
        "coalitions, scored on the evaluation set",
    )
    max_exact_players: int = Field(
        default=10, ge=1, le=14, description="exact Shapley up to this many nodes a round"
    )
    permutations: int = Field(
        default=200, ge=1, le=10_000, description="sampled permutations beyond that"
    )
    local_holdout_pct: int = Field(
        default=20, ge=0, le=50, description="nodes score on this held-out part of their data"
    )
    start: Literal["latest", "zeros"] = Field(
        default="latest",
        description="latest: start from the latest central version's weights; zeros: from zeros",
    )
    app_sha256: str = Field(
        default="",
        pattern=r"^([0-9a-f]{64})?$",
        description="SHA-256 of the Flower app bundle nodes may run (set by init)",
    )

    @model_validator(mode="after")
    def _sane(self) -> Federated:
        if self.clients_per_round and self.min_clients > self.clients_per_round:
            raise ValueError(
                f"min_clients {self.min_clients} exceeds clients_per_round "
                f"{self.clients_per_round}; lower it or ask more nodes per round"
            )
        for name in ("noise_multiplier", "clipping_norm", "delta", "learning_rate"):
            if not Decimal(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be greater than 0")
        if not Decimal(self.delta) < 1:
            raise ValueError(f"delta {self.delta} must be below 1")
        return self


ACTION_TYPES: tuple[str, ...] = (
    "charter.amend",
    "member.admit",
    "member.remove",
    "model.release",
    "apikey.grant",
    "apikey.revoke",
    "price.set",
    "treasury.pay",
    "contribution.remove",
    "hub.run",
    "signal",
)
"""What a passed proposal can make the hub do (see ``community.governance``)."""


_APPROVALS = ("majority", "two-thirds", "three-quarters", "unanimous")
_BUILT_IN_APPROVAL = {"charter.amend": "two-thirds"}


class VotingRule(_Section):
    """How the votes on one kind of action are weighed and what it takes to pass."""

    weighting: Literal["member", "shares", "quadratic"] = Field(
        default="member",
        description="member: one member, one vote; shares: by shares held; quadratic: by "
        "the integer square root of shares",
    )
    approval: Literal["majority", "two-thirds", "three-quarters", "unanimous"] = Field(
        default="majority", description="share of For among For and Against needed to pass"
    )


class Governance(_Section):
    """Proposals and votes: who may propose, when votes are open, and what passes.

    Voting power is fixed when a proposal is made (members, shares and delegations then);
    the hub executes a passed proposal's actions once its timelock has run out."""

    proposers: Literal["member", "founder"] = "member"
    proposal_threshold_shares: int = Field(
        default=0, ge=0, description="shares a member must hold to propose"
    )
    voting_delay_seconds: int = Field(default=0, ge=0, le=30 * 86400)
    voting_period_seconds: int = Field(default=3 * 86400, ge=1, le=90 * 86400)
    timelock_seconds: int = Field(default=86400, ge=0, le=30 * 86400)
    expiry_seconds: int = Field(
        default=14 * 86400, ge=1, description="a passed proposal not executed by then lapses"
    )
    quorum_pct: int = Field(default=20, ge=0, le=100, description="of the total voting power")
    quorum_counts: list[Literal["for", "against", "abstain"]] = Field(
        default_factory=lambda: list[Literal["for", "against", "abstain"]](
            ["for", "against", "abstain"]
        ),
        min_length=1,
        description="which votes count toward the quorum",
    )
    change_votes: bool = Field(default=True, description="a later vote replaces an earlier one")
    secret_ballot: bool = Field(
        default=False, description="commit-reveal: tallies stay hidden until voting ends"
    )
    secret_per_proposal: bool = Field(
        default=True,
        description="a proposer may ask for a secret ballot on their own proposal",
    )
    reveal_period_seconds: int = Field(default=86400, ge=1, le=30 * 86400)
    probation_seconds: int = Field(
        default=0,
        ge=0,
        le=366 * 86400,
        description="a member who joined less than this long before a proposal's voting "
        "starts votes on it with weight 0 (their vote is shown, not counted)",
    )
    default: VotingRule = Field(default_factory=VotingRule)
    rules: dict[str, VotingRule] = Field(
        default_factory=dict,
        description="per action type, where it differs from the default (charter.amend "
        "needs two-thirds unless a rule here says otherwise)",
    )

    @model_validator(mode="after")
    def _known_actions(self) -> Governance:
        unknown = sorted(set(self.rules) - set(ACTION_TYPES))
        if unknown:
            raise ValueError(f"unknown action type(s) {unknown}; known: {list(ACTION_TYPES)}")
        return self

    def rule(self, action: str) -> VotingRule:
        """The rule for ``action``: the charter's own, else the default — but amending the
        charter needs at least two-thirds unless the charter names a rule for it (so naming
        rules for other actions does not weaken it)."""
        if action in self.rules:
            return self.rules[action]
        floor = _BUILT_IN_APPROVAL.get(action)
        if floor is not None and _APPROVALS.index(floor) > _APPROVALS.index(self.default.approval):
            return self.default.model_copy(update={"approval": floor})
        return self.default


class Charter(BaseModel):
    """The community's rules. Field docs are what `commonweal init --help` and the API show."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1, 2, 3] = Field(
        default=3,
        description="charter format version; a version-1 or -2 charter keeps the rules it "
        "was founded under (version 1: review pay by matched verdicts, epochs that may pay "
        "value twice; versions 1-2: no bound on event times, unlimited invites)",
    )
    name: str = Field(min_length=1, max_length=100, description="the community's name")
    description: str = Field(default="", max_length=2000)
    join_policy: JoinPolicy = Field(
        default="open",
        description=(
            "open: anyone with a key may join; invite: a member's invite token is needed; "
            "approval: a join waits until an active member approves it"
        ),
    )

    task: Task | None = Field(default=None, description="what members contribute data for")
    licenses: list[str] = Field(
        default_factory=lambda: ["CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0"],
        min_length=1,
        max_length=100,
        description="SPDX ids of the licenses a contribution may carry",
    )
    consent_required: list[ConsentScope] = Field(
        default_factory=lambda: list[ConsentScope](["train"]),
        description="consent scopes every contribution must grant",
    )
    limits: Limits = Field(default_factory=Limits)
    privacy: Privacy = Field(default_factory=Privacy)
    duplicates: Duplicates = Field(default_factory=Duplicates)
    review: ReviewRules = Field(default_factory=ReviewRules)
    training: Training = Field(default_factory=Training)
    serving: Serving = Field(default_factory=Serving)
    valuation: Valuation = Field(default_factory=Valuation)
    rewards: Rewards = Field(default_factory=Rewards)
    membership: Membership = Field(default_factory=Membership)
    events: Events = Field(default_factory=Events)
    schedule: Schedule = Field(default_factory=Schedule)
    governance: Governance = Field(default_factory=Governance)
    federated: Federated = Field(default_factory=Federated)

    @model_validator(mode="before")
    @classmethod
    def _earlier_versions_meaning(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("v") not in (1, 2):
            return data
        return _with_defaults(dict(data), _V1_MEANING if data["v"] == 1 else _V2_MEANING)

    @model_validator(mode="after")
    def _value_is_paid_once(self) -> Charter:
        # From version 3 paying the same value twice is no longer a choice: an epoch that
        # re-mints a whole pool on an unchanged valuation hands its shares to the same
        # people again. Versions 1-2 keep the option so their logs replay as written.
        if self.v >= 3 and not self.rewards.reward_once:
            raise ValueError(
                "rewards.reward_once cannot be false from charter version 3: an epoch "
                "rewards only value not rewarded before"
            )
        return self

    @model_validator(mode="after")
    def _licenses_are_spdx(self) -> Charter:
        for lic in self.licenses:
            if not re.match(_SPDX, lic):
                raise ValueError(f"license {lic!r} is not an SPDX identifier")
        return self

    @model_validator(mode="after")
    def _valuation_fits_task(self) -> Charter:
        kind = self.task.kind if self.task is not None else ""
        if self.valuation.method == "knn-shapley" and kind.endswith("regression"):
            raise ValueError(
                "valuation.method knn-shapley values classifiers; a regression task uses "
                "tmc-shapley (or auto)"
            )
        return self

    @model_validator(mode="after")
    def _federation_fits_task(self) -> Charter:
        kind = self.task.kind if self.task is not None else None
        if self.federated.enabled and kind not in FEDERATED_TASKS:
            raise ValueError(
                f"federated.enabled needs an image- or tabular-classification task, not "
                f"{kind}: turn federation off or change the task"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        """The charter as its document: a ``[federated]`` section only when one was given.
        A charter founded before part 10 has none, and its document (which proposals hash,
        see ``community.actions.charter_hash``) must stay byte for byte what was logged."""
        if "federated" in self.model_fields_set:
            return self.model_dump(mode="json")
        return self.model_dump(mode="json", exclude={"federated"})

    def to_full_json(self) -> dict[str, Any]:
        """Every section with its defaults, for showing the charter to people."""
        return self.model_dump(mode="json")


def _with_defaults(data: dict[str, Any], meaning: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``meaning``'s values wherever ``data`` lacks them (nested sections)."""
    out = dict(data)
    for key, value in meaning.items():
        given = out.get(key)
        if isinstance(value, dict):
            out[key] = _with_defaults(given if isinstance(given, dict) else {}, value)
            if given is not None and not isinstance(given, dict):
                out[key] = given  # let validation name the bad value
        elif key not in out:
            out[key] = value
    return out


def with_federated_app(charter: Charter, app_sha256: str) -> Charter:
    """``charter`` naming the Flower app bundle nodes may run: the hook ``commonweal init``
    calls with ``commonweal.federated.bundle.app_sha256()``. A founder's own hash (set in
    their charter file) is kept."""
    if charter.federated.app_sha256:
        return charter
    doc = charter.to_full_json()
    doc["federated"]["app_sha256"] = app_sha256
    return validate_charter(doc, where="charter")


def validate_charter(doc: Any, *, where: str = "charter") -> Charter:
    """Validate a whole charter document; the error names the first bad field and value."""
    if not isinstance(doc, dict):
        raise CharterInvalid(f"{where} must be an object")
    try:
        return Charter.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        given = err.get("input")
        shown = "" if err["type"] == "missing" else f" (got {given!r})"
        raise CharterInvalid(
            f"{where}.{loc}: {err['msg']}{shown}",
            detail=[{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()],
        ) from None
