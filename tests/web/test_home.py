"""The home page and the self-hosted API docs, in a real browser on a served hub."""

from __future__ import annotations

import httpx

from tests.kit.browser import Watched, sign_in
from tests.web.conftest import Site


def test_home_shows_the_community_and_draws_its_charts(site: Site, page: Watched) -> None:
    page.page.goto(site.url + "/")
    page.page.wait_for_selector("body[data-charts-drawn]")
    assert page.page.title().startswith("Home · Model Co-op")
    text = page.page.inner_text("main")
    assert "Our rules, in plain words" in text
    assert "Grace" in text and "Tim" in text
    page.check("home-visitor")


def test_a_signed_in_member_sees_their_name(site: Site, page: Watched) -> None:
    page.page.goto(site.url + "/")
    sign_in(page.page, site.keys["Grace"], "Grace")
    page.page.reload()
    page.page.wait_for_selector("#identity a[href='/me']")
    assert page.page.inner_text("#identity").startswith("Signed in as Grace · ")
    page.check("home-member", allow_errors="/w/")


def test_pages_carry_a_policy_without_inline_scripts(site: Site) -> None:
    r = httpx.get(site.url + "/", headers={"Accept": "text/html"})
    csp = r.headers["content-security-policy"]
    script = next(p for p in csp.split("; ") if p.startswith("script-src"))
    assert script == "script-src 'self'"
    assert "<script>" not in r.text  # every script is a file the package ships


def test_api_docs_load_from_the_package(site: Site, page: Watched) -> None:
    requested: list[str] = []
    page.page.on("request", lambda req: requested.append(req.url))
    page.page.goto(site.url + "/docs")
    page.page.wait_for_selector(".swagger-ui .info .title")
    assert "Commonweal hub" in page.page.inner_text(".info .title")
    assert all(u.startswith(site.url) for u in requested), requested


def test_an_unknown_page_is_a_page_and_an_unknown_endpoint_is_json(site: Site) -> None:
    r = httpx.get(site.url + "/no-such-page", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    assert "no such page" in r.text
    r = httpx.get(site.url + "/api/v1/no-such-endpoint", headers={"Accept": "text/html"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
