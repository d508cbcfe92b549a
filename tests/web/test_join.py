"""Joining in a browser: a key made by WebCrypto, a join signed with it, the key file's
backup (loaded by Python and used by the CLI), signing in with a key file, signing out,
invites made in the browser, the hub's refusals on the page, a hostile name kept inert,
and the member's webhook form — on a served community that joins by invitation, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from commonweal.client import HubClient
from commonweal.ledger.keys import SigningKey
from tests.kit.browser import Watched, served, sign_in
from tests.kit.commands import cw
from tests.kit.communities import make_hub
from tests.kit.databases import Databases
from tests.web.conftest import Site, off_the_browser_thread

HOSTILE = "<img src=x onerror=alert(1)>"


def build_invite_community(directory: Path, database: str) -> dict[str, SigningKey]:
    # Ada alone invites everyone these pages are tried with: more than the default five
    # invites a month, which are not what these tests are about.
    hub, ada = make_hub(
        directory,
        database,
        join_policy="invite",
        name="Door Co-op",
        charter_extra={"membership": {"invites_per_member": 0}},
    )
    hub.close()
    ada.save(directory / "ada.key", name="Ada")
    return {"Ada": ada}


@pytest.fixture(scope="module")
def door(module_databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A community that joins by invitation: Ada, its founder, alone at first; served."""
    directory = tmp_path_factory.mktemp("door") / "hub"
    keys = off_the_browser_thread(build_invite_community, directory, module_databases.new())
    with served(directory) as url:
        yield Site(directory, url, keys)


def invite(site: Site, key: SigningKey) -> str:
    """A fresh invite token, made by ``key`` with the SDK over HTTP."""

    def make() -> str:
        with HubClient(site.url) as c:
            return c.create_invite(key)[0]

    return off_the_browser_thread(make)


def members(site: Site) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in httpx.get(site.url + "/api/v1/members").json()["members"]}


def entries(site: Site) -> list[dict[str, Any]]:
    """Every log entry, read over HTTP (a remote client: no event loop of its own)."""
    with HubClient(site.url) as c:
        return list(c.iter_entries())


def _size(site: Site) -> int:
    return int(httpx.get(site.url + "/healthz").json()["size"])


def join_in(page: Any, url: str, name: str) -> str:
    """Join through the page at ``url``; the key id the page made."""
    page.goto(url)
    page.wait_for_selector("body[data-join-ready]")
    page.fill("#join-name", name)
    page.click("#join-submit")
    page.wait_for_selector("#backup-first:not([hidden])")
    return str(page.evaluate("document.body.dataset.keyId"))


def key_id_in_browser(page: Any) -> str | None:
    return page.evaluate(  # type: ignore[no-any-return]
        """async () => {
            const keys = await import("/static/js/keys.js");
            const k = await keys.loadKey();
            return k ? k.keyId : null;
        }"""
    )


def test_two_newcomers_join_by_invite_in_two_browsers_and_sign_their_own_joins(
    door: Site, browser: Any, tmp_path: Path
) -> None:
    made: dict[str, str] = {}
    for name in ("Lin", "Sam"):
        token = invite(door, door.keys["Ada"])
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        try:
            watched = Watched(context.new_page())
            page = watched.page
            page.goto(f"{door.url}/join?invite={token}")
            page.wait_for_selector("body[data-join-ready]")
            assert page.input_value("#join-invite") == token  # filled in from the link
            watched.check(f"join-invited-{name.lower()}")
            made[name] = join_in(page, f"{door.url}/join?invite={token}", name)
            assert page.is_disabled("#backup-continue")  # the backup comes first
            watched.check(f"join-backup-{name.lower()}")
            with page.expect_download() as dl:
                page.click("#backup-download")
            path = tmp_path / f"{name}.key"
            dl.value.save_as(path)
            page.check("#backup-saved")
            page.click("#backup-continue")
            page.wait_for_selector("#welcome-active:not([hidden])")
            assert page.inner_text("#welcome-name") == name
            assert page.get_attribute("#welcome a[href='/contribute']", "href") == "/contribute"
            watched.check(f"join-welcome-{name.lower()}")
            # The downloaded file is a key file the SDK and the CLI read: it is this member.
            key = SigningKey.load(path)
            assert key.key_id == made[name] == key_id_in_browser(page)
            assert json.loads(path.read_text())["name"] == name
        finally:
            context.close()
    ms = members(door)
    assert {n: ms[n]["key"] for n in made} == made
    assert all(ms[n]["status"] == "active" for n in made)
    # Each join is signed by the key its browser made.
    joins = {
        e["event"]["body"]["name"]: e["event"]
        for e in entries(door)
        if e["event"]["kind"] == "member.join"
    }
    for name, key_id in made.items():
        assert joins[name]["actor"] == key_id and set(joins[name]["body"]) == {"name", "invite"}
    # The CLI acts with Lin's downloaded key: an invite made over HTTP, which Sam's key
    # could not have made for her.
    proc = cw("invite", "create", "--hub", door.url, "--key", tmp_path / "Lin.key")
    token = proc.stdout.strip()
    assert f"Join link: {door.url}/join?invite={token}" in proc.stderr
    last = entries(door)[-1]
    assert last["event"]["kind"] == "invite.create" and last["event"]["actor"] == made["Lin"]


