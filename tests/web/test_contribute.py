"""The contribute page in a real browser: a member drops a file, the page checks it against
the charter, signs it in batches and shows the hub's screening report. Bad files and a
tampered event write nothing to the log."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from commonweal.ledger.event import SignedEvent
from commonweal.ledger.keys import SigningKey
from tests.kit.browser import Watched, served, sign_in
from tests.kit.communities import community, digit_items, text_items
from tests.kit.databases import Databases
from tests.web.conftest import Site, off_the_browser_thread

# A 4xx the page caused on purpose shows as a console error for the failed request.
REFUSED = r"status of 4\d\d"


def log_size(url: str) -> int:
    return int(httpx.get(url + "/api/v1/ledger/checkpoint").text.splitlines()[1])


def entries(url: str, start: int) -> list[dict[str, Any]]:
    """Log entries from ``start`` on, each with its signature checked again here."""
    found: list[dict[str, Any]] = []
    while True:
        page = httpx.get(url + "/api/v1/ledger/entries", params={"start": start}).json()
        found += page["entries"]
        start += len(page["entries"])
        if not page["entries"] or start >= page["size"]:
            break
    for e in found:
        SignedEvent.from_wire({"event": e["event"], "sig": e["sig"]})
    return found


def members_wrote(site: Site, start: int) -> list[dict[str, Any]]:
    """Events members signed since ``start`` (the hub's own scheduled jobs, such as a
    reward epoch, may append meanwhile: they are not the page's doing)."""
    keys = {k.key_id for k in site.keys.values()}
    return [e["event"] for e in entries(site.url, start) if e["event"]["actor"] in keys]


def csv_file(name: str, rows: list[list[str]]) -> dict[str, Any]:
    import csv

    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return {"name": name, "mimeType": "text/csv", "buffer": buf.getvalue().encode()}


def open_contribute(site: Site, page: Watched, who: str = "Grace") -> Any:
    p = page.page
    p.goto(site.url + "/contribute")
    sign_in(p, site.keys[who], who)
    p.reload()
    p.wait_for_selector("body[data-contribute-ready]")
    p.wait_for_selector("#identity a[href='/me']")
    return p


def test_a_chosen_csv_is_checked_signed_and_screened(site: Site, page: Watched) -> None:
    p = open_contribute(site, page)
    what = p.inner_text("section[aria-labelledby=h-what]")
    assert "text and label" in what and "river" in what and "market" in what
    page.check("contribute-empty", allow_errors="/w/")
    before = log_size(site.url)
    copy = text_items(300)[0]  # the site's first item, word for word
    rows = [
        ["text", "label"],
        [copy["text"], copy["label"]],
        ["Flood warning: write to grace.hopper@example.org, or call +44 20 7946 0958", "river"],
        ['The stall sells "fresh" bread, cheese and apples at the market', "market"],
        ["A second line\nof the same text about the canal bank", "river"],
    ]
    p.set_input_files("#file", files=[csv_file("mine.csv", rows)])
    p.wait_for_selector("#checked.ok")
    assert "4 items ready to send" in p.inner_text("#checked")
    p.click("#send")
    p.wait_for_selector("#report:not([hidden])")
    counts = p.inner_text("#counts")
    assert "4 sent" in counts and "3 in review" in counts and "1 refused" in counts
    assert "1 duplicate refused" in counts and "1 with personal data redacted" in counts
    rows_text = p.inner_text("#report-rows")
    assert "exact duplicate of item" in rows_text
    assert "personal data redacted" in rows_text and "email" in rows_text
    page.check("contribute-report", allow_errors="/w/")

    new = entries(site.url, before)
    submits = [e for e in new if e["event"]["kind"] == "contribution.submit"]
    assert len(submits) == 1 and submits[0]["event"]["actor"] == site.keys["Grace"].key_id
    meta = submits[0]["event"]["body"]["items"]
    assert [m["label"] for m in meta] == ["river", "river", "market", "river"]
    assert all(m["license"] == "CC-BY-4.0" and m["consent"] == ["train", "evaluate"] for m in meta)


def test_five_hundred_dropped_items_go_in_several_batches(site: Site, page: Watched) -> None:
    p = open_contribute(site, page, "Tim")
    before = log_size(site.url)
    items = text_items(500, seed=7)
    for n, item in enumerate(items):
        item["text"] = f"Dropped {n}: " + item["text"]
    rows = [["text", "label"], *([i["text"], i["label"]] for i in items)]
    text = csv_file("many.csv", rows)["buffer"].decode()
    posts: list[str] = []
    p.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    seen: list[float] = []
    p.expose_function("sawProgress", lambda v: seen.append(float(v)))
    p.evaluate(
        """() => new MutationObserver(() => window.sawProgress(
              document.getElementById("progress").value))
            .observe(document.getElementById("progress-words"), {childList: true})"""
    )
    # A drop, as a person drags a file from their desktop onto the zone.
    p.evaluate(
        """(text) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], "many.csv", {type: "text/csv"}));
            const zone = document.getElementById("drop");
            const how = {dataTransfer: dt, bubbles: true, cancelable: true};
            zone.dispatchEvent(new DragEvent("dragover", how));
            zone.dispatchEvent(new DragEvent("drop", how));
        }""",
        text,
    )
    p.wait_for_selector("#checked.ok")
    assert "500 items ready" in p.inner_text("#checked")
    p.click("#send")
    p.wait_for_selector("#report:not([hidden])", timeout=120_000)
    assert p.eval_on_selector("#progress", "e => e.value") == 1
    assert "All 5 batches screened" in p.inner_text("#progress-words")
    assert "500 sent" in p.inner_text("#counts") and "500 in review" in p.inner_text("#counts")
    assert len(posts) == 5 and all(u.endswith("/api/v1/contributions") for u in posts)
    assert any(0 < v < 1 for v in seen), seen  # the bar moved between batches
    page.check("contribute-500", allow_errors="/w/")
    submits = [e for e in entries(site.url, before) if e["event"]["kind"] == "contribution.submit"]
    assert [len(e["event"]["body"]["items"]) for e in submits] == [100] * 5
    assert {e["event"]["actor"] for e in submits} == {site.keys["Tim"].key_id}


@pytest.mark.parametrize(
    ("name", "rows", "says"),
    [
        (
            "wrong-columns",
            [["sentence", "tag"], ["The river rose", "river"]],
            "columns are sentence, tag; this community's items need the columns text, label",
        ),
        (
            "label-outside",
            [["text", "label"], ["The river rose", "river"], ["A cake", "bakery"]],
            'line 3: the label "bakery" is not one of river, market',
        ),
        (
            "too-large",
            [["text", "label"], ["The river rose", "river"], ["flood " * 800, "river"]],
            "line 3: the text is 4800 bytes; the charter allows 4096",
        ),
    ],
)
def test_a_bad_file_is_explained_and_nothing_is_sent(
    site: Site, page: Watched, name: str, rows: list[list[str]], says: str
) -> None:
    p = open_contribute(site, page)
    before = log_size(site.url)
    p.set_input_files("#file", files=[csv_file(f"{name}.csv", rows)])
    p.wait_for_selector("#checked.error")
    assert says in p.inner_text("#problems")
    assert "nothing was sent" in p.inner_text("#checked")
    assert p.is_disabled("#send")
    page.check(f"contribute-bad-{name}", allow_errors="/w/")
    assert members_wrote(site, before) == []


def test_a_tampered_batch_is_refused_and_the_page_says_why(site: Site, page: Watched) -> None:
    p = open_contribute(site, page, "Alan")
    before = log_size(site.url)

    def tamper(route: Any) -> None:
        doc = json.loads(route.request.post_data)
        doc["event"]["body"]["items"][0]["license"] = "CC0-1.0"  # altered after signing
        route.continue_(post_data=json.dumps(doc))

    p.route("**/api/v1/contributions", tamper)
    rows = [["text", "label"], ["Alan saw the mill wheel turn at the canal", "river"]]
    p.set_input_files("#file", files=[csv_file("alan.csv", rows)])
    p.wait_for_selector("#checked.ok")
    p.click("#send")
    p.wait_for_selector("#flash.error")
    said = p.inner_text("#flash")
    assert "refused batch 1 of 1" in said and "signature" in said and "Nothing was recorded" in said
    page.check("contribute-tampered", allow_errors=REFUSED + "|/w/")
    assert members_wrote(site, before) == []


# -- an image community ---------------------------------------------------------------------


def build_digits(directory: Path, database: str) -> dict[str, SigningKey]:
    client, keys = community(directory, database, items=digit_items(0, 12))
    client.close()
    return keys


@pytest.fixture(scope="module")
def digits(module_databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("digits") / "hub"
    keys = off_the_browser_thread(build_digits, directory, module_databases.new())
    with served(directory) as url:
        yield Site(directory, url, keys)


def test_a_folder_of_images_with_one_that_is_not_an_image(digits: Site, page: Watched) -> None:
    import base64

    p = open_contribute(digits, page)
    before = log_size(digits.url)
    good = [base64.b64decode(i["image"]) for i in digit_items(100, 2)]
    files = [
        {
            "name": "labels.csv",
            "mimeType": "text/csv",
            "buffer": b"file,label\na.png,4\nb.png,1\nfake.png,7\n",
        },
        {"name": "a.png", "mimeType": "image/png", "buffer": good[0]},
        {"name": "b.png", "mimeType": "image/png", "buffer": good[1]},
        {"name": "fake.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n not a picture"},
    ]
    p.set_input_files("#file", files=files)
    p.wait_for_selector("#checked.error")
    problems = p.inner_text("#problems")
    assert "labels.csv line 4 (fake.png): the image is not a readable PNG or JPEG image" in problems
    assert "a.png" not in problems and "b.png" not in problems
    page.check("contribute-bad-image", allow_errors="/w/")
    assert members_wrote(digits, before) == []

    files[0]["buffer"] = b"file,label\na.png,4\nb.png,1\n"
    p.set_input_files("#file", files=files[:3])
    p.wait_for_selector("#checked.ok")
    p.click("#send")
    p.wait_for_selector("#report:not([hidden])")
    assert "2 in review" in p.inner_text("#counts")
    page.check("contribute-images", allow_errors="/w/")


def test_a_folder_row_may_name_only_a_dropped_file_within_an_item_size(
    digits: Site, page: Watched
) -> None:
    import base64

    p = open_contribute(digits, page)
    before = log_size(digits.url)
    good = base64.b64decode(digit_items(100, 1)[0]["image"])
    files = [
        {
            "name": "labels.csv",
            "mimeType": "text/csv",
            "buffer": b"file,label\na.png,4\n../a.png,4\n/etc/passwd,1\nbig.png,7\n",
        },
        {"name": "a.png", "mimeType": "image/png", "buffer": good},
        # Larger than an item (the community's 4096 bytes) can be: refused unread.
        {"name": "big.png", "mimeType": "image/png", "buffer": good + bytes(5000)},
    ]
    p.set_input_files("#file", files=files)
    p.wait_for_selector("#checked.error")
    problems = p.inner_text("#problems")
    assert 'line 3: names "../a.png", which is not in the folder' in problems
    assert 'line 4: names "/etc/passwd", which is not in the folder' in problems
    assert f'line 5: "big.png" is {len(good) + 5000} bytes; an item is at most 4096' in problems
    assert "line 2" not in problems
    page.check("contribute-folder-escapes", allow_errors="/w/")
    assert members_wrote(digits, before) == []


def test_the_page_reads_csv_as_python_does(site: Site, page: Watched) -> None:
    import csv

    text = (
        '\ufefftext,label\r\n"a, quoted ""word""",river\n\n"two\nlines",market\r'
        'plain "inner" quote,river\nlast,market'
    )
    p = page.page
    p.goto(site.url + "/contribute")
    got = p.evaluate(
        """async (text) => (await import("/static/js/csv.js")).parseCsv(text)
            .map((r) => r.fields)""",
        text,
    )
    want = [row for row in csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")) if row]
    assert got == want
