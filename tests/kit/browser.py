"""A real browser for the web app's tests: Debian's Chromium driven by Playwright, on a
real ``commonweal serve``.

- ``chromium()``: the browser (Playwright's own download is not reachable here, so it is
  ``/usr/bin/chromium``; ``.ci/run`` installs it). Missing, it skips outside CI and fails
  in CI, so a CI run cannot pass without the browser tests.
- ``served(hub_dir)``: the hub served on a free port, as a base URL.
- ``sign_in(page, key)``: put a member's key into the browser's IndexedDB, as importing
  their key file on the join page does.
- ``Watched``: a page whose console errors are collected; ``check`` saves a screenshot as a
  test artifact, asserts no console errors and runs axe-core in the page (no serious or
  critical violations).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from commonweal.ledger.keys import SigningKey
from tests.kit.commands import free_port, start_server

__all__ = ["ARTIFACTS", "CHROMIUM", "Watched", "chromium", "served", "sign_in"]

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("COMMONWEAL_TEST_ARTIFACTS", ROOT / "test-artifacts" / "web"))
AXE = (ROOT / "tests" / "vendor" / "axe.min.js").read_text()


@contextmanager
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def served(hub_dir: Path) -> Iterator[str]:
    port = free_port()
    proc = start_server(hub_dir, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            # A graceful stop waits for a job the hub's schedule started (training a
            # model on a shared, busy machine can take a while).
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def sign_in(page: Any, key: SigningKey, name: str | None = None) -> None:
    """Store ``key`` in the page origin's IndexedDB (the page must be on the hub)."""
    seed = base64.b64encode(key.seed).decode()
    page.evaluate(
        """async ([seed, name]) => {
            const keys = await import("/static/js/keys.js");
            const bytes = Uint8Array.from(atob(seed), (c) => c.charCodeAt(0));
            await keys.storeKey(await keys.fromSeed(bytes, name));
        }""",
        [seed, name],
    )


class Watched:
    """A page with its console errors and uncaught exceptions collected."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def check(self, name: str, *, allow_errors: str | None = None) -> None:
        """Screenshot as ``test-artifacts/web/NAME.png``; no console errors (except those
        matching ``allow_errors``, e.g. a 4xx the page asked for on purpose); axe-core finds
        nothing serious or critical."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        errors = [e for e in self.errors if not (allow_errors and re.search(allow_errors, e))]
        assert errors == [], f"{name}: console errors {errors}"
        violations = axe(self.page)
        assert violations == [], f"{name}: accessibility {json.dumps(violations, indent=1)}"


def axe(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # evaluate() runs through the DevTools protocol, which the page's CSP does not
        # govern; the app itself never loads axe.
        page.evaluate(AXE + "\n;0")
    found: list[dict[str, Any]] = page.evaluate(
        """() => axe.run(document, {resultTypes: ["violations"]}).then((r) =>
            r.violations
              .filter((v) => v.impact === "serious" || v.impact === "critical")
              .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                            nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" "))})))"""
    )
    return found
