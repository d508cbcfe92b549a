"""Opening the database: SQLite (WAL) by default, PostgreSQL by URL.

Appends must be serialized across processes, not just threads, and an acknowledged append
must survive ``kill -9``. On SQLite that means WAL with ``synchronous=FULL`` and taking the
write lock at ``BEGIN IMMEDIATE`` (not at the first write, when a concurrent writer could
already hold a stale read snapshot). pysqlite's own transaction handling would emit a plain
``BEGIN`` at the first write, so we switch it off and emit ``BEGIN`` ourselves — the
recipe SQLAlchemy documents for SQLite. On PostgreSQL the lock is a row lock on the log head
(see ``log.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from commonweal.errors import ConfigError

__all__ = ["is_sqlite", "open_engine", "read_connection", "write_connection"]

_IMMEDIATE = "commonweal_immediate"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def open_engine(url: str | URL, *, relaxed: bool = False) -> Engine:
    """An engine for ``url`` with the settings Commonweal relies on.

    ``relaxed`` is for rate and usage counters (``store.counters``), written once per
    served call: their commits do not wait for the disk (SQLite ``synchronous=NORMAL``
    in WAL mode, PostgreSQL ``synchronous_commit=off``). Atomicity, isolation and what
    other processes see are unchanged, and a committed count survives the ``kill -9`` of
    any server process; only a crash of the machine (or of PostgreSQL itself) can lose
    the last fraction of a second of counts. The log's engine is never relaxed."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"database URL {url!r} is not valid; use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB"
        ) from None
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        _create_private(parsed.database)
        # Pooled connections (a checkout is exclusive, so threads never share one at once);
        # opening a fresh connection and setting its pragmas per request costs more than
        # a small proof query. Pragmas are set on every new connection below.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", "psycopg2"):
            raise ConfigError("use the psycopg driver: postgresql+psycopg://...")
        kwargs["pool_pre_ping"] = True
    else:
        raise ConfigError(
            f"database backend {backend!r} is not supported; use sqlite or postgresql"
        )
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError):
        raise ConfigError(
            "PostgreSQL support is an optional extra: pip install 'commonweal[postgres]'"
        ) from None
    if backend == "sqlite":
        _configure_sqlite(engine, synchronous="NORMAL" if relaxed else "FULL")
    elif relaxed:
        _relax_postgresql(engine)
    return engine


def _create_private(database: str | None) -> None:
    """Create a new SQLite file empty with mode 0600 before SQLite opens it: SQLite would
    make it 0644, and gives its ``-wal`` and ``-shm`` files the database file's mode, so
    all three then hold the vault's rows for the hub's user alone. An existing file is
    left as it is (``serve`` warns if others can read it)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:
        pass  # SQLite reports a path it cannot open in its own words


def _relax_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # A session setting, once per pooled connection: no round trip per commit.
        dbapi_conn.autocommit = True
        cur = dbapi_conn.cursor()
        cur.execute("SET synchronous_commit TO off")
        cur.close()
        dbapi_conn.autocommit = False


def _configure_sqlite(engine: Engine, *, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros, so a withdrawn item's key is really gone.
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds SQLite's write lock from its first statement.

    Commits on normal exit, rolls back on an exception.
    """
    with engine.connect() as conn:
        if is_sqlite(engine):
            conn = conn.execution_options(**{_IMMEDIATE: True})
        with conn.begin():
            yield conn


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in one read transaction, so what it reads is one consistent snapshot."""
    with engine.connect() as conn:
        if not is_sqlite(engine):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn
