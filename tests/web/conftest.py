"""Fixtures for the web app's browser tests: one Chromium per session, and a served text
community per database kind per module (see ``tests.kit.browser``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from commonweal.ledger.keys import SigningKey
from tests.kit.browser import Watched, chromium, served
from tests.kit.communities import community
from tests.kit.databases import Databases

T = TypeVar("T")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def off_the_browser_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in a thread of its own: Playwright's sync API keeps an event loop running
    in the test thread, and the embedded client (a hub in-process) starts one of its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def build_text_community(directory: Path, database: str) -> dict[str, SigningKey]:
    client, keys = community(directory, database, kind="text-classification")
    client.close()
    return keys


class Site:
    """A served community: its directory, URL and members' keys."""

    def __init__(self, directory: Path, url: str, keys: dict[str, SigningKey]) -> None:
        self.directory = directory
        self.url = url
        self.keys = keys


@pytest.fixture(scope="module")
def site(module_databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A text community (Ada founder; Grace, Alan, Tim members; 300 accepted items), served."""
    directory = tmp_path_factory.mktemp("site") / "hub"
    keys = off_the_browser_thread(build_text_community, directory, module_databases.new())
    with served(directory) as url:
        yield Site(directory, url, keys)


@pytest.fixture
def page(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield Watched(context.new_page())
    finally:
        context.close()
