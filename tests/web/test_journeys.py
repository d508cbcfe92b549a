"""End-to-end journeys on a real ``commonweal serve`` (SQLite and PostgreSQL), each member in
a browser of their own, every write signed by the key their browser made.

1. Newcomers: the founder makes two invites in her browser; Lin and Sam join with them
   (WebCrypto keys kept in IndexedDB); Lin drops a CSV and sees its screening report; Sam
   reviews it with the keyboard alone; the founder trains with the operator command.
2. The community decides: Sam delegates his vote to Lin; Lin withdraws an item on My page,
   proposes that the hub train again, and votes for it with Sam's power too; the hub's
   executor carries it out, its scheduler trains; the new version's page and lineage show
   the item gone; anyone verifies Lin's withdrawal in the browser on /ledger/N.

After each journey, ``commonweal ledger verify`` passes against the served URL, and the log's
entries for each step were signed by the key id the member's page made."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from commonweal.community.charter import validate_charter
from commonweal.hub import Hub
from commonweal.ledger.keys import SigningKey
from tests.kit.browser import Watched, served, sign_in
from tests.kit.commands import cwj
from tests.kit.communities import text_items
from tests.kit.databases import Databases
from tests.web.conftest import Site, off_the_browser_thread
from tests.web.test_contribute import csv_file, entries
from tests.web.test_decide import open_page, wait_for
from tests.web.test_join import join_in, key_id_in_browser

VOTING = 20  # seconds a vote lasts: the journey waits it out on the wall clock
ITEMS = 24  # Lin's file: enough for a small model with a held-out set

CHARTER = {
    "name": "Journey Co-op",
    "join_policy": "invite",
    "task": {"kind": "text-classification", "labels": ["river", "market"]},
    "review": {"reviews_needed": 1, "newcomer_reviews_needed": 1, "consensus": "majority"},
    "training": {
        "shards": 2,
        "min_rows_per_shard": 5,
        "min_rows_per_class_per_shard": 2,
        "evaluation": {"holdout_pct": 20, "min_items": 4, "min_per_class": 2},
    },
    # Nothing on the hub's own timer: the founder trains, then a vote orders it.
    "schedule": {
        "train_after_items": 0,
        "train_every_seconds": 0,
        "value_new_versions": False,
        "close_epoch_after_valuation": False,
        "payout_every_seconds": 0,
        "scan_every_seconds": 0,
    },
    "governance": {"voting_period_seconds": VOTING, "timelock_seconds": 0},
}


def build(directory: Path, database: str) -> dict[str, SigningKey]:
    hub, ada = Hub.init(
        directory, charter=validate_charter(CHARTER), founder_name="Ada", database=database
    )
    hub.close()
    return {"Ada": ada}


@pytest.fixture(scope="module")
def coop(module_databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A community of its founder, Ada, alone, that joins by invitation; served."""
    directory = tmp_path_factory.mktemp("journey") / "hub"
    keys = off_the_browser_thread(build, directory, module_databases.new())
    with served(directory) as url:
        yield Site(directory, url, keys)


class Person:
    """A member in a browser of their own (its IndexedDB holds their key)."""

    def __init__(self, browser: Any, name: str) -> None:
        self.name = name
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        self.watched = Watched(self.context.new_page())
        self.key_id = ""

    @property
    def page(self) -> Any:
        return self.watched.page

    def check(self, step: str, *, allow_errors: str | None = None) -> None:
        """``Watched.check``, and nothing on the page is wider than the window."""
        self.watched.check(f"journey-{step}", allow_errors=allow_errors)
        assert not overflows(self.page), f"{step}: wider than the page: {overflows(self.page)}"


def overflows(page: Any) -> list[str]:
    """Elements in the page's main column that reach past its right edge (a table pushed
    wider than the page by a long unbroken line, say)."""
    found: list[str] = page.evaluate(
        """() => {
            const main = document.querySelector("main");
            const edge = main.getBoundingClientRect().right
              - parseFloat(getComputedStyle(main).paddingRight) + 1;
            return [...main.querySelectorAll("*")]
              .filter((e) => e.getBoundingClientRect().right > edge)
              .slice(0, 3).map((e) => e.tagName + (e.id ? "#" + e.id : ""));
        }"""
    )
    return found


