"""The databases storage tests run on: SQLite always, PostgreSQL when
``COMMONWEAL_TEST_DATABASE_URL`` names a server (each hub in a schema of its own, dropped
afterwards). ``conftest.py`` builds its ``database_url`` fixtures from ``database``."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from commonweal.store.database import open_engine
from commonweal.store.schema import metadata

__all__ = ["DATABASES", "PG_URL", "Databases", "copied_hub", "database", "hub_database"]

PG_URL = os.environ.get("COMMONWEAL_TEST_DATABASE_URL")
DATABASES = ("sqlite", "postgresql")

_SCHEMA_OPTION = "options=-csearch_path%3D"


@contextmanager
def _schema() -> Iterator[str]:
    """A fresh PostgreSQL schema's URL; the schema is dropped afterwards."""
    if not PG_URL:
        pytest.skip("COMMONWEAL_TEST_DATABASE_URL is not set")
    schema = f"cw_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}{_SCHEMA_OPTION}{schema}"
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """A database URL of ``kind`` (``sqlite``: a file in ``directory``; ``postgresql``: a
    schema of its own, or a skip when no server is configured)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'hub.db'}"
    elif kind == "postgresql":
        with _schema() as url:
            yield url
    else:
        raise ValueError(f"no test database of kind {kind!r}")


class Databases:
    """New databases of one kind, each removed when ``stack`` closes: what conftest's
    database fixtures hand out (a module that builds two communities needs two)."""

    def __init__(self, kind: str, stack: ExitStack, directories: pytest.TempPathFactory) -> None:
        self.kind = kind
        self._stack = stack
        self._directories = directories

    def new(self) -> str:
        """A fresh, empty database's URL."""
        return self._stack.enter_context(database(self.kind, self._directories.mktemp("db")))


def _schema_of(url: str) -> str:
    found = re.search(re.escape(_SCHEMA_OPTION) + r"(\w+)", url)
    assert found, f"{url} names no schema of its own"
    return found.group(1)


_CONFIG_DATABASE = re.compile(r'^database = "(.*)"$', re.MULTILINE)


def hub_database(directory: Path) -> str:
    """The database URL a hub directory's ``hub.toml`` names."""
    found = _CONFIG_DATABASE.search((directory / "hub.toml").read_text())
    assert found, f"{directory}/hub.toml names no database"
    return found.group(1)


def _name_database(config: Path, url: str) -> None:
    config.write_text(_CONFIG_DATABASE.sub(lambda _: f'database = "{url}"', config.read_text()))


@contextmanager
def copied_hub(source: Path, target: Path) -> Iterator[Path]:
    """A copy of the (closed) hub in ``source`` at ``target``, database included: a SQLite
    file is copied into ``target``; a PostgreSQL schema is copied table by table into a
    schema of its own, dropped afterwards. Lets a module build an expensive community once
    and give each test that appends to it a copy."""
    url = hub_database(source)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("hub.db", "hub.db-*"))
    config = target / "hub.toml"
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        path = Path(make_url(url).database or "")
        path = path if path.is_absolute() else source / path
        with (
            closing(sqlite3.connect(path)) as src,
            closing(sqlite3.connect(target / "hub.db")) as dst,
        ):
            src.backup(dst)
        _name_database(config, "sqlite:///hub.db")
        yield target
        return
    with _schema() as copy_url:
        old, new = _schema_of(url), _schema_of(copy_url)
        engine = open_engine(copy_url)
        try:
            with engine.begin() as conn:
                metadata.create_all(conn)
                for table in metadata.sorted_tables:
                    name = table.name
                    conn.execute(
                        text(f'INSERT INTO "{new}"."{name}" SELECT * FROM "{old}"."{name}"')
                    )
        finally:
            engine.dispose()
        _name_database(config, copy_url)
        yield target