def test_the_printed_join_link_opens_the_page_with_the_invite(door: Site, page: Watched) -> None:
    proc = cw("invite", "create", "--hub", door.url, "--key", door.directory / "ada.key")
    link = proc.stderr.split("Join link: ", 1)[1].split()[0]
    page.page.goto(link)
    page.page.wait_for_selector("body[data-join-ready]")
    assert page.page.input_value("#join-invite") == proc.stdout.strip()


def test_a_bad_or_used_invite_shows_the_hubs_reason_and_writes_nothing(
    door: Site, page: Watched
) -> None:
    before = _size(door)
    page.page.goto(f"{door.url}/join?invite=not-a-real-invite")
    page.page.wait_for_selector("body[data-join-ready]")
    page.page.fill("#join-name", "Mallory")
    page.page.click("#join-submit")
    page.page.wait_for_selector("#join-invite-error:not([hidden])")
    assert "not one this community issued" in page.page.inner_text("#join-invite-error")
    assert page.page.get_attribute("#join-invite", "aria-invalid") == "true"
    page.check("join-bad-invite", allow_errors="403")
    assert _size(door) == before and "Mallory" not in members(door)
    assert key_id_in_browser(page.page) is None  # no key kept for a refused join
    # A taken name is said next to the name field.
    page.page.fill("#join-invite", invite(door, door.keys["Ada"]))
    page.page.fill("#join-name", "ada")
    page.page.click("#join-submit")
    page.page.wait_for_selector("#join-name-error:not([hidden])")
    assert "is taken" in page.page.inner_text("#join-name-error")
    page.check("join-name-taken", allow_errors="40[39]")
    assert _size(door) == before + 1  # the invite Ada made, nothing else


def test_a_hostile_name_renders_inert_on_the_home_page(door: Site, page: Watched) -> None:
    dialogs: list[str] = []
    page.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    token = invite(door, door.keys["Ada"])
    key_id = join_in(page.page, f"{door.url}/join?invite={token}", HOSTILE)
    page.page.goto(door.url + "/")
    page.page.wait_for_selector("#identity a[href='/me']")
    assert HOSTILE in page.page.inner_text("main .members")
    assert HOSTILE in page.page.inner_text("#identity")
    assert page.page.locator("img[src=x]").count() == 0
    page.check("join-hostile-name-home")
    assert dialogs == []
    assert members(door)[HOSTILE]["key"] == key_id


