"""The model's pages in a real browser on a served hub: versions and their metrics, the
items behind each version per member, the model card, "try it", and API keys made in the
browser and used by a consumer."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from commonweal.hub import Hub
from commonweal.ledger.keys import SigningKey
from commonweal.wire import AUTH_HEADER, auth_header
from tests.kit.browser import Watched, served, sign_in
from tests.kit.communities import community
from tests.kit.databases import Databases
from tests.web.conftest import Site, off_the_browser_thread

# Founder-written text that lands in the model card: it must stay text on the page.
HOSTILE = (
    "We label <script>window.pwned = 1</script> river reports. **not bold** "
    '[click](javascript:alert(1)) <img src=x onerror="window.pwned = 2">'
)
WITHDRAWN = 4


def build(directory: Path, database: str) -> dict[str, SigningKey]:
    """The text community, with version 1 trained, then Alan withdrawing a few of his
    training items and version 2 trained without them."""
    client, keys = community(
        directory, database, kind="text-classification", charter_extra={"description": HOSTILE}
    )
    try:
        hub = client.embedded_hub
        hub.models.train()
        ids = set(hub.models.manifest_ids(1))
        gone = sorted(i for i in ids if hub.state.contributions[i].member == keys["Alan"].key_id)[
            :WITHDRAWN
        ]
        client.withdraw(keys["Alan"], gone)
        hub.models.train(incremental=True)
    finally:
        client.close()
    return keys


@pytest.fixture(scope="module")
def site(module_databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The web tests' text community (Ada, Grace, Alan, Tim), with two model versions."""
    directory = tmp_path_factory.mktemp("model-site") / "hub"
    keys = off_the_browser_thread(build, directory, module_databases.new())
    with served(directory) as url:
        yield Site(directory, url, keys)


def api(site: Site, path: str) -> Any:
    r = httpx.get(site.url + "/api/v1" + path)
    r.raise_for_status()
    return r.json()


