"""The tables. The ``ledger_*`` tables are the log; everything else is a projection of it,
which ``commonweal rebuild`` drops and recreates by replaying the log."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

__all__ = [
    "LOG_TABLES",
    "PROJECTION_TABLES",
    "SCHEMA_VERSION",
    "community",
    "invites",
    "ledger_checkpoints",
    "ledger_entries",
    "ledger_head",
    "ledger_nodes",
    "members",
    "metadata",
    "schema_info",
]

SCHEMA_VERSION = 1

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
    Column("kind", String(64), nullable=False, index=True),
    Column("actor", String(64), nullable=False, index=True),
    Column("log_time", String(32), nullable=False),
)

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

PROJECTION_TABLES = (community, members, invites)