def test_signing_in_with_a_key_file_and_signing_out(
    door: Site, page: Watched, tmp_path: Path
) -> None:
    # A key made by the CLI, joined by the CLI, signs in on the page.
    path = tmp_path / "kim.key"
    cw("key", "new", "--out", path)
    token = invite(door, door.keys["Ada"])
    cw("join", "--hub", door.url, "--key", path, "--name", "Kim", "--invite", token)
    kim = SigningKey.load(path)
    page.page.goto(door.url + "/join")
    page.page.wait_for_selector("body[data-join-ready]")
    page.check("join-visitor")
    page.page.set_input_files("#key-file", str(path))
    page.page.wait_for_selector("#signed-in:not([hidden])")
    assert page.page.inner_text("#me-name") == "Kim"
    assert page.page.inner_text("#me-key") == kim.key_id == key_id_in_browser(page.page)
    page.page.wait_for_selector("#notify-card form[data-webhook]")
    page.check("join-signed-in")
    # Sign out: forgotten only once the member says they have the file.
    assert page.page.is_disabled("#signout")
    page.page.check("#signout-sure")
    page.page.click("#signout")
    page.page.wait_for_selector("#visitor:not([hidden])")
    assert "Signed out" in page.page.inner_text("#flash")
    assert key_id_in_browser(page.page) is None
    page.check("join-signed-out")
    # Dropping the key file on the page signs in again.
    page.page.evaluate(
        """async (text) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], "kim.key", {type: "application/json"}));
            document.getElementById("key-drop").dispatchEvent(
                new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        path.read_text(),
    )
    page.page.wait_for_selector("#signed-in:not([hidden])")
    assert key_id_in_browser(page.page) == kim.key_id


def test_a_file_that_is_not_a_key_is_refused_on_the_page(
    door: Site, page: Watched, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text('{"kind": "shopping-list"}')
    page.page.goto(door.url + "/join")
    page.page.wait_for_selector("body[data-join-ready]")
    page.page.set_input_files("#key-file", str(bad))
    page.page.wait_for_selector("#import-error:not([hidden])")
    assert "not a Commonweal member key file" in page.page.inner_text("#import-error")
    assert key_id_in_browser(page.page) is None
    page.check("join-bad-key-file")


def test_a_member_makes_an_invite_in_the_browser_that_someone_joins_with(
    door: Site, browser: Any
) -> None:
    ada_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    new_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        ada = Watched(ada_ctx.new_page())
        ada.page.goto(door.url + "/join")
        sign_in(ada.page, door.keys["Ada"], "Ada")
        ada.page.reload()
        ada.page.wait_for_selector("#invite-card:not([hidden])")
        ada.page.click("#invite-create")
        ada.page.wait_for_selector("#invite-made:not([hidden])")
        link = ada.page.input_value("#invite-link")
        assert link.startswith(door.url + "/join?invite=")
        ada.check("join-invite-made")
        last = entries(door)[-1]
        assert (
            last["event"]["kind"] == "invite.create"
            and last["event"]["actor"] == door.keys["Ada"].key_id
        )
        newcomer = Watched(new_ctx.new_page())
        key_id = join_in(newcomer.page, link, "Noor")
        assert members(door)["Noor"]["key"] == key_id
    finally:
        ada_ctx.close()
        new_ctx.close()


def test_the_webhook_form_sets_and_clears_the_members_webhook(door: Site, page: Watched) -> None:
    ada = door.keys["Ada"]
    page.page.goto(door.url + "/join")
    sign_in(page.page, ada, "Ada")
    page.page.reload()
    page.page.wait_for_selector("#notify-card form[data-webhook]")
    page.page.fill("#webhook-url", "ftp://nope.example/")
    page.page.click("form[data-webhook] button[value=save]")
    page.page.wait_for_selector(".webhook-status.error")
    assert "must start with https://" in page.page.inner_text(".webhook-status")
    page.check("join-webhook-refused", allow_errors="400")
    page.page.fill("#webhook-url", "https://chat.example/hooks/ada")
    page.page.click("form[data-webhook] button[value=save]")
    page.page.wait_for_selector(".webhook-status.ok")
    page.check("join-webhook-saved", allow_errors="400")

    def hook() -> Any:
        with HubClient(door.url) as c:
            return c.webhook(ada)["url"]

    assert off_the_browser_thread(hook) == "https://chat.example/hooks/ada"
    page.page.click("form[data-webhook] button[value=clear]")
    page.page.wait_for_selector(".webhook-status.ok >> text=Removed")
    assert off_the_browser_thread(hook) is None


def test_an_approval_community_says_the_newcomer_is_pending(
    module_databases: Databases, tmp_path: Path, page: Watched
) -> None:
    directory = tmp_path / "hub"

    def build() -> None:
        hub, _ = make_hub(directory, module_databases.new(), join_policy="approval")
        hub.close()

    off_the_browser_thread(build)
    with served(directory) as url:
        page.page.goto(url + "/join")
        page.page.wait_for_selector("body[data-join-ready]")
        assert "a member approves each newcomer" in page.page.inner_text("#visitor")
        assert page.page.locator("#join-invite").count() == 0
        join_in(page.page, url + "/join", "Ravi")
        page.page.check("#backup-saved")
        page.page.click("#backup-continue")
        page.page.wait_for_selector("#welcome-pending:not([hidden])")
        assert "pending" in page.page.inner_text("#welcome")
        page.check("join-pending")
        assert members(Site(directory, url, {}))["Ravi"]["status"] == "pending"
