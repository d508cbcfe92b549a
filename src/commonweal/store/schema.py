"""The tables. The ``ledger_*`` tables are the log; everything else is a projection of it,
which ``commonweal rebuild`` drops and recreates by replaying the log."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

__all__ = [
    "CONTENT_TABLES",
    "COUNTER_TABLES",
    "LOG_INDEXES",
    "LOG_TABLES",
    "PROJECTION_TABLES",
    "SCHEMA_VERSION",
    "apikeys",
    "community",
    "content_blobs",
    "content_keys",
    "contributions",
    "dedup_exact",
    "epochs",
    "holdings",
    "hub_settings",
    "invites",
    "item_values",
    "ledger_checkpoints",
    "ledger_entries",
    "ledger_head",
    "ledger_nodes",
    "members",
    "metadata",
    "model_blobs",
    "model_items",
    "models",
    "near_signatures",
    "nodes",
    "payouts",
    "proposals",
    "quality_reports",
    "rate_counters",
    "reviews",
    "schema_info",
    "seen_requests",
    "treasury",
    "usage",
    "valuations",
    "webhooks",
]

# 2: models, API keys, treasury, usage (part 3); 3: ownership, governance; 4: member webhooks;
# 5: item keys stored wrapped under a key-encryption key kept outside the database;
# 6: federated members' nodes (part 10)
SCHEMA_VERSION = 6

metadata = MetaData()

schema_info = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

# -- the log ----------------------------------------------------------------------------

ledger_head = Table(
    "ledger_head",
    metadata,
    # One row. Postgres appends lock it FOR UPDATE; that lock is what serializes writers.
    Column("id", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary, nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf", LargeBinary, nullable=False),  # exactly the bytes the tree hashes
    Column("kind", String(64), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("log_time", String(32), nullable=False),
    # The ledger explorer's filters: newest entries of a kind or by a member, a page at a
    # time. With (kind) alone SQLite walks the primary key backwards to find a rare kind
    # (0.7 s at 100,000 entries); (kind, idx) answers any page from the index (0.1 ms).
    Index("ix_ledger_entries_kind_idx", "kind", "idx"),
    Index("ix_ledger_entries_actor_idx", "actor", "idx"),
)

# Indexes added to the log's tables after schema 3: a hub creates the missing ones when it
# opens (they are derived, so adding them needs no schema version or rebuild).
LOG_INDEXES = tuple(ledger_entries.indexes)

ledger_nodes = Table(
    "ledger_nodes",
    metadata,
    # Complete subtree hashes: (level, idx) covers leaves [idx << level, (idx + 1) << level).
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
)

LOG_TABLES = (schema_info, ledger_head, ledger_entries, ledger_nodes, ledger_checkpoints)

# -- projections ------------------------------------------------------------------------

community = Table(
    "community",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("hub_key", String(64), nullable=False),
    Column("founder", String(64), nullable=False),
    Column("charter", Text, nullable=False),  # canonical JSON
)

members = Table(
    "members",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("role", String(16), nullable=False),
    Column("joined_index", BigInteger, nullable=False),
    Column("updated_index", BigInteger, nullable=False),
    Column("delegate", String(64), nullable=False),
)

invites = Table(
    "invites",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("created_by", String(64), nullable=False),
    Column("created_index", BigInteger, nullable=False),
    Column("used_by", String(64)),
    Column("used_index", BigInteger),
)

contributions = Table(
    "contributions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("member", String(64), nullable=False, index=True),
    Column("batch_index", BigInteger, nullable=False),
    Column("commitment", String(64), nullable=False),
    Column("label", Text),
    Column("license", String(64), nullable=False),
    Column("consent", String(64), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("flags", Text, nullable=False),
    Column("reasons", Text, nullable=False),
    Column("reviews_needed", Integer, nullable=False),
    Column("reviews", Integer, nullable=False),
    Column("decided_label", Text),
    Column("updated_index", BigInteger, nullable=False),
)

reviews = Table(
    "reviews",
    metadata,
    Column("entry", BigInteger, primary_key=True, autoincrement=False),
    Column("item", String(32), nullable=False, index=True),
    Column("reviewer", String(64), nullable=False, index=True),
    Column("verdict", String(16), nullable=False),
    Column("label", Text),
    Column("reason", Text),
)

models = Table(
    "models",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("entry", BigInteger, nullable=False),
    Column("log_time", String(32), nullable=False),
    Column("trainer", String(64), nullable=False),
    Column("shards", Integer, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("items", Integer, nullable=False),
    Column("manifest_root", String(64), nullable=False),
    Column("eval_items", Integer, nullable=False),
    Column("eval_root", String(64), nullable=False),
    Column("metrics", Text, nullable=False),  # canonical JSON
    Column("artifact_sha256", String(64), nullable=False),
    Column("previous", Integer),
    Column("license", String(64), nullable=False),
    Column("weights", String(16), nullable=False),
)

apikeys = Table(
    "apikeys",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("consumer", Text, nullable=False),
    Column("issued_by", String(64), nullable=False),
    Column("quota_per_day", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_index", BigInteger, nullable=False),
    Column("updated_index", BigInteger, nullable=False),
)

treasury = Table(
    "treasury",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("balance", BigInteger, nullable=False),
    Column("revenue", BigInteger, nullable=False),
    Column("calls", BigInteger, nullable=False),
    Column("updated_index", BigInteger, nullable=False),
    Column("paid", BigInteger, nullable=False),
)

valuations = Table(
    "valuations",
    metadata,
    Column("valuation", Integer, primary_key=True, autoincrement=False),
    Column("entry", BigInteger, nullable=False),
    Column("model", Integer, nullable=False),
    Column("method", String(32), nullable=False),
    Column("params", Text, nullable=False),  # canonical JSON
    Column("eval_root", String(64), nullable=False),
    Column("values_root", String(64), nullable=False),
    Column("items", BigInteger, nullable=False),
    Column("negative", BigInteger, nullable=False),
    Column("total", String(64), nullable=False),  # decimal string
    Column("members", Text, nullable=False),  # canonical JSON: member -> decimal string
)

holdings = Table(
    "holdings",
    metadata,
    Column("member", String(64), primary_key=True),
    Column("shares", BigInteger, nullable=False),
    Column("data", BigInteger, nullable=False),
    Column("review", BigInteger, nullable=False),
    Column("compute", BigInteger, nullable=False),
    Column("credits", BigInteger, nullable=False),
    Column("address", String(42), nullable=False),
    Column("updated_index", BigInteger, nullable=False),
)

epochs = Table(
    "epochs",
    metadata,
    Column("epoch", Integer, primary_key=True, autoincrement=False),
    Column("entry", BigInteger, nullable=False),
    Column("valuation", Integer, nullable=False),
    Column("minted", BigInteger, nullable=False),
    Column("data", BigInteger, nullable=False),
    Column("review", BigInteger, nullable=False),
    Column("compute", BigInteger, nullable=False),
    Column("awards", Text, nullable=False),  # canonical JSON: pool -> [[member, shares]]
    Column("claims_root", String(66), nullable=False),
)

payouts = Table(
    "payouts",
    metadata,
    Column("payout", Integer, primary_key=True, autoincrement=False),
    Column("entry", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("shares_total", BigInteger, nullable=False),
    Column("holders", Integer, nullable=False),
    Column("parts", Text, nullable=False),  # canonical JSON: [[member, shares, credits]]
)

proposals = Table(
    "proposals",
    metadata,
    Column("proposal", BigInteger, primary_key=True, autoincrement=False),  # its log entry
    Column("entry", BigInteger, nullable=False),
    Column("proposer", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("actions", Text, nullable=False),  # canonical JSON
    Column("choice", String(16), nullable=False),
    Column("options", Text, nullable=False),  # canonical JSON
    Column("weighting", String(16), nullable=False),
    Column("approval", String(16), nullable=False),
    Column("quorum_pct", Integer, nullable=False),
    Column("quorum_counts", Text, nullable=False),
    Column("secret", Boolean, nullable=False),
    Column("created", String(32), nullable=False),
    Column("starts", String(32), nullable=False),
    Column("ends", String(32), nullable=False),
    Column("reveal_ends", String(32), nullable=False),
    Column("executable_after", String(32), nullable=False),
    Column("expires", String(32), nullable=False),
    Column("total_power", BigInteger, nullable=False),
    Column("eligible", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("closed_index", BigInteger),
    Column("tally", Text, nullable=False),
    Column("charter_base", String(64), nullable=False),
)

# A federated member's node: their latest enrollment (never their data) and the accepted
# rounds it took part in. ``status`` is the enrollment's; the API joins the member's own.
nodes = Table(
    "nodes",
    metadata,
    Column("member", String(64), primary_key=True),
    Column("node_key", Text, nullable=False),  # OpenSSH ecdsa-sha2-nistp384 public key
    Column("items", BigInteger, nullable=False),
    Column("labels", Text, nullable=False),  # canonical JSON: label -> count
    Column("root", String(64), nullable=False),
    Column("license", String(64), nullable=False),
    Column("consent", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("enrolled_index", BigInteger, nullable=False),
    Column("updated_index", BigInteger, nullable=False),
    Column("rounds", BigInteger, nullable=False),
)

PROJECTION_TABLES = (
    community,
    members,
    invites,
    contributions,
    reviews,
    models,
    apikeys,
    treasury,
    valuations,
    holdings,
    epochs,
    payouts,
    proposals,
    nodes,
)

# -- the hub's own data: not in the log, not derivable from it ----------------------------
# Content is encrypted with a key per item, stored wrapped under the hub's key-encryption key
# (a file outside the database, see store/keyring.py); withdrawing an item deletes both rows
# in the same transaction as the withdrawal event and rotates the KEK (crypto-shredding).
# rebuild never touches these.

hub_settings = Table(
    "hub_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

content_blobs = Table(
    "content_blobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("member", String(64), nullable=False, index=True),
    Column("ciphertext", LargeBinary, nullable=False),
)

content_keys = Table(
    "content_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    # The item's key wrapped under KEK ``kek`` (nonce || ciphertext), never the key itself.
    # ``kek`` is NULL only in a schema-4 row not yet migrated (a plain key).
    Column("key", LargeBinary, nullable=False),
    Column("kek", String(16), nullable=True, index=True),
)

dedup_exact = Table(
    "dedup_exact",
    metadata,
    # HMAC of the normalized content under the hub's secret: never an unsalted hash.
    Column("key", String(64), primary_key=True),
    Column("id", String(32), nullable=False, index=True),
)

near_signatures = Table(
    "near_signatures",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("signature", LargeBinary, nullable=False),
)

quality_reports = Table(
    "quality_reports",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("report", Text, nullable=False),  # JSON; findings by kind and position only
)

# -- model artifacts and usage: the hub's, not derivable from the log ----------------------
# A shard's artifact is stored once under its SHA-256 and shared by every version that
# reuses the shard. A version's item list is stored here; the log holds its Merkle root.

model_blobs = Table(
    "model_blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

model_items = Table(
    "model_items",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("item", String(32), primary_key=True, index=True),
    Column("shard", SmallInteger, nullable=False),
)

item_values = Table(
    "item_values",
    metadata,
    # Each valued item's value (Python's shortest float repr); the log holds their root.
    Column("valuation", Integer, primary_key=True, autoincrement=False),
    Column("item", String(32), primary_key=True),
    Column("member", String(64), nullable=False),
    Column("value", String(40), nullable=False),
)

usage = Table(
    "usage",
    metadata,
    # Calls metered per key and UTC day; ``unbilled`` moves into a revenue event.
    Column("key_hash", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("calls", BigInteger, nullable=False),
    Column("unbilled", BigInteger, nullable=False),
)

# -- rate limits: counts per fixed window, shared by every server process ---------------
# A row counts what one subject (a member, an API key) did in one window of one limit
# (``scope``: "events", "try-minute", "try-day"); a conditional upsert takes from it only
# while under the limit, so the limit holds across processes. Old windows are pruned.
# Nothing here is in the log or derived from it, and losing it costs at most a window's
# counts: the hub creates the table when it is missing (no schema version needed).

rate_counters = Table(
    "rate_counters",
    metadata,
    Column("scope", String(16), primary_key=True),
    Column("subject", String(64), primary_key=True),
    Column("period", String(24), primary_key=True),  # the window's start: a log time prefix
    Column("used", BigInteger, nullable=False),
)

# -- request signatures already used: a replay cache shared by every server process ------
# One row per member-signed request the hub accepted (the SHA-256 of what was signed),
# kept until its signature's five-minute window has passed; an insert that conflicts is a
# replay. Like the counters, nothing here comes from the log and losing it only reopens
# the windows still running: the hub creates the table when it is missing.

seen_requests = Table(
    "seen_requests",
    metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("expires", BigInteger, nullable=False),  # unix seconds
    Index("seen_requests_by_expiry", "expires"),
)

# Short-lived tables a hub creates on open when missing, without a schema version.
COUNTER_TABLES = (rate_counters, seen_requests)

# -- members' webhooks: private to the member and the hub, never in the log ----------------
# ``notified`` is what waited for the member when the hub last told them (JSON), so each
# change is pushed at most once; a failed push puts it back and waits ``retry_at``.

webhooks = Table(
    "webhooks",
    metadata,
    Column("member", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("notified", Text, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("retry_at", Float, nullable=False),  # unix time; 0 = now
    Column("last_error", Text, nullable=False),
)

CONTENT_TABLES = (content_blobs, content_keys, dedup_exact, near_signatures, quality_reports)
