"""Decide, in a real browser on a served hub (SQLite and PostgreSQL): members delegate,
propose, vote (basic, ranked by keyboard, secret then revealed), see every member's voting
power explained, and the hub carries out what passed. Votes last seconds here (a charter
with short periods), so the tests wait out real time: the served hub runs on the wall
clock, as it does for a community."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from commonweal.client import HubClient
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from tests.kit.browser import Watched, served, sign_in
from tests.kit.communities import community
from tests.kit.databases import Databases
from tests.web.conftest import Site, off_the_browser_thread

VOTING = 40  # seconds a vote lasts (and a secret vote's reveal period)
GOVERNANCE = {
    "voting_period_seconds": VOTING,
    "reveal_period_seconds": VOTING,
    "timelock_seconds": 0,
}


def build(directory: Path, database: str) -> dict[str, SigningKey]:
    client, keys = community(
        directory,
        database,
        kind="text-classification",
        items=[],
        charter_extra={"governance": GOVERNANCE},
    )
    client.close()
    return keys


@pytest.fixture(scope="module")
def gov(module_databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A community of Ada (founder), Grace, Alan and Tim whose votes last seconds."""
    directory = tmp_path_factory.mktemp("decide") / "hub"
    keys = off_the_browser_thread(build, directory, module_databases.new())
    with served(directory) as url:
        yield Site(directory, url, keys)


