"""Shared fixtures. Every test that touches storage takes ``database_url``, which runs it
on SQLite and, when COMMONWEAL_TEST_DATABASE_URL is set, on PostgreSQL too (each test in
a schema of its own, dropped afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from commonweal.community.charter import Charter
from commonweal.hub import Hub
from commonweal.ledger.keys import SigningKey

PG_URL = os.environ.get("COMMONWEAL_TEST_DATABASE_URL")


@pytest.fixture(autouse=True)
def _config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The verifier's remembered checkpoints must not leak between tests or into ~/.config.
    monkeypatch.setenv("COMMONWEAL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("COMMONWEAL_DATABASE_URL", raising=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    if not PG_URL:
        pytest.skip("COMMONWEAL_TEST_DATABASE_URL is not set")
    schema = f"cw_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def make_hub(
    directory: Path, database_url: str, *, join_policy: str = "open", name: str = "Test Co-op"
) -> tuple[Hub, SigningKey]:
    charter = Charter(name=name, join_policy=join_policy)  # type: ignore[arg-type]
    return Hub.init(directory, charter=charter, founder_name="Ada", database=database_url)


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[tuple[Hub, SigningKey]]:
    h, founder = make_hub(tmp_path / "hub", database_url)
    try:
        yield h, founder
    finally:
        h.close()
