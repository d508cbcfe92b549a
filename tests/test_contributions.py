"""Contributions end to end through the SDK (the real app in-process), on both databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from commonweal.client import HubClient
from commonweal.community.charter import validate_charter
from commonweal.errors import (
    BadSignature,
    Conflict,
    Forbidden,
    InvalidInput,
    Replay,
    TooLarge,
    Unauthorized,
)
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.store.schema import content_blobs, content_keys
from commonweal.verify import verify_hub

TEXTS = [
    "The river near the old mill floods every spring and the town moves the market uphill.",
    "Volunteers planted two hundred oak saplings along the northern edge of the common.",
    "Our library now lends seeds as well as books, and the tomato varieties went first.",
    "The night bus timetable changed again, so the late shift walks home through the park.",
    "A new footbridge opened over the canal, cutting the walk to school by ten minutes.",
    "The bakery on Station Road donates its unsold bread to the shelter every evening.",
]


@pytest.fixture
def coop(tmp_path: Path, database_url: str) -> Iterator[dict[str, Any]]:
    charter = validate_charter(
        {
            "name": "Text Co-op",
            "task": {"kind": "text-classification", "labels": ["news", "notice"]},
            "review": {"reviews_needed": 2, "newcomer_reviews_needed": 2},
            "limits": {"max_item_bytes": 600},
        }
    )
    hub, founder = Hub.init(
        tmp_path / "hub", charter=charter, founder_name="Ada", database=database_url
    )
    hub.close()
    with HubClient(str(tmp_path / "hub")) as c:
        keys = {"Ada": founder}
        for name in ("Grace", "Alan", "Tim"):
            keys[name] = SigningKey.generate()
            c.join(keys[name], name)
        yield {
            "client": c,
            "hub": c.embedded_hub,
            "keys": keys,
            "dir": tmp_path / "hub",
            "url": database_url,
        }


def items(*texts: str, label: str = "news") -> list[dict[str, Any]]:
    return [{"text": t, "label": label} for t in texts]


def all_bytes(coop: dict[str, Any]) -> bytes:
    """Every byte the hub wrote: its directory (database, WAL, keys) and, on PostgreSQL, a
    dump of every table."""
    blob = b"".join(p.read_bytes() for p in Path(coop["dir"]).rglob("*") if p.is_file())
    if coop["url"].startswith("postgresql"):
        engine = create_engine(coop["url"])
        with engine.connect() as conn:
            from commonweal.store.schema import metadata

            for table in metadata.sorted_tables:
                for row in conn.execute(select(table)):
                    blob += repr(tuple(row)).encode()
        engine.dispose()
    return blob


def test_contributed_text_is_stored_encrypted_and_never_logged(coop: dict[str, Any]) -> None:
    c, keys = coop["client"], coop["keys"]
    receipt = c.contribute(keys["Grace"], items(*TEXTS[:3]))
    assert [i["status"] for i in receipt["items"]] == ["in_review"] * 3
    ids = [i["id"] for i in receipt["items"]]
    assert c.content(keys["Grace"], ids[0]) == {"text": TEXTS[0], "label": "news"}
    leaves = b"".join(e["leaf"].encode() for e in c.iter_entries())
    dumped = all_bytes(coop)
    for t in TEXTS[:3]:
        assert t.encode() not in dumped  # not in the database, the WAL, or the log
        assert t.encode() not in leaves
    verify_hub(coop["hub"])


def test_duplicates_are_refused_and_near_duplicates_flagged(coop: dict[str, Any]) -> None:
    c, keys = coop["client"], coop["keys"]
    first = c.contribute(keys["Grace"], items(TEXTS[0]))["items"][0]
    again = c.contribute(keys["Alan"], items("  " + TEXTS[0].upper() + "  "))["items"][0]
    assert again["status"] == "refused" and first["id"] in again["reasons"][0]
    long = (
        "Volunteers planted two hundred oak saplings along the northern edge of the common, "
        "and the school children watered them all through the dry summer months of the year."
    )
    original = c.contribute(keys["Grace"], items(long))["items"][0]
    near = c.contribute(keys["Tim"], items(long.replace("dry", "hot")))["items"][0]
    assert near["status"] == "in_review" and "near-duplicate" in near["flags"]
    assert near["report"]["near_duplicates"][0]["id"] == original["id"]
    unrelated = c.contribute(keys["Tim"], items(TEXTS[3]))["items"][0]
    assert unrelated["flags"] == []


def test_personal_data_is_redacted_and_reported_by_kind_only(coop: dict[str, Any]) -> None:
    c, keys = coop["client"], coop["keys"]
    text = "Flood warning for the lower town: write to jo.bloggs@example.org or call 07700 900123."
    r = c.contribute(keys["Grace"], items(text, label="notice"))["items"][0]
    assert r["status"] == "in_review" and "personal-data-redacted" in r["flags"]
    kinds = {f["kind"] for f in r["report"]["personal_data"]}
    assert "email" in kinds
    stored = c.content(keys["Grace"], r["id"])["text"]
    assert "jo.bloggs@example.org" not in stored and "[EMAIL]" in stored
    assert b"jo.bloggs@example.org" not in all_bytes(coop)


@pytest.mark.parametrize(
    ("bad", "exc", "words"),
    [
        ({"text": "fine", "label": "sports"}, InvalidInput, "not one of"),
        ({"text": "fine"}, InvalidInput, "missing"),
        ({"text": "x" * 700, "label": "news"}, TooLarge, "bytes"),
        ({"text": "junk \x00\x01\x02", "label": "news"}, InvalidInput, "binary"),
        ({"text": "fine", "label": "news", "extra": 1}, InvalidInput, "unexpected"),
    ],
)
def test_bad_items_refuse_the_whole_batch(
    coop: dict[str, Any], bad: dict[str, Any], exc: type[Exception], words: str
) -> None:
    c, keys, hub = coop["client"], coop["keys"], coop["hub"]
    size = hub.log.size()
    with pytest.raises(exc, match=words):
        c.contribute(keys["Grace"], [*items(TEXTS[1]), bad])
    assert hub.log.size() == size
    with hub.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(content_blobs)).scalar() == 0
    verify_hub(hub)


def test_forged_or_replayed_batches_are_refused(coop: dict[str, Any]) -> None:
    keys, hub = coop["keys"], coop["hub"]
    from commonweal.wire import commitment_of

    salt = os.urandom(16)
    item = {"text": TEXTS[2], "label": "news"}
    commitment = commitment_of(salt, item)
    meta = {
        "id": commitment[:32],
        "commitment": commitment,
        "license": "CC-BY-4.0",
        "consent": ["train"],
        "bytes": 200,
        "label": "news",
    }
    import base64

    from commonweal.ledger.canonical import canonical

    meta["bytes"] = len(canonical(item))
    ev = sign_event(keys["Grace"], "contribution.submit", {"items": [meta]}, hub=hub.origin)
    content = [{"id": meta["id"], "salt": base64.b64encode(salt).decode(), "item": item}]
    swapped = [{**content[0], "item": {"text": TEXTS[3], "label": "news"}}]
    with pytest.raises(InvalidInput, match="commitment"):
        hub.data.contribute({**ev.to_wire(), "content": swapped})
    forged = ev.to_wire()
    forged["event"] = {**forged["event"], "actor": keys["Alan"].key_id}
    with pytest.raises(BadSignature):
        hub.data.contribute({**forged, "content": content})
    hub.data.contribute({**ev.to_wire(), "content": content})
    with pytest.raises(Replay):
        hub.data.contribute({**ev.to_wire(), "content": content})
    verify_hub(hub)


def test_peer_review_reaches_a_recomputable_decision(coop: dict[str, Any]) -> None:
    c, keys, hub = coop["client"], coop["keys"], coop["hub"]
    r = c.contribute(keys["Grace"], items(TEXTS[4], label="notice"))["items"][0]
    with pytest.raises(Forbidden, match="own"):
        c.review(keys["Grace"], r["id"], "accept")
    with pytest.raises(Unauthorized):
        c._request("GET", "/api/v1/reviews/next")
    nxt = c.next_review(keys["Alan"])
    assert nxt is not None and nxt["id"] == r["id"] and nxt["content"]["text"] == TEXTS[4]
    c.review(keys["Alan"], r["id"], "relabel", label="news")
    with pytest.raises(Conflict, match="already reviewed"):
        c.review(keys["Alan"], r["id"], "accept")
    with pytest.raises(InvalidInput, match="reason"):
        c.review(keys["Tim"], r["id"], "flag")
    c.review(keys["Tim"], r["id"], "relabel", label="news")
    row = c.contribution(r["id"])
    assert row["status"] == "accepted" and row["decided_label"] == "news"
    decisions = [e for e in c.iter_entries() if e["event"]["kind"] == "review.decide"]
    assert decisions and decisions[-1]["event"]["body"]["decisions"][0]["id"] == r["id"]
    report = verify_hub(hub)
    assert any("review decisions recomputed" in line for line in report.checks)
    assert {x["key"] for x in c.reliability()} == {keys["Alan"].key_id, keys["Tim"].key_id}


def test_withdrawal_erases_content_and_keys(coop: dict[str, Any]) -> None:
    c, keys, hub = coop["client"], coop["keys"], coop["hub"]
    secret_text = "Only Grace knows that the allotment key hangs behind the blue door."
    r = c.contribute(keys["Grace"], items(secret_text, TEXTS[5]))["items"]
    ids = [i["id"] for i in r]
    with hub.engine.connect() as conn:
        key_bytes = conn.execute(
            select(content_keys.c.key).where(content_keys.c.id == ids[0])
        ).scalar_one()
    with pytest.raises(Forbidden, match="not yours"):
        c.withdraw(keys["Alan"], ids[:1])
    c.withdraw(keys["Grace"], ids[:1])
    with pytest.raises(Conflict, match="already withdrawn"):
        c.withdraw(keys["Grace"], ids[:1])
    assert c.contribution(ids[0])["status"] == "withdrawn"
    dumped = all_bytes(coop)
    assert secret_text.encode() not in dumped
    assert bytes(key_bytes) not in dumped  # the key itself is gone: crypto-shredded
    with pytest.raises(Exception, match="no content"):
        c.content(keys["Grace"], ids[0])
    assert c.next_review(keys["Alan"])["id"] == ids[1]  # the withdrawn one is not offered
    verify_hub(hub)


def test_a_member_can_export_everything_they_gave(coop: dict[str, Any], tmp_path: Path) -> None:
    c, keys = coop["client"], coop["keys"]
    r = c.contribute(keys["Grace"], items(TEXTS[1], TEXTS[2]))["items"]
    c.withdraw(keys["Grace"], [r[1]["id"]])
    doc = c.export(keys["Grace"])
    by_id = {x["id"]: x for x in doc["contributions"]}
    assert by_id[r[0]["id"]]["content"]["text"] == TEXTS[1]
    assert by_id[r[1]["id"]]["content"] is None and by_id[r[1]["id"]]["status"] == "withdrawn"
    kinds = [e["event"]["kind"] for e in doc["events"]]
    assert kinds.count("contribution.submit") == 1 and "contribution.withdraw" in kinds
    assert "member.join" in kinds
    with pytest.raises(Forbidden):
        c._signed_get(keys["Alan"], f"/members/{keys['Grace'].key_id}/export")


def test_a_hub_that_logs_a_decision_the_reviews_do_not_support_is_caught(
    coop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, keys, hub = coop["client"], coop["keys"], coop["hub"]
    r = c.contribute(keys["Grace"], items(TEXTS[0]))["items"][0]
    from commonweal.errors import VerificationFailed
    from commonweal.hub.decisions import pending_decisions

    def dishonest(state: Any, upto: int) -> Any:
        body = pending_decisions(state, upto)
        if body:  # the reviews say reject; the hub logs accept
            body["decisions"] = [{**d, "outcome": "accepted"} for d in body["decisions"]]
        return body

    monkeypatch.setattr(hub, "_owed_decisions", dishonest)  # this hub lies; verify must not
    c.review(keys["Alan"], r["id"], "reject")
    c.review(keys["Tim"], r["id"], "reject")
    assert c.contribution(r["id"])["status"] == "accepted"
    entry = next(e["index"] for e in c.iter_entries() if e["event"]["kind"] == "review.decide")
    with pytest.raises(VerificationFailed, match=f"entry {entry}: its decisions differ"):
        verify_hub(hub)


def test_a_reviewer_can_pass_over_items_for_now(coop: dict[str, Any]) -> None:
    c, keys = coop["client"], coop["keys"]
    ids = [i["id"] for i in c.contribute(keys["Grace"], items(TEXTS[0], TEXTS[1]))["items"]]
    first = c.next_review(keys["Alan"])
    assert first is not None and first["id"] in ids
    other = c.next_review(keys["Alan"], skip=[first["id"]])
    assert other is not None and other["id"] == next(i for i in ids if i != first["id"])
    assert c.next_review(keys["Alan"], skip=ids) is None
    with pytest.raises(InvalidInput, match="at most 200"):
        c.next_review(keys["Alan"], skip=[f"{n:032x}" for n in range(201)])


def test_reviewers_asking_at_once_are_spread_over_the_queue(coop: dict[str, Any]) -> None:
    """Reviewers who ask together are not all handed the oldest item (all but the first
    reviews of it would be refused once it is decided): each takes the front of the queue
    in an order of their own, and every reviewer is still offered every item."""
    c, keys = coop["client"], coop["keys"]
    ids = [i["id"] for i in c.contribute(keys["Grace"], items(*TEXTS[:6]))["items"]]
    reviewers = [SigningKey.generate() for _ in range(6)]
    for n, key in enumerate(reviewers):
        c.join(key, f"Reviewer{n}")
    firsts = {c.next_review(key)["id"] for key in reviewers}
    assert len(firsts) > 1, "every reviewer was handed the same item"
    for key in reviewers:
        seen: list[str] = []
        while (nxt := c.next_review(key, skip=seen)) is not None:
            seen.append(nxt["id"])
        assert sorted(seen) == sorted(ids)