@pytest.fixture(scope="module")
def people(coop: Site, browser: Any) -> Iterator[dict[str, Person]]:
    """Ada, Lin and Sam's browsers, kept from one journey to the next."""
    found: dict[str, Person] = {}
    try:
        yield found
    finally:
        for person in found.values():
            person.context.close()


def api(site: Site, path: str) -> Any:
    r = httpx.get(site.url + "/api/v1" + path, timeout=30)
    r.raise_for_status()
    return r.json()


def ledger_verifies(site: Site) -> dict[str, Any]:
    """``commonweal ledger verify`` against the served hub, as any member runs it."""
    report: dict[str, Any] = cwj("ledger", "verify", "--hub", site.url)
    assert report["ok"], report
    assert "projections equal the replayed state" in report["checks"]
    return report


def signed_by(site: Site, start: int) -> list[tuple[str, str]]:
    """(kind, actor) of each log entry from ``start`` on, signatures checked again."""
    return [(e["event"]["kind"], e["event"]["actor"]) for e in entries(site.url, start)]


def power_why(page: Any, key_id: str) -> str:
    """The explanation of a member's voting power in the proposal page's table."""
    return str(page.locator(f"table.power tr[data-member='{key_id}'] td").nth(3).inner_text())


def size(site: Site) -> int:
    return int(api(site, "/ledger/entries?start=0&end=0")["size"])


# -- journey 1 ------------------------------------------------------------------------------


def lins_file() -> tuple[list[list[str]], int]:
    """Lin's CSV: ``ITEMS`` distinct texts, one with an email address in it, and one
    repeated word for word (refused as a duplicate). Returns the rows and how many items
    the hub keeps."""
    rows = [["text", "label"]]
    rows += [[i["text"], i["label"]] for i in text_items(ITEMS, seed=11)]
    rows[3][0] += " (write to lin@example.org about it)"
    rows.append(list(rows[5]))
    return rows, ITEMS


