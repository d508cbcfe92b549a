"""What the member pages read: members named as the CLI names them, a member's items page
by page, the terms of leaving (the same as ``commonweal leave`` shows), and reliability
computed once per log size."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from commonweal.cli.community import _leaving_terms
from commonweal.community import views
from commonweal.errors import InvalidInput, NotFound
from commonweal.hub import data as hub_data
from commonweal.ledger.event import sign_event
from tests.kit.communities import community, text_items


def test_members_are_found_by_name_key_or_unique_prefix(tmp_path: Path, database_url: str) -> None:
    client, keys = community(tmp_path / "hub", database_url, kind="text-classification", items=[])
    try:
        state = client.embedded_hub.state
        grace = keys["Grace"].key_id
        for who in ("Grace", "gRACE", grace, grace[:8], grace[:20].upper()):
            assert views.find_member(state, who) == grace
        with pytest.raises(NotFound, match="at least 8"):
            views.find_member(state, grace[:7])
        with pytest.raises(NotFound, match="no member is named 'Nobody'"):
            views.find_member(state, "Nobody")
        common = ""  # the longest prefix two members share, if any: it names both
        ks = sorted(k.key_id for k in keys.values())
        for a, b in itertools.pairwise(ks):
            n = next(i for i in range(64) if a[i] != b[i])
            common = max(common, a[:n], key=len)
        if len(common) >= 8:
            with pytest.raises(InvalidInput, match="type more of the id"):
                views.find_member(state, common)
    finally:
        client.close()


def test_a_members_items_come_a_page_at_a_time_newest_first(
    tmp_path: Path, database_url: str
) -> None:
    client, keys = community(
        tmp_path / "hub", database_url, kind="text-classification", items=text_items(30)
    )
    try:
        ada = keys["Ada"].key_id
        more = client.contribute(keys["Ada"], text_items(5, seed=3))["items"]
        client.withdraw(keys["Ada"], [more[0]["id"]])
        state = client.embedded_hub.state
        pages = [views.member_items(state, ada, offset=o, limit=10) for o in (0, 10, 20, 30)]
        ids = [i["id"] for p in pages for i in p["items"]]
        assert len(ids) == len(set(ids)) == 35 == pages[0]["total"]
        assert {i["id"] for i in pages[0]["items"][:5]} == {m["id"] for m in more}  # newest
        assert pages[0]["counts"] == {"accepted": 30, "in_review": 4, "withdrawn": 1}
        gone = views.member_items(state, ada, status="withdrawn")
        assert [i["id"] for i in gone["items"]] == [more[0]["id"]] and gone["total"] == 1
        profile = views.member_profile(state, ada)
        assert profile["items"] == pages[0]["counts"] and profile["items_total"] == 35
        grace = views.member_profile(state, keys["Grace"].key_id)
        assert grace["reviews"] == grace["verdicts"]["accept"] > 0
    finally:
        client.close()


def test_the_terms_of_leaving_are_those_the_cli_shows(tmp_path: Path, database_url: str) -> None:
    client, keys = community(
        tmp_path / "hub", database_url, kind="text-classification", items=text_items(200)
    )
    try:
        client.submit(
            [
                sign_event(
                    keys["Alan"], "delegate.set", {"to": keys["Grace"].key_id}, hub=client.origin
                )
            ]
        )
        state = client.embedded_hub.state
        for name in ("Grace", "Alan", "Tim"):
            key = keys[name].key_id
            assert views.leaving_terms(state, key) == _leaving_terms(client, key)
    finally:
        client.close()


def test_reliability_is_computed_once_per_log_size(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, keys = community(
        tmp_path / "hub", database_url, kind="text-classification", items=text_items(20)
    )
    try:
        hub = client.embedded_hub
        real = hub_data.reliability
        calls: list[int] = []

        def counted(state: Any) -> dict[str, float]:
            calls.append(state.size)
            return real(state)

        monkeypatch.setattr(hub_data, "reliability", counted)
        first = hub.data.reviewer_reliability()
        assert hub.data.reviewer_reliability() == first and len(calls) == 1
        assert first and set(first) <= {k.key_id for k in keys.values()}
        before = hub.state.size
        client.submit(
            [
                sign_event(
                    keys["Tim"], "member.address", {"address": "0x" + "ab" * 20}, hub=client.origin
                )
            ]
        )
        size, stale = hub.data.reliability_as_of(stale_ok=True)
        assert (size, stale) == (before, first)  # at once, and a newer one is on its way
        for _ in range(200):
            if hub.data.reliability_as_of(stale_ok=True)[0] == hub.state.size:
                break
            time.sleep(0.05)
        assert hub.data.reliability_as_of()[0] == hub.state.size and calls == [before, before + 1]
    finally:
        client.close()
