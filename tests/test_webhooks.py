"""Members' webhooks: set, read and cleared by the member alone with a signed request, kept
out of the public log, and pushed to by the hub's notifier (what is new, once per change,
retried with backoff, no redirects) — against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from commonweal.client import HubClient
from commonweal.community.charter import validate_charter
from commonweal.errors import Forbidden, InvalidInput, Unauthorized
from commonweal.hub import Hub
from commonweal.hub.webhooks import Notifier, news, snapshot
from commonweal.ledger.keys import SigningKey
from commonweal.store import webhooks as store
from commonweal.store.database import write_connection
from tests.kit import text_items
from tests.kit.browser import served


class Receiver:
    """An HTTP server on 127.0.0.1 that records what is POSTed to it; ``status`` sets its
    answer, and ``/moved`` redirects to ``/elsewhere``."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.status = 204
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append((self.path, json.loads(body)))
                if self.path == "/moved":
                    self.send_response(307)
                    self.send_header("Location", "/elsewhere")
                else:
                    self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def co_op(tmp_path: Path, database_url: str) -> Iterator[tuple[HubClient, dict[str, SigningKey]]]:
    """A text community of Ada (founder), Grace and Tim; nothing waits for review yet."""
    doc = {
        "name": "Hook Co-op",
        "task": {"kind": "text-classification", "labels": ["river", "market"]},
        "review": {"reviews_needed": 1, "newcomer_reviews_needed": 1, "consensus": "majority"},
    }
    hub, ada = Hub.init(
        tmp_path / "hub", charter=validate_charter(doc), founder_name="Ada", database=database_url
    )
    hub.close()
    keys = {"Ada": ada, "Grace": SigningKey.generate(), "Tim": SigningKey.generate()}
    with HubClient(str(tmp_path / "hub")) as c:
        for name in ("Grace", "Tim"):
            c.join(keys[name], name)
        yield c, keys


def test_only_the_member_sets_reads_and_clears_their_webhook_and_it_stays_off_the_log(
    co_op: tuple[HubClient, dict[str, SigningKey]],
) -> None:
    c, keys = co_op
    grace, tim = keys["Grace"], keys["Tim"]
    size = c.embedded_hub.log.size()
    url = "https://chat.example/hooks/grace-secret-123"
    assert c.set_webhook(grace, url)["url"] == url
    assert c.webhook(grace) == {
        "member": grace.key_id,
        "url": url,
        "failures": 0,
        "last_error": None,
    }
    assert c.webhook(tim)["url"] is None
    # Tim signs a request for Grace's webhook: refused, read or write.
    http = c._http
    target = f"/api/v1/members/{grace.key_id}/webhook"
    from commonweal.wire import AUTH_HEADER, auth_header

    for method in ("GET", "PUT", "DELETE"):
        body = b'{"url":"https://evil.example/"}' if method == "PUT" else b""
        r = http.request(
            method,
            target,
            headers={AUTH_HEADER: auth_header(tim, method, target, body=body)},
            content=body,
        )
        assert r.status_code == 403 and "theirs alone" in r.json()["error"]["message"]
    assert http.put(target, json={"url": "https://evil.example/"}).status_code == 401
    with pytest.raises(Unauthorized):
        HubClient._request(c, "GET", target)
    # The URL is not an event: the log did not grow and holds no trace of it.
    assert c.embedded_hub.log.size() == size
    assert all(url not in json.dumps(e) for e in c.iter_entries(0, size))
    assert c.set_webhook(grace, None)["url"] is None
    assert c.webhook(grace)["url"] is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://files.example/x", "must start with https://"),
        ("file:///etc/passwd", "must start with https://"),
        ("https://", "names no host"),
        ("https://user:pw@chat.example/", "user name or password"),
        ("https://chat.example/a b", "spaces or control characters"),
        ("https://chat.example/" + "a" * 2000, "the limit is 2000"),
        ("", "URL is missing"),
    ],
)
def test_a_bad_webhook_url_is_refused_with_the_reason(
    co_op: tuple[HubClient, dict[str, SigningKey]], url: str, words: str
) -> None:
    c, keys = co_op
    with pytest.raises(InvalidInput, match=words):
        c.set_webhook(keys["Grace"], url)
    assert c.webhook(keys["Grace"])["url"] is None


def test_a_key_that_is_no_member_has_no_webhook(
    co_op: tuple[HubClient, dict[str, SigningKey]],
) -> None:
    c, _ = co_op
    with pytest.raises(Forbidden, match="only active members"):
        c.set_webhook(SigningKey.generate(), "https://chat.example/")


