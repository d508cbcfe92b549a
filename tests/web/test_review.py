"""The review page in a real browser: one item at a time, verdicts by keyboard alone, each a
``review.submit`` event signed by the browser's key; member-written text stays inert."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from commonweal.client import HubClient
from commonweal.ledger.event import sign_event
from tests.kit.browser import Watched, sign_in
from tests.web.conftest import Site
from tests.web.test_contribute import entries, log_size


@pytest.fixture
def hub(site: Site) -> Iterator[HubClient]:
    """The served hub, remotely, with nothing left in review: each test contributes anew."""
    with HubClient(site.url) as c:
        settle(c, site)
        yield c


def settle(c: HubClient, site: Site) -> None:
    """Ada and Tim decide whatever is in review (Grace contributes; Alan reviews here)."""
    events = [
        sign_event(
            site.keys[name], "review.submit", {"item": row["id"], "verdict": "accept"}, hub=c.origin
        )
        for row in c.contributions(status="in_review")
        for name in ("Ada", "Tim")
        if site.keys[name].key_id != row["member"]
    ]
    for b in range(0, len(events), 500):
        c.submit(events[b : b + 500])


def contribute(c: HubClient, site: Site, *texts: str, label: str = "market") -> list[str]:
    receipt = c.contribute(site.keys["Grace"], [{"text": t, "label": label} for t in texts])
    assert all(i["status"] == "in_review" for i in receipt["items"]), receipt
    return [i["id"] for i in receipt["items"]]


def open_review(site: Site, page: Watched, who: str = "Alan") -> Any:
    p = page.page
    p.goto(site.url + "/review")
    sign_in(p, site.keys[who], who)
    p.reload()
    p.wait_for_selector("body[data-review-item]")
    return p


def showing(p: Any) -> str:
    item: str = p.get_attribute("body", "data-review-item")
    return item


def next_item(p: Any, after: str) -> str:
    p.wait_for_function(
        "(before) => document.body.dataset.reviewItem !== before", arg=after, timeout=15_000
    )
    return showing(p)


def test_item_text_with_a_script_tag_renders_inert(
    site: Site, hub: HubClient, page: Watched
) -> None:
    text = '<script>alert(1)</script> The flood <img src=x onerror="alert(2)"> reached the bank'
    [item] = contribute(hub, site, text, label="river")
    dialogs: list[str] = []
    page.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    p = open_review(site, page)
    assert showing(p) == item
    assert p.inner_text(".item-text") == text  # shown as the member wrote it, as text
    assert (
        p.eval_on_selector_all("#review-item script, #review-item .item-text img", "e => e.length")
        == 0
    )
    assert "river" in p.inner_text("#proposed")
    page.check("review-script-text", allow_errors="/w/waiting")
    assert dialogs == []


def test_a_reviewer_answers_with_the_keyboard_alone(
    site: Site, hub: HubClient, page: Watched
) -> None:
    ids = contribute(
        hub,
        site,
        "Fresh cheese and warm bread at the Saturday stall",
        "Apples were cheap at the baker's market stall",
        "The price of coins at the stall, by the market cross",
    )
    before = log_size(site.url)
    p = open_review(site, page)
    first = showing(p)
    assert first in ids
    assert "3 items" in p.inner_text("#left")
    page.check("review-item", allow_errors="/w/waiting")
    done: list[tuple[str, str, str | None]] = []
    for key, verdict, label in (
        ("a", "accept", None),
        ("r", "reject", None),
        ("1", "relabel", "river"),
    ):
        current = showing(p)
        p.keyboard.press(key)
        done.append((current, verdict, label))
        if len(done) < 3:
            next_item(p, current)
    p.wait_for_selector(".review-empty")
    assert "Nothing waits for your review" in p.inner_text("#review-item")
    assert "1 accepted, 1 rejected, 1 relabelled" in p.inner_text("#session")
    page.check("review-done", allow_errors="/w/waiting")

    reviews = [
        e["event"] for e in entries(site.url, before) if e["event"]["kind"] == "review.submit"
    ]
    assert {e["actor"] for e in reviews} == {site.keys["Alan"].key_id}
    assert sorted(
        (e["body"]["item"], e["body"]["verdict"], e["body"].get("label")) for e in reviews
    ) == sorted(done)
    assert all(set(e["body"]) <= {"item", "verdict", "label"} for e in reviews)  # as the CLI signs


def test_a_skipped_item_does_not_come_back_in_the_same_visit(
    site: Site, hub: HubClient, page: Watched
) -> None:
    ids = contribute(
        hub,
        site,
        "The canal bridge was closed for repairs",
        "Rain again over the mill",
        label="river",
    )
    p = open_review(site, page)
    first = showing(p)
    p.click("button[data-verdict=skip]")
    second = next_item(p, first)
    assert second != first and {first, second} == set(ids)
    assert "you skipped" in p.inner_text("#left")
    p.keyboard.press("s")
    p.wait_for_selector(".review-empty")
    assert "Only the items you skipped are left (2)" in p.inner_text("#review-item")
    page.check("review-skipped", allow_errors="/w/waiting")
    p.reload()  # a new visit offers them again
    p.wait_for_selector("body[data-review-item]")
    assert showing(p) in ids


def test_a_visitor_is_asked_to_sign_in(site: Site, page: Watched) -> None:
    page.page.goto(site.url + "/review")
    page.page.wait_for_selector("body[data-review-item]")
    assert "Reviewing is for active members" in page.page.inner_text("#review-item")
    page.check("review-visitor")
