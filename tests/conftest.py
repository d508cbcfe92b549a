"""Shared fixtures. Every test that touches storage takes a database fixture, which runs it
on SQLite and, when COMMONWEAL_TEST_DATABASE_URL is set, on PostgreSQL too (each hub in a
schema of its own, dropped afterwards):

- ``database_url``: a fresh database for one test;
- ``module_databases``: a maker of databases (``module_databases.new()``) that live as long
  as the module, for the communities a module builds once; its tests then run once per
  database kind, grouped so that each community is built once per kind.

Both come from one factory, ``database_fixture``, over ``tests.kit.database``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from commonweal.hub import Hub
from commonweal.ledger.keys import SigningKey
from tests.kit import DATABASES, Databases, make_hub

# Files that take minutes: live federations, votes waited out in a browser, the demo.
# pytest-xdist (``--dist loadfile``) hands out whole files in collection order, so these
# go first; started last, one of them would run alone at the end while the other workers
# idle. The rest keep their order. (Measured with ``--durations``; longest first.)
LONGEST_FIRST = (
    "tests/test_federated_hub.py",
    "tests/web/test_decide.py",
    "tests/test_cli.py",
    "tests/test_limits.py",
    "tests/test_cli_files.py",
    "tests/web/test_journeys.py",
    "tests/test_cli_model.py",
    "tests/test_federated_flower.py",
    "tests/test_openapi_conformance.py",
    "tests/test_valuation.py",
    "tests/test_crash.py",
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # trylast: after pytest grouped each file's tests by their module fixtures; the sort
    # is stable, so that grouping holds within every file.
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session", autouse=True)
def _no_database_override() -> Iterator[None]:
    # A developer's own COMMONWEAL_DATABASE_URL would send every hub the tests open (module
    # fixtures included, which run before function-scoped ones) to one database.
    with pytest.MonkeyPatch.context() as m:
        m.delenv("COMMONWEAL_DATABASE_URL", raising=False)
        yield


@pytest.fixture(autouse=True)
def _config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The verifier's remembered checkpoints must not leak between tests or into ~/.config.
    monkeypatch.setenv("COMMONWEAL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("COMMONWEAL_DATABASE_URL", raising=False)


def database_fixture(scope: str) -> Callable[..., Any]:
    """A fixture of ``scope``, parametrised over ``DATABASES``, that yields a ``Databases``
    maker of each kind (PostgreSQL skips when no server is configured); what it made is
    removed when the scope ends."""

    @pytest.fixture(scope=scope, params=DATABASES)  # type: ignore[call-overload]
    def databases(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Databases]:
        with ExitStack() as stack:
            yield Databases(request.param, stack, tmp_path_factory)

    return databases  # type: ignore[no-any-return]


databases = database_fixture("function")
module_databases = database_fixture("module")


@pytest.fixture
def database_url(databases: Databases) -> str:
    """One fresh database for this test, on each kind."""
    return databases.new()


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[tuple[Hub, SigningKey]]:
    h, founder = make_hub(tmp_path / "hub", database_url)
    try:
        yield h, founder
    finally:
        h.close()