def test_versions_page_shows_each_versions_metrics_and_draws_them(
    site: Site, page: Watched
) -> None:
    p = page.page
    p.goto(site.url + "/model")
    p.wait_for_selector("#versions-chart[data-drawn]")
    latest = api(site, "/models/latest")
    accuracy = f"{100 * latest['metrics']['accuracy']:.1f}%"
    assert "Version 2, the latest" in p.inner_text("#h-latest")
    assert accuracy in p.inner_text("main")
    rows = p.locator("table.versions tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("th").inner_text() == "2"
    # Version 2 was compared with version 1 on the held-out items both were scored on.
    assert "Against version 1 on the same" in p.inner_text("main")
    # A visitor is told that trying the model is for members.
    assert p.is_visible("#try-signin") and p.is_hidden("#try-form")
    page.check("model-visitor")


def test_version_page_counts_items_per_member_as_the_lineage_does(
    site: Site, page: Watched
) -> None:
    p = page.page
    for version in (1, 2):
        p.goto(f"{site.url}/model/{version}")
        lineage = api(site, f"/models/{version}/lineage")
        shown = {
            row.get_attribute("data-member"): int(row.locator("td").nth(0).inner_text())
            for row in p.locator("#per-member tbody tr").all()
        }
        expected = {m["member"]: m["items"] for m in lineage["members"]}
        assert {k: v for k, v in shown.items() if v} == expected
        assert f"{len(lineage['items'])} items from {len(expected)} members" in p.inner_text("main")
    # Version 2: Alan's withdrawn items are gone, and the page says so.
    text = p.inner_text("main")
    assert f"{WITHDRAWN} removed, of which {WITHDRAWN} withdrawn" in text
    alan = p.locator(f"#per-member tr[data-member='{site.keys['Alan'].key_id}'] td")
    assert alan.nth(2).inner_text() == str(WITHDRAWN)
    assert "Precision" in text and "river" in text
    p.click("summary:has-text('Items removed')")
    assert p.locator("details tbody tr").count() == WITHDRAWN
    page.check("model-version-2")


def test_the_card_renders_as_html_and_member_text_stays_text(site: Site, page: Watched) -> None:
    p = page.page
    p.goto(site.url + "/model/card")
    card = p.locator("article.model-card")
    text = card.inner_text()
    assert "model version 2" in text and "Training data" in text
    # The founder's description is shown as the text it is: no script ran, no image, no
    # javascript: link; and the rest of the Markdown became HTML: no heading marks, table
    # rules or emphasis stars are left.
    assert HOSTILE in text
    assert not re.search(r"^##+ |\| ?-{3}|\*\*", text.replace(HOSTILE, ""), re.M)
    assert card.locator("h2").inner_text() == "Model Co-op: model version 2"
    assert "Training data" in card.locator("h3").all_inner_texts()
    assert card.locator("table").count() >= 3 and card.locator("li strong").count() >= 5
    assert card.locator("script, img").count() == 0
    assert card.locator("a[href^='javascript']").count() == 0
    assert p.evaluate("typeof window.pwned") == "undefined"
    hrefs = [a.get_attribute("href") for a in p.locator("main a").all()]
    assert "/api/v1/models/2/card?format=croissant" in hrefs
    assert "/api/v1/models/2/card?format=markdown" in hrefs
    page.check("model-card")
    p.goto(site.url + "/model/1/card")
    assert "model version 1" in p.inner_text("article.model-card")


def test_a_member_tries_the_model_on_a_text(site: Site, page: Watched) -> None:
    p = page.page
    p.goto(site.url + "/model")
    sign_in(p, site.keys["Grace"], "Grace")
    p.reload()
    p.wait_for_selector("#try-form:not([hidden])")
    p.fill("#try-text", "the river flood reached the bridge and the mill by the canal")
    p.click("#try-form button[type=submit]")
    p.wait_for_selector("#try-result[data-done], #try-error")
    assert p.locator("#try-error").count() == 0, p.inner_text("#try-error")
    assert p.inner_text("#try-label") == "river"
    assert p.locator("#try-top tbody tr").count() == 2
    page.check("model-try", allow_errors="/w/")
    # Nothing was metered: the treasury counts no calls.
    assert api(site, "/treasury")["calls"] == 0


def test_trying_needs_a_member_and_few_inputs(site: Site) -> None:
    url = "/api/v1/models/latest/try"
    one = {"inputs": [{"text": "bread and cheese at the market stall"}]}
    assert httpx.post(site.url + url, json=one).status_code == 401
    key = site.keys["Alan"]

    def signed(doc: dict[str, Any]) -> httpx.Response:
        body = json.dumps(doc).encode()
        header = auth_header(key, "POST", url, body=body)
        headers = {AUTH_HEADER: header, "Content-Type": "application/json"}
        return httpx.post(site.url + url, content=body, headers=headers)

    r = signed(one)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["label"] == "market" and r.json()["billed"] is False
    r = signed({"inputs": one["inputs"] * 11})
    assert r.status_code == 413 and "at most 10" in r.json()["error"]["message"]


def test_a_member_issues_a_key_a_consumer_uses_it_and_the_member_revokes_it(
    site: Site, page: Watched
) -> None:
    p = page.page
    p.on("dialog", lambda d: d.accept())
    alan = site.keys["Alan"]
    p.goto(site.url + "/model/keys")
    sign_in(p, alan, "Alan")
    p.reload()
    p.wait_for_selector("#key-form")
    p.fill("#key-consumer", "Riverside <b>library</b>")
    p.fill("#key-quota", "50")
    p.click("#key-form button[type=submit]")
    p.wait_for_selector("#key-secret:not([hidden])")
    secret = p.input_value("#key-secret-value")
    # The format of wire.new_api_key: cw_ and 32 bytes of URL-safe base64, unpadded.
    assert re.fullmatch(r"cw_[A-Za-z0-9_-]{43}", secret)
    key_hash = hashlib.sha256(secret.encode()).hexdigest()
    row = p.locator(f"#key-list tr[data-key-hash='{key_hash}']")
    assert "Riverside <b>library</b>" in row.inner_text() and "active" in row.inner_text()
    page.check("model-keys-issued", allow_errors="/w/")

    # The log holds the event Alan's browser signed: the hash, never the secret.
    size = api(site, "/ledger/entries?start=0&end=0")["size"]
    entry = api(site, f"/ledger/entries?start={size - 1}&end={size}")["entries"][0]
    assert entry["event"]["kind"] == "apikey.create"
    assert entry["event"]["actor"] == alan.key_id
    assert entry["event"]["body"] == {
        "key_hash": key_hash,
        "consumer": "Riverside <b>library</b>",
        "quota_per_day": 50,
    }

    predict = site.url + "/api/v1/models/latest/predict"
    doc = {"inputs": [{"text": "the baker sold bread at the market"}]}
    r = httpx.post(predict, json=doc, headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["label"] == "market" and r.json()["calls"] == 1

    row.locator("button[data-revoke]").click()
    p.wait_for_selector(f"#key-list tr[data-key-hash='{key_hash}'] >> text=revoked")
    assert p.locator(f"#key-list tr[data-key-hash='{key_hash}'] button").count() == 0
    page.check("model-keys-revoked", allow_errors="/w/")
    r = httpx.post(predict, json=doc, headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_a_version_that_does_not_exist_is_a_page_saying_so(site: Site, page: Watched) -> None:
    r = httpx.get(site.url + "/model/9", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "no model version 9" in r.text
    page.page.goto(site.url + "/model/9")
    page.check("model-missing", allow_errors="404")


def keys_fragments(directory: Path, database: str) -> dict[str, str]:
    """Grace's and Ada's key lists where the charter lets only the founder issue keys."""
    from fastapi.testclient import TestClient

    from commonweal.api import create_app

    client, keys = community(
        directory,
        database,
        kind="text-classification",
        items=[],
        charter_extra={"serving": {"apikeys": "founder"}},
    )
    client.close()
    hub = Hub.open(directory)
    try:
        with TestClient(create_app(hub)) as http:
            return {
                name: http.get(
                    "/w/model/keys",
                    headers={AUTH_HEADER: auth_header(keys[name], "GET", "/w/model/keys")},
                ).text
                for name in ("Grace", "Ada")
            }
    finally:
        hub.close()


def test_a_member_is_told_why_they_may_not_issue_keys(database_url: str, tmp_path: Path) -> None:
    html = off_the_browser_thread(keys_fragments, tmp_path / "hub", database_url)
    assert 'id="key-form"' not in html["Grace"]
    assert "only the founder, Ada, issue API keys" in html["Grace"]
    assert 'id="key-form"' in html["Ada"]