@contextmanager
def as_member(browser: Any, site: Site, name: str, path: str) -> Iterator[Watched]:
    """A browser of its own for member ``name``, signed in, on ``path``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = Watched(context.new_page())
        page.page.goto(site.url + "/decide")
        sign_in(page.page, site.keys[name], name)
        open_page(page, site.url + path)
        yield page
    finally:
        context.close()


def open_page(page: Watched, url: str) -> None:
    page.page.goto(url)
    page.page.wait_for_selector("body[data-decide-ready]")


def wait_for(page: Watched, url: str, selector: str, seconds: float) -> None:
    """Reload ``url`` until ``selector`` is on it (the served hub moves on real time)."""
    deadline = time.monotonic() + seconds
    while True:
        open_page(page, url)
        if page.page.query_selector(selector) is not None:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} did not appear on {url} within {seconds} s")
        page.page.wait_for_timeout(1000)


def propose(site: Site, name: str, body: dict[str, Any]) -> int:
    def send() -> int:
        with HubClient(site.url) as c:
            res = c.submit([sign_event(site.keys[name], "proposal.create", body, hub=c.origin)])
            return int(res["entries"][0]["index"])

    return off_the_browser_thread(send)


def proposal(site: Site, number: int) -> dict[str, Any]:
    return httpx.get(f"{site.url}/api/v1/proposals/{number}").json()  # type: ignore[no-any-return]


def power_row(page: Watched, site: Site, name: str) -> dict[str, str]:
    row = page.page.locator(f"table.power tr[data-member='{site.keys[name].key_id}']")
    cells = row.locator("td").all_inner_texts()
    return {"weight": cells[1], "power": cells[2], "why": cells[3]}


def test_delegate_propose_vote_and_the_hub_carries_it_out(browser: Any, gov: Site) -> None:
    # Tim delegates his vote to Grace, and Grace sees it.
    with as_member(browser, gov, "Tim", "/decide") as tim:
        tim.page.select_option("#delegate-to", gov.keys["Grace"].key_id)
        tim.page.click("#delegate-form button[type=submit]")
        tim.page.wait_for_selector("#my-delegate:has-text('You delegate your vote to Grace')")
        tim.check("decide-delegated")
    with as_member(browser, gov, "Grace", "/decide") as grace:
        grace.page.wait_for_selector("#to-me:has-text('Tim')")

    # Alan proposes a charter amendment with the form, checks it, and signs it.
    with as_member(browser, gov, "Alan", "/decide/new") as alan:
        alan.page.fill("#p-title", "A higher quorum")
        alan.page.fill("#p-description", "More of us should take part in each vote.")
        alan.page.select_option("#p-type", "charter.amend")
        alan.page.fill("#c-quorum", "30")
        alan.page.click("#preview")
        alan.page.wait_for_selector("#preview-out table.diff")
        assert "governance.quorum_pct" in alan.page.inner_text("#preview-out")
        assert "A vote counts only if 30% of the voting power takes part." in alan.page.inner_text(
            "#preview-out"
        )
        alan.check("decide-new-amendment")
        alan.page.click("#propose button[type=submit]")
        alan.page.wait_for_url(re.compile(r"/decide/\d+$"))
        number = int(alan.page.url.rsplit("/", 1)[1])
    p = proposal(gov, number)
    assert p["title"] == "A higher quorum" and p["actions"][0]["type"] == "charter.amend"

    # Grace votes for it: her line carries Tim's power too; Tim's is 0, delegated to her.
    with as_member(browser, gov, "Grace", f"/decide/{number}") as grace:
        grace.page.wait_for_selector("#my-power")
        grace.page.check("#choice-for", force=True)
        grace.page.click("#ballot button[type=submit]")
        grace.page.wait_for_selector("#my-vote-state:has-text('Your vote is counted')")
        assert "Your voting power on this proposal is 2" in grace.page.inner_text("#my-power")
        assert grace.page.inner_text("td[data-choice=for]") == "2"
        assert power_row(grace, gov, "Grace")["weight"] == "2"
        assert "receives delegations from Tim" in power_row(grace, gov, "Grace")["why"]
        tim_row = power_row(grace, gov, "Tim")
        assert tim_row["weight"] == "0" and tim_row["power"] == "1"
        assert "delegated to Grace: 0 here, their power counts with Grace's vote" in tim_row["why"]
        assert "amend the charter" in grace.page.inner_text("#h-what + ul").lower()
        grace.check("decide-proposal-voted")

    # Tim sees why his power is 0, and takes his delegation back (for later proposals).
    with as_member(browser, gov, "Tim", f"/decide/{number}") as tim:
        tim.page.wait_for_selector("#my-power")
        assert "Your voting power on this proposal is 0" in tim.page.inner_text("#my-power")
        assert "delegated to Grace" in tim.page.inner_text("ul.why")
        tim.check("decide-proposal-delegator")
        open_page(tim, gov.url + "/decide")
        tim.page.wait_for_selector("#undelegate")
        tim.page.click("#undelegate")
        tim.page.wait_for_selector("#my-delegate:has-text('You do not delegate')")
        tim.check("decide-undelegated")
        # The hub executes it once voting is over (timelock 0; its executor runs every 5 s).
        wait_for(tim, f"{gov.url}/decide/{number}", "#executed", VOTING + 40)
        assert "carried out" in tim.page.inner_text("#phase")
        tim.check("decide-executed")
    charter = httpx.get(gov.url + "/api/v1/community").json()["charter"]
    assert charter["governance"]["quorum_pct"] == 30


def test_ranked_choice_by_keyboard(browser: Any, gov: Site) -> None:
    number = propose(
        gov,
        "Ada",
        {
            "title": "Where should the next meetup be?",
            "actions": [{"type": "signal", "text": "Pick a town"}],
            "choice": "ranked-choice",
            "options": ["Leeds", "York", "Hull"],
        },
    )
    with as_member(browser, gov, "Alan", f"/decide/{number}") as alan:
        hull = alan.page.locator("#ranking li[data-option=Hull]")
        hull.focus()
        alan.page.keyboard.press("ArrowUp")
        alan.page.keyboard.press("ArrowUp")
        leeds = alan.page.locator("#ranking li[data-option=Leeds]")
        leeds.locator("button.down").click()  # the buttons move it too
        order = alan.page.eval_on_selector_all("#ranking li", "ls => ls.map(l => l.dataset.option)")
        assert order == ["Hull", "York", "Leeds"]
        assert alan.page.inner_text("#rank-status") == "Leeds is now number 3 of 3"
        alan.check("decide-ranked-ordered")
        alan.page.click("#ballot button[type=submit]")
        alan.page.wait_for_selector("#my-vote-state")
        alan.page.wait_for_selector("body[data-tally-drawn]")
        alan.check("decide-ranked-voted")
    assert proposal(gov, number)["tally"]["winner"] == "Hull"


def seal(page: Watched, choice: str) -> None:
    page.page.check(f"#choice-{choice}", force=True)
    page.page.click("#ballot button[type=submit]")
    page.page.wait_for_selector("#my-vote-state:has-text('sealed vote is recorded')")


def reveal(page: Watched) -> None:
    page.page.click("#reveal")
    page.page.wait_for_selector("#flash:has-text('revealed')")
    page.page.wait_for_selector("#my-vote-state:has-text('Your vote is counted')")


def test_a_secret_ballot_is_sealed_then_revealed_in_the_browser(browser: Any, gov: Site) -> None:
    with as_member(browser, gov, "Ada", "/decide/new") as ada:
        ada.page.fill("#p-title", "Plant trees by the canal")
        ada.page.fill("#a-signal-text", "We plant twelve trees by the canal in spring.")
        ada.page.check("#p-secret", force=True)
        ada.page.click("#propose button[type=submit]")
        ada.page.wait_for_url(re.compile(r"/decide/\d+$"))
        number = int(ada.page.url.rsplit("/", 1)[1])
        url = f"{gov.url}/decide/{number}"
        assert proposal(gov, number)["secret"] is True
        open_page(ada, url)
        seal(ada, "for")
        with as_member(browser, gov, "Grace", f"/decide/{number}") as grace:
            seal(grace, "for")
            assert "2 sealed votes" in grace.page.inner_text("#h-results ~ p")
            assert proposal(gov, number)["tally"] is None  # hidden while voting
            grace.check("decide-secret-sealed")
            # Once voting ends: a reminder with the deadline, a Reveal button, and the bar.
            wait_for(grace, url, "#reveal-box:not([hidden])", VOTING + 15)
            assert "You chose: for." in grace.page.inner_text("#kept-choice")
            assert "before" in grace.page.inner_text("#reveal-box")
            grace.page.wait_for_selector("#waiting:has-text('Reveal your secret ballot')")
            grace.check("decide-secret-reveal")
            reveal(grace)
            assert proposal(gov, number)["tally"]["counts"]["for"] == 1
            grace.check("decide-secret-revealed")
        open_page(ada, url)
        reveal(ada)
        assert proposal(gov, number)["tally"]["counts"]["for"] == 2
        wait_for(ada, url, "#executed", VOTING + 40)
        ada.check("decide-secret-executed")


def test_a_title_with_a_script_renders_inert(browser: Any, gov: Site) -> None:
    title = "<script>alert(1)</script>"
    number = propose(
        gov,
        "Grace",
        {
            "title": title,
            "description": '<img src=x onerror="alert(2)">',
            "actions": [{"type": "signal", "text": "<b>bold?</b>"}],
        },
    )
    with as_member(browser, gov, "Alan", f"/decide/{number}") as alan:
        dialogs: list[str] = []
        alan.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        open_page(alan, f"{gov.url}/decide/{number}")
        assert title in alan.page.inner_text("h1")
        assert alan.page.query_selector("main img") is None
        assert "<b>bold?</b>" in alan.page.inner_text("#h-what + ul")
        alan.check("decide-inert-title")
        open_page(alan, gov.url + "/decide")
        assert title in alan.page.inner_text(f"li[data-proposal='{number}'] h3")
        alan.check("decide-list")
        assert dialogs == []