def test_newcomers_join_contribute_review_and_the_founder_trains(
    coop: Site, browser: Any, people: dict[str, Person]
) -> None:
    start = size(coop)
    # The founder makes two invites in her browser.
    ada = people["Ada"] = Person(browser, "Ada")
    ada.key_id = coop.keys["Ada"].key_id
    ada.page.goto(coop.url + "/join")
    sign_in(ada.page, coop.keys["Ada"], "Ada")
    ada.page.reload()
    ada.page.wait_for_selector("#invite-card:not([hidden])")
    links = []
    for _ in range(2):
        ada.page.click("#invite-create")
        ada.page.wait_for_function(
            "(seen) => { const l = document.getElementById('invite-link');"
            " return l && l.value && !seen.includes(l.value); }",
            arg=links,
        )
        links.append(ada.page.input_value("#invite-link"))
    assert all(link.startswith(coop.url + "/join?invite=") for link in links)
    ada.check("1-founder-invites")

    # Lin and Sam join, each in a browser of their own, and keep a backup of their key.
    for name, link in zip(("Lin", "Sam"), links, strict=True):
        person = people[name] = Person(browser, name)
        person.key_id = join_in(person.page, link, name)
        assert key_id_in_browser(person.page) == person.key_id
        assert len(person.key_id) == 64
        person.check(f"1-{name.lower()}-backup")
        with person.page.expect_download() as dl:
            person.page.click("#backup-download")
        assert dl.value.suggested_filename.endswith(".key")
        person.page.check("#backup-saved")
        person.page.click("#backup-continue")
        person.page.wait_for_selector("#welcome-active:not([hidden])")
        person.check(f"1-{name.lower()}-welcome")
    lin, sam = people["Lin"], people["Sam"]
    members = {m["name"]: m for m in api(coop, "/members")["members"]}
    assert members["Lin"]["key"] == lin.key_id and members["Sam"]["key"] == sam.key_id

    # Lin drops her file and reads the screening report.
    p = lin.page
    p.goto(coop.url + "/contribute")
    p.wait_for_selector("body[data-contribute-ready]")
    p.wait_for_selector("#identity a[href='/me']")
    lin.check("1-lin-contribute")
    rows, kept = lins_file()
    p.set_input_files("#file", files=[csv_file("lin.csv", rows)])
    p.wait_for_selector("#checked.ok")
    assert f"{ITEMS + 1} items ready to send" in p.inner_text("#checked")
    p.click("#send")
    p.wait_for_selector("#report:not([hidden])")
    counts = p.inner_text("#counts")
    assert f"{ITEMS + 1} sent" in counts and f"{kept} in review" in counts, counts
    assert "1 duplicate refused" in counts and "1 with personal data redacted" in counts
    assert "exact duplicate of item" in p.inner_text("#report-rows")
    lin.check("1-lin-report")

    # Sam reviews every item with the keyboard: accepts all but one, which he rejects.
    p = sam.page
    p.goto(coop.url + "/review")
    p.wait_for_selector("body[data-review-item]")
    assert f"{kept} items" in p.inner_text("#left")
    sam.check("1-sam-review")
    verdicts: dict[str, str] = {}
    while p.query_selector(".review-empty") is None:
        item = p.get_attribute("body", "data-review-item")
        verdict = "reject" if not verdicts else "accept"
        p.keyboard.press(verdict[0])
        verdicts[item] = verdict
        p.wait_for_function(
            "(before) => document.body.dataset.reviewItem !== before"
            " || document.querySelector('.review-empty')",
            arg=item,
        )
    assert len(verdicts) == kept
    assert f"{kept - 1} accepted, 1 rejected" in p.inner_text("#session")
    sam.check("1-sam-reviewed")
    accepted = api(coop, f"/contributions?member={lin.key_id}&status=accepted")["contributions"]
    assert len(accepted) == kept - 1

    # The founder trains, with the operator command on the hub's machine.
    trained = cwj("train", "--hub", coop.directory)
    assert trained["version"] == 1, trained
    p = ada.page
    # The server sees what another process appended within a second (FRESH_SECONDS): a
    # page asked for at once may still show no version, so look again until it does.
    for _ in range(15):
        p.goto(coop.url + "/model")
        if p.query_selector("#versions-chart") is not None:
            break
        p.wait_for_timeout(1000)
    p.wait_for_selector("#versions-chart[data-drawn]")
    assert "Version 1, the latest" in p.inner_text("#h-latest")
    ada.check("1-model-v1")

    ledger_verifies(coop)
    steps = signed_by(coop, start)
    assert [a for k, a in steps if k == "invite.create"] == [ada.key_id] * 2
    joins = {a for k, a in steps if k == "member.join"}
    assert joins == {lin.key_id, sam.key_id}
    assert [a for k, a in steps if k == "contribution.submit"] == [lin.key_id]
    assert [a for k, a in steps if k == "review.submit"] == [sam.key_id] * kept


# -- journey 2 ------------------------------------------------------------------------------


