"""The ledger explorer in a real browser on a served hub (SQLite and PostgreSQL): pages and
filters, and an entry verified in the browser — and a tampered proof or checkpoint caught."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from sqlalchemy import text

from commonweal.community.views import actors_matching
from commonweal.hub import Hub
from commonweal.ledger.event import Leaf
from tests.kit.browser import Watched
from tests.kit.communities import make_hub
from tests.kit.databases import Databases
from tests.web.conftest import Site, off_the_browser_thread


def _rows(page: Any) -> list[dict[str, str]]:
    got: list[dict[str, str]] = page.eval_on_selector_all(
        "table.ledger tbody tr",
        """rows => rows.map(r => ({index: r.cells[0].innerText.replace('#', ''),
            kind: r.cells[2].innerText, who: r.cells[3].innerText,
            key: r.cells[3].querySelector('a').title}))""",
    )
    return got


def _read(directory: Path, fn: Any) -> Any:
    def go() -> Any:
        hub = Hub.open(directory)
        try:
            return fn(hub)
        finally:
            hub.close()

    return off_the_browser_thread(go)


def test_the_ledger_pages_through_entries_newest_first(site: Site, page: Watched) -> None:
    size = _read(site.directory, lambda hub: hub.log.size())
    p = page.page
    p.goto(site.url + "/ledger")
    rows = _rows(p)
    assert [int(r["index"]) for r in rows] == list(range(size - 1, size - 51, -1))
    assert all(len(r["key"]) == 64 for r in rows)  # the full key, on hover and to copy
    last = -(-size // 50)
    assert p.inner_text("#ledger-summary") == f"Newest first · page 1 of {last}."
    page.check("ledger-list")
    with p.expect_navigation():
        p.click("nav.pages a[rel=next]")
    assert int(_rows(p)[0]["index"]) == size - 51
    with p.expect_navigation():
        p.click(f"nav.pages a[aria-label='Page {last}']")
    assert _rows(p)[-1]["index"] == "0"
    assert "founded the community" in p.inner_text("table.ledger tbody tr:last-child")
    page.check("ledger-last-page")


def test_the_ledger_filters_by_member_and_kind(site: Site, page: Watched) -> None:
    p = page.page
    p.goto(site.url + "/ledger")
    p.fill("#f-member", "grace")
    p.select_option("#f-kind", "review.submit")
    p.click("form.filters button[type=submit]")
    p.wait_for_url(re.compile(r"member=grace"))
    rows = _rows(p)
    assert len(rows) == 50
    assert {(r["kind"], r["who"]) for r in rows} == {("review.submit", "Grace")}
    summary = p.inner_text("#ledger-summary")
    total = int(summary.split()[0].replace(",", ""))
    assert "of kind review.submit by Grace" in summary
    page.check("ledger-filtered")

    # The next page continues below the last entry shown, and "Newer" comes back.
    first = [int(r["index"]) for r in rows]
    with p.expect_navigation():  # read the rows of the page clicked to, not the one left
        p.click("nav.pages a[rel=next]")
    older = [int(r["index"]) for r in _rows(p)]
    assert older and max(older) < min(first) and older == sorted(older, reverse=True)
    with p.expect_navigation():
        p.click("nav.pages a[rel=prev]")
    assert [int(r["index"]) for r in _rows(p)] == first

    # The same as the hub's own filter, counted in full.
    grace = site.keys["Grace"].key_id
    want = _read(
        site.directory,
        lambda hub: [
            lf.index
            for lf in hub.log.entries(0, hub.log.size(), limit=10**6)
            if lf.kind == "review.submit" and lf.actor == grace
        ],
    )
    assert total == len(want) and first == want[::-1][:50]

    # A key prefix finds the same member; a name nobody has says so.
    p.goto(site.url + f"/ledger?member={grace[:10]}")
    assert {r["who"] for r in _rows(p)} == {"Grace"}
    p.goto(site.url + "/ledger?member=nobody-here")
    assert "No member matches “nobody-here”" in p.inner_text("#ledger-summary")
    assert _rows(p) == []
    page.check("ledger-nobody")


def test_an_unknown_kind_or_page_is_a_page_saying_so(site: Site, page: Watched) -> None:
    p = page.page
    p.goto(site.url + "/ledger?kind=no.such")
    assert "there is no kind of entry 'no.such'" in p.inner_text("main")
    p.goto(site.url + "/ledger?page=99999")
    assert "page 99999 is not between 1 and" in p.inner_text("main")
    p.goto(site.url + "/ledger/99999999")
    assert "entry 99999999 is not in the log" in p.inner_text("main")
    page.check("ledger-no-entry", allow_errors="404|400")


def _verify(site: Site, page: Watched, index: int) -> dict[str, str]:
    p = page.page
    p.goto(f"{site.url}/ledger/{index}")
    p.click("#verify")
    p.wait_for_selector("#verify-verdict")
    steps: dict[str, str] = p.eval_on_selector_all(
        "ol.steps li", "lis => Object.fromEntries(lis.map(li => [li.dataset.step, li.dataset.ok]))"
    )
    return steps


def test_an_entry_verifies_in_the_browser(site: Site, page: Watched) -> None:
    p = page.page
    # Grace's first review: a member-signed entry.
    grace = site.keys["Grace"].key_id
    index = _read(site.directory, lambda hub: hub.log.find(actors=[grace], limit=1)[0].index)
    steps = _verify(site, page, index)
    assert steps == {k: "yes" for k in ("key", "checkpoint", "event", "leaf", "inclusion")}
    verdict = p.inner_text("#verify-verdict")
    assert verdict.startswith("✓ Verified")
    assert grace in p.inner_text("#actor-key")
    shown_key = p.input_value("#verifier-key")
    hub_key = _read(site.directory, lambda hub: str(hub.verifier))
    assert shown_key == hub_key
    page.check("ledger-entry-verified")

    # Entry 0 (the founding, a tree's first leaf) and the newest entry verify too.
    size = _read(site.directory, lambda hub: hub.log.size())
    for i in (0, size - 1):
        assert set(_verify(site, page, i).values()) == {"yes"}, i


def _flip_hex(text: str, at: int) -> str:
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :]


def test_a_tampered_proof_fails_the_inclusion_check(site: Site, page: Watched) -> None:
    p = page.page

    def tamper(route: Any) -> None:
        resp = route.fetch()
        doc = resp.json()
        doc["proof"][0] = _flip_hex(doc["proof"][0], 5)
        route.fulfill(response=resp, json=doc)

    p.route("**/api/v1/ledger/proof/inclusion*", tamper)
    steps = _verify(site, page, 7)
    assert steps == {
        "key": "yes",
        "checkpoint": "yes",
        "event": "yes",
        "leaf": "yes",
        "inclusion": "no",
    }
    assert p.inner_text("#verify-verdict") == "✗ Not verified: the inclusion proof failed."
    detail = p.inner_text("li[data-step=inclusion]")
    assert "the proof leads to root" in detail and "the checkpoint's root is" in detail
    page.check("ledger-entry-tampered-proof")


def test_a_tampered_checkpoint_fails_its_signature(site: Site, page: Watched) -> None:
    p = page.page

    def tamper(route: Any) -> None:
        resp = route.fetch()
        origin, size, root, rest = resp.text().split("\n", 3)
        raw = bytearray(base64.b64decode(root))
        raw[0] ^= 1
        note = "\n".join([origin, size, base64.b64encode(raw).decode(), rest])
        route.fulfill(response=resp, body=note)

    p.route("**/api/v1/ledger/checkpoint", tamper)
    steps = _verify(site, page, 7)
    assert steps["checkpoint"] == "no" and steps["inclusion"] == "no"
    assert steps["event"] == steps["leaf"] == steps["key"] == "yes"
    assert "checkpoint's signature" in p.inner_text("#verify-verdict")
    assert "does not verify" in p.inner_text("li[data-step=checkpoint]")
    page.check("ledger-entry-tampered-checkpoint")


def test_another_verifier_key_fails_the_checkpoint(site: Site, page: Watched) -> None:
    p = page.page
    p.goto(f"{site.url}/ledger/3")
    # A well-formed key of another log: the checkpoint carries no signature by it.
    p.fill("#verifier-key", "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
    p.click("#verify")
    p.wait_for_selector("#verify-verdict")
    assert "carries no signature by example.com/foo" in p.inner_text("li[data-step=checkpoint]")
    page.check("ledger-entry-other-key")


def test_filters_match_a_scan_of_the_log(module_databases: Databases, tmp_path: Path) -> None:
    """hub.log.find/count against a plain scan, and the indexes a hub adds when it opens."""

    def go() -> None:
        url = module_databases.new()
        hub, founder = make_hub(tmp_path / "hub", url)
        try:
            everything: list[Leaf] = hub.log.entries(0, hub.log.size())
            assert actors_matching(hub.state, "ada") == [founder.key_id]
            assert actors_matching(hub.state, "hub") == [hub.state.hub_key]
            for kinds, actors in [((), ()), (("community.found",), ()), ((), (founder.key_id,))]:
                want = [
                    lf.index
                    for lf in everything
                    if (not kinds or lf.kind in kinds) and (not actors or lf.actor in actors)
                ][::-1]
                assert [lf.index for lf in hub.log.find(kinds=kinds, actors=actors)] == want
                assert hub.log.count(kinds=kinds, actors=actors, cap=100) == len(want)
            with hub.engine.begin() as conn:
                for name in ("ix_ledger_entries_kind_idx", "ix_ledger_entries_actor_idx"):
                    conn.execute(text(f"DROP INDEX {name}"))
                assert len(hub.store.missing_indexes(conn)) == 2
        finally:
            hub.close()
        again = Hub.open(tmp_path / "hub", database=url)
        try:
            with again.read() as conn:
                assert again.store.missing_indexes(conn) == []
        finally:
            again.close()

    off_the_browser_thread(go)