def test_the_notifier_pushes_what_is_new_once_per_change(
    co_op: tuple[HubClient, dict[str, SigningKey]], receiver: Receiver
) -> None:
    c, keys = co_op
    hub = c.embedded_hub
    notifier = Notifier(hub, interval=0.01)
    c.set_webhook(keys["Grace"], receiver.url + "/grace")
    assert notifier.tick() == 0 and receiver.posts == []  # nothing waits yet
    c.contribute(keys["Tim"], text_items(3))
    assert notifier.tick() == 1
    path, doc = receiver.posts[-1]
    assert path == "/grace" and doc["member"] == keys["Grace"].key_id
    assert doc["community"] == "Hook Co-op" and doc["origin"] == hub.origin
    assert doc["new"] == {"reviews": 3} and doc["waiting"]["reviews"] == 3
    assert doc["text"] == "3 items wait for your review"
    assert notifier.tick() == 0 and len(receiver.posts) == 1  # told once
    # Grace reviews one: fewer wait, nothing to tell. Two more arrive: 4 > 3, told again.
    item = c.contributions(status="in_review")[0]["id"]
    c.review(keys["Grace"], item, "accept")
    assert notifier.tick() == 0 and len(receiver.posts) == 1
    c.contribute(keys["Ada"], text_items(2, seed=1))
    assert notifier.tick() == 1 and receiver.posts[-1][1]["new"] == {"reviews": 4}
    # Tim has no webhook; Ada's contribution waits for him too, and nothing went to him.
    assert {p for p, _ in receiver.posts} == {"/grace"}


def test_a_failed_push_is_retried_with_backoff_and_a_redirect_is_not_followed(
    co_op: tuple[HubClient, dict[str, SigningKey]], receiver: Receiver
) -> None:
    c, keys = co_op
    hub = c.embedded_hub
    # The first backoff is 2 × interval, on the wall clock: long enough that the second
    # tick comes before it ends on a loaded CI machine (0.1 s did not, once).
    notifier = Notifier(hub, interval=1.0)
    grace = keys["Grace"]
    c.set_webhook(grace, receiver.url + "/grace")
    c.contribute(keys["Tim"], text_items(2))
    receiver.status = 500
    assert notifier.tick() == 0 and len(receiver.posts) == 1
    hook = c.webhook(grace)
    assert hook["failures"] == 1 and "answered 500" in hook["last_error"]
    assert notifier.tick() == 0 and len(receiver.posts) == 1  # waiting out the backoff
    time.sleep(2.1)  # the first backoff has passed
    receiver.status = 200
    assert notifier.tick() == 1 and len(receiver.posts) == 2
    assert receiver.posts[-1][1]["new"] == {"reviews": 2}  # the same news, not lost
    assert c.webhook(grace)["failures"] == 0
    # A redirect counts as a failure and is not followed.
    c.set_webhook(grace, receiver.url + "/moved")
    assert notifier.tick() == 0
    assert [p for p, _ in receiver.posts] == ["/grace", "/grace", "/moved"]
    assert "answered 307" in c.webhook(grace)["last_error"]


def test_an_unreachable_webhook_does_not_stop_the_others(
    co_op: tuple[HubClient, dict[str, SigningKey]], receiver: Receiver
) -> None:
    c, keys = co_op
    notifier = Notifier(c.embedded_hub, interval=0.01)
    dead = Receiver()
    dead.close()  # a port nobody listens on any more
    c.set_webhook(keys["Ada"], dead.url + "/ada")
    c.set_webhook(keys["Grace"], receiver.url + "/grace")
    c.contribute(keys["Tim"], text_items(1))
    assert notifier.tick() == 1
    assert [p for p, _ in receiver.posts] == ["/grace"]
    assert "could not be reached" in c.webhook(keys["Ada"])["last_error"]


def test_two_servers_never_push_the_same_change_twice(
    co_op: tuple[HubClient, dict[str, SigningKey]],
) -> None:
    c, keys = co_op
    hub = c.embedded_hub
    c.set_webhook(keys["Grace"], "https://chat.example/")
    with hub.read() as conn:
        hook = store.get_webhook(conn, keys["Grace"].key_id)
    assert hook is not None
    # Both servers read the row before either claimed it; only one claim wins.
    with write_connection(hub.engine) as conn:
        first = store.claim(conn, hook, '{"reviews": 1}')
    with write_connection(hub.engine) as conn:
        second = store.claim(conn, hook, '{"reviews": 1}')
    assert (first, second) == (True, False)


def test_news_is_what_the_member_was_not_told() -> None:
    vote = {"proposal": 3, "title": "Release v2", "ends": "2030-01-02T00:00:00Z"}
    reveal = {"proposal": 4, "title": "Spend", "reveal_ends": "2030-01-03T00:00:00Z"}
    payout = {"payout": 2, "entry": 90, "credits": 17}
    w = {"reviews": 2, "vote": [vote], "reveal": [reveal], "payout": payout}
    assert news({}, w) == {"reviews": 2, "vote": [vote], "reveal": [reveal], "payout": payout}
    assert news(snapshot(w), w) == {}
    assert news(snapshot(w), {**w, "reviews": 1}) == {}
    assert news(snapshot(w), {**w, "payout": {**payout, "payout": 3}})["payout"]["payout"] == 3


def test_commonweal_serve_pushes_to_a_webhook_on_its_own(
    co_op: tuple[HubClient, dict[str, SigningKey]], receiver: Receiver
) -> None:
    c, keys = co_op
    directory = c.embedded_hub.directory
    assert directory is not None
    with served(directory) as url, HubClient(url) as remote:
        remote.set_webhook(keys["Grace"], receiver.url + "/grace")
        remote.contribute(keys["Tim"], text_items(2))
        deadline = time.monotonic() + 30
        while not receiver.posts and time.monotonic() < deadline:
            time.sleep(0.2)  # the notifier wakes every few seconds
    assert [(p, d["new"]) for p, d in receiver.posts] == [("/grace", {"reviews": 2})]