def test_a_vote_retrains_without_a_withdrawn_item_and_an_entry_verifies(
    coop: Site, browser: Any, people: dict[str, Person]
) -> None:
    if set(people) != {"Ada", "Lin", "Sam"}:
        pytest.skip("the first journey did not get its members in")
    start = size(coop)
    lin, sam = people["Lin"], people["Sam"]

    # Sam delegates his vote to Lin.
    open_page(sam.watched, coop.url + "/decide")
    sam.page.select_option("#delegate-to", lin.key_id)
    sam.page.click("#delegate-form button[type=submit]")
    sam.page.wait_for_selector("#my-delegate:has-text('You delegate your vote to Lin')")
    sam.check("2-sam-delegated")

    # Lin withdraws one of the items version 1 was trained on.
    trained_on = set(api(coop, "/models/1/lineage")["items"])
    p = lin.page
    p.goto(coop.url + "/me")
    p.wait_for_selector("body[data-me-ready]")
    mine = [r.get_attribute("data-item") for r in p.query_selector_all("#my-items tbody tr")]
    gone = next(i for i in mine if i in trained_on)
    lin.check("2-lin-me")
    p.click(f"button[data-withdraw='{gone}']")
    p.wait_for_selector("#withdraw-dialog[open]")
    assert "the next model version unlearns it" in p.inner_text("#withdraw-dialog")
    lin.check("2-lin-withdraw-dialog")
    p.click("#withdraw-confirm")
    p.wait_for_selector("#flash.ok:has-text('Withdrew 1 item')")
    p.wait_for_selector(f"#my-items tr[data-item='{gone}'] td.status:has-text('withdrawn')")
    lin.check("2-lin-withdrawn")

    # Lin proposes that the hub train again, and votes for it.
    open_page(lin.watched, coop.url + "/decide/new")
    p.fill("#p-title", "Train a version without my withdrawn item")
    p.select_option("#p-type", "hub.run")
    p.select_option("#a-job", "train")
    lin.check("2-lin-propose")
    p.click("#propose button[type=submit]")
    p.wait_for_url(re.compile(r"/decide/\d+$"))
    number = int(p.url.rsplit("/", 1)[1])
    proposal_url = f"{coop.url}/decide/{number}"
    open_page(lin.watched, proposal_url)
    p.wait_for_selector("#my-power")
    p.check("#choice-for", force=True)
    p.click("#ballot button[type=submit]")
    p.wait_for_selector("#my-vote-state:has-text('Your vote is counted')")
    assert "Your voting power on this proposal is 2" in p.inner_text("#my-power")
    assert "receives delegations from Sam" in power_why(lin.page, lin.key_id)
    lin.check("2-lin-voted")

    # Sam sees why his power is 0.
    open_page(sam.watched, proposal_url)
    sam.page.wait_for_selector("#my-power")
    assert "Your voting power on this proposal is 0" in sam.page.inner_text("#my-power")
    assert "delegated to Lin" in sam.page.inner_text("ul.why")
    assert "delegated to Lin" in power_why(sam.page, sam.key_id)
    sam.check("2-sam-power")

    # Once voting is over the hub carries it out: its executor places the order, and its
    # scheduler trains version 2, which the proposal's page then links to.
    wait_for(lin.watched, proposal_url, "#executed", VOTING + 30)
    assert "carried out" in p.inner_text("#phase")
    assert "Passes: 2 for, 0 against" in p.inner_text("#h-results ~ p")
    wait_for(lin.watched, proposal_url, "#job-train[data-done]", 60)
    assert "The hub ran the order to train a new model version: version 2" in p.inner_text(
        "#job-train"
    )
    lin.check("2-executed")

    # The new version's page and lineage: the item is gone, and was Lin's withdrawal.
    p.click("#job-train a[href='/model/2']")
    p.wait_for_url(f"{coop.url}/model/2")
    text = p.inner_text("main")
    assert f"{len(trained_on) - 1} items from 1 member." in text, text
    assert "1 removed, of which 1 withdrawn" in text, text
    row = p.locator(f"#per-member tr[data-member='{lin.key_id}'] td")
    assert row.nth(2).inner_text() == "1"
    p.click("summary:has-text('Items removed')")
    removed = p.locator("details tbody tr")
    assert removed.count() == 1 and "withdrawn" in removed.inner_text()
    lin.check("2-model-v2")
    lineage = api(coop, "/models/2/lineage")
    assert gone not in lineage["items"] and gone in trained_on
    assert api(coop, f"/contributions/{gone}")["status"] == "withdrawn"

    # Anyone, signed in or not, verifies Lin's withdrawal in their browser.
    steps = list(enumerate(entries(coop.url, start), start))
    index = next(i for i, e in steps if e["event"]["kind"] == "contribution.withdraw")
    anyone = Person(browser, "anyone")
    try:
        p = anyone.page
        p.goto(f"{coop.url}/ledger/{index}")
        assert "Lin withdrew 1 item" in p.inner_text("main")
        p.click("#verify")
        p.wait_for_selector("#verify-verdict")
        assert p.inner_text("#verify-verdict").startswith("✓ Verified")
        assert lin.key_id in p.inner_text("#actor-key")
        done = p.eval_on_selector_all("ol.steps li", "lis => lis.map(li => li.dataset.ok)")
        assert done == ["yes"] * 5
        anyone.check("2-entry-verified")
    finally:
        anyone.context.close()

    ledger_verifies(coop)
    by = {(e["event"]["kind"], e["event"]["actor"]) for _, e in steps}
    assert ("delegate.set", sam.key_id) in by
    assert ("contribution.withdraw", lin.key_id) in by
    assert ("proposal.create", lin.key_id) in by and ("vote.cast", lin.key_id) in by
    members = {m["key"] for m in api(coop, "/members")["members"]}
    hub_only = {k for k, a in by if a not in members}
    assert hub_only >= {"proposal.execute"}, by
