"""My page and members' pages, in a real browser on a served hub (SQLite and PostgreSQL).

The community here is this module's own (not the shared ``site``): trained, valued, one
reward epoch and one payout, so statements have something to say, and members whose
items the tests withdraw and who leave do not disturb other modules."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from commonweal.client import HubClient
from commonweal.ledger.canonical import canonical
from commonweal.ledger.keys import SigningKey, verify_signature
from tests.kit.browser import Watched, served, sign_in
from tests.kit.communities import community, text_items
from tests.kit.databases import Databases
from tests.web.conftest import Site, off_the_browser_thread

PRICE = 2


def build(directory: Path, database: str) -> dict[str, SigningKey]:
    """A text community with a model, a valuation, an epoch and a payout, and a member
    (Lin) who gave a few items and will withdraw them all and leave."""
    client, keys = community(
        directory,
        database,
        kind="text-classification",
        charter_extra={
            "training": {"shards": 2, "evaluation": {"holdout_pct": 15, "min_items": 5}},
            "serving": {"price_per_call": PRICE},
        },
    )
    try:
        hub = client.embedded_hub
        hub.models.train()
        hub.ownership.value()
        hub.ownership.close_epoch()
        secret, _ = client.create_apikey(keys["Tim"], "Corner Shop")
        client.predict([{"text": "the river rose over the bank"}] * 10, api_key=secret)
        hub.models.close_revenue()
        hub.ownership.pay_out()
        keys["Lin"] = SigningKey.generate()
        client.join(keys["Lin"], "Lin")
        client.contribute(keys["Lin"], text_items(6, seed=9))
    finally:
        client.close()
    return keys


@pytest.fixture(scope="module")
def me_site(
    module_databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("me") / "hub"
    keys = off_the_browser_thread(build, directory, module_databases.new())
    with served(directory) as url:
        yield Site(directory, url, keys)


class Failed:
    """Answers of 400 and over that the page received (the browser logs each as a console
    error; the notifications fragment is optional, so only it could 404 unnoticed)."""

    def __init__(self, page: Any) -> None:
        self.urls: list[str] = []
        page.on("response", lambda r: r.status >= 400 and self.urls.append(r.url))

    def only_optional(self) -> bool:
        return all(u.endswith("/w/webhook") for u in self.urls)


def open_me(site: Site, page: Watched, name: str, query: str = "") -> Failed:
    failed = Failed(page.page)
    page.page.goto(site.url + "/me")
    sign_in(page.page, site.keys[name], name)
    page.page.goto(site.url + "/me" + query)
    page.page.wait_for_selector("body[data-me-ready]")
    return failed


def api(site: Site, path: str) -> Any:
    return httpx.get(site.url + path, timeout=30).json()


def test_a_member_sees_their_items_statement_and_values(me_site: Site, page: Watched) -> None:
    failed = open_me(me_site, page, "Grace")
    p = page.page
    p.wait_for_selector("body[data-values-drawn]")
    grace = me_site.keys["Grace"].key_id
    statement = api(me_site, f"/api/v1/members/{grace}/statement")
    assert statement["shares"] > 0 and statement["epochs"] and statement["payouts"]
    summary = p.inner_text("#me-summary")
    assert f"holds {statement['shares']} shares" in summary
    assert f"was paid {statement['credits']} credits" in summary
    assert "Valuation 1 valued" in summary
    payouts = p.inner_text("#payouts + table")
    assert str(statement["payouts"][0]["credits"]) in payouts
    mine = api(me_site, f"/api/v1/contributions?member={grace}")["contributions"]
    rows = p.query_selector_all("#my-items tbody tr")
    assert len(rows) == 50 < len(mine)
    shown = {r.get_attribute("data-item") for r in rows}
    assert shown <= {c["id"] for c in mine}
    assert "accepted" in p.inner_text("#my-items tbody tr:first-child td.status")
    values = [r.query_selector("td.num").inner_text() for r in rows]
    assert sum(v != "—" for v in values) > 0  # the latest valuation's values are shown
    p.wait_for_selector("#me-notify form[data-webhook] #webhook-url")  # the join area's form
    page.check("me-member")

    p.click("#me-items a[data-page='2']")
    p.wait_for_selector("#my-items caption:has-text('page 2 of')")
    assert p.url.endswith("/me?page=2")
    second = {r.get_attribute("data-item") for r in p.query_selector_all("#my-items tbody tr")}
    assert second and not second & shown
    p.reload()  # the URL is shareable: the page opens on page 2
    p.wait_for_selector("#my-items caption:has-text('page 2 of')")
    assert failed.only_optional(), failed.urls


def test_a_visitor_is_invited_to_join_instead_of_private_content(
    me_site: Site, page: Watched
) -> None:
    asked: list[str] = []
    page.page.on("request", lambda r: asked.append(r.url))
    page.page.goto(me_site.url + "/me")
    page.page.wait_for_selector("#me-visitor:not([hidden])")
    assert page.page.is_hidden("#me-member")
    assert "Join with an invite" in page.page.inner_text("#me-visitor")
    assert not [u for u in asked if "/w/" in u]  # nothing personal was even asked for
    page.check("me-visitor")


def test_a_member_withdraws_one_item_signed_by_their_browser(me_site: Site, page: Watched) -> None:
    failed = open_me(me_site, page, "Ada")
    p = page.page
    row = p.query_selector("#my-items tbody tr")
    assert row is not None
    item = row.get_attribute("data-item")
    p.click(f"button[data-withdraw='{item}']")
    p.wait_for_selector("#withdraw-dialog[open]")
    text = p.inner_text("#withdraw-dialog")
    assert "deleted from the hub" in text and "the next model version unlearns it" in text
    page.check("me-withdraw-dialog")
    p.click("#withdraw-confirm")
    p.wait_for_selector("#flash.ok")
    assert "Withdrew 1 item" in p.inner_text("#flash")
    p.wait_for_selector(f"#my-items tr[data-item='{item}'] td.status:has-text('withdrawn')")
    assert p.query_selector(f"button[data-withdraw='{item}']") is None
    assert api(me_site, f"/api/v1/contributions/{item}")["status"] == "withdrawn"
    size = api(me_site, "/api/v1/ledger/entries?start=0&end=0")["size"]
    entries = api(me_site, f"/api/v1/ledger/entries?start={size - 3}")["entries"]
    leaf = next(e for e in entries if e["event"]["kind"] == "contribution.withdraw")
    event = leaf["event"]
    # The same event the CLI signs, signed by Ada's key (which only her browser holds).
    assert event["actor"] == me_site.keys["Ada"].key_id and event["body"] == {"items": [item]}
    assert verify_signature(event["actor"], canonical(event), base64.b64decode(leaf["sig"]))
    page.check("me-withdrawn")
    assert failed.only_optional(), failed.urls


def test_export_downloads_a_json_holding_the_members_items(
    me_site: Site, page: Watched, tmp_path: Path
) -> None:
    failed = open_me(me_site, page, "Alan")
    alan = me_site.keys["Alan"].key_id
    with page.page.expect_download() as got:
        page.page.click("#export")
    download = got.value
    assert download.suggested_filename == "commonweal-export-Alan.json"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    doc = json.loads(target.read_text())
    assert doc["member"] == alan
    mine = api(me_site, f"/api/v1/contributions?member={alan}")["contributions"]
    assert {c["id"] for c in doc["contributions"]} == {c["id"] for c in mine}
    assert all(c["content"]["text"] for c in doc["contributions"] if c["status"] == "accepted")
    assert any(e["event"]["actor"] == alan for e in doc["events"])
    page.page.wait_for_selector("#flash.ok")
    page.check("me-exported")
    assert failed.only_optional(), failed.urls


def test_a_member_withdraws_everything_then_leaves(me_site: Site, page: Watched) -> None:
    failed = open_me(me_site, page, "Lin")
    p = page.page
    lin = me_site.keys["Lin"].key_id
    assert "every item you gave (6)" in p.inner_text("#leave-terms")
    p.click("#withdraw-all")
    p.wait_for_selector("#withdraw-dialog[open]")
    assert "all 6 of your items" in p.inner_text("#withdraw-title")
    p.click("#withdraw-confirm")
    p.wait_for_selector("#flash.ok:has-text('Withdrew 6 items')")
    rows = api(me_site, f"/api/v1/contributions?member={lin}")["contributions"]
    assert {r["status"] for r in rows} == {"withdrawn"}
    p.wait_for_selector("#leave-terms:has-text('every item you gave (0)')", state="attached")

    p.click("#leave-open")
    p.wait_for_selector("#leave-dialog[open]")
    terms = p.inner_text("#leave-dialog")
    assert "cannot be undone" in terms and "this key can no longer act here" in terms
    page.check("me-leave-dialog")
    p.click("#leave-confirm")
    p.wait_for_selector("#flash.ok:has-text('You have left')")
    members = api(me_site, "/api/v1/members")["members"]
    assert next(m for m in members if m["key"] == lin)["status"] == "left"
    p.reload()
    p.wait_for_selector("#me-visitor:not([hidden])")
    assert "membership is left" in p.inner_text("#me-visitor")
    page.check("me-left")
    assert failed.only_optional(), failed.urls


def test_a_members_page_by_name_and_by_key_prefix(me_site: Site, page: Watched) -> None:
    grace = me_site.keys["Grace"].key_id
    p = page.page
    for who in ("grace", grace[:10], grace):
        p.goto(f"{me_site.url}/members/{who}")
        assert p.inner_text("h1") == "Grace"
        assert grace in p.inner_text("main")
    text = p.inner_text("main")
    statement = api(me_site, f"/api/v1/members/{grace}/statement")
    assert f"{statement['shares']} shares" in text
    assert "Estimated reliability" in text and "reviews done" in text
    mine = api(me_site, f"/api/v1/contributions?member={grace}")["contributions"]
    assert f"all\t{len(mine)}" in p.inner_text("section[aria-labelledby='h-gave'] table")
    page.check("member-page")


def test_an_unknown_or_too_short_member_is_a_page_that_says_so(me_site: Site) -> None:
    for who, said in (("nobody", "no member is named 'nobody'"), ("abc", "at least 8")):
        r = httpx.get(f"{me_site.url}/members/{who}", headers={"Accept": "text/html"})
        assert r.status_code == 404 and said in r.text.replace("&#39;", "'")


def test_member_names_in_pages_are_inert(
    module_databases: Databases, tmp_path: Path, page: Watched
) -> None:
    evil = "<img src=x onerror=alert(1)>"

    def join(directory: Path) -> SigningKey:
        from tests.kit.communities import make_hub

        hub, _ = make_hub(directory, module_databases.new())
        hub.close()
        key = SigningKey.generate()
        with HubClient(str(directory)) as c:
            c.join(key, evil)
        return key

    directory = tmp_path / "hub"
    key = off_the_browser_thread(join, directory)
    with served(directory) as url:
        page.page.goto(f"{url}/members/{key.key_id}")
        assert page.page.inner_text("h1") == evil
        assert page.page.query_selector("main img") is None
        page.check("member-page-inert-name")
