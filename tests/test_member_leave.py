"""A member leaves (``member.leave``, ``HubClient.leave``): their items are withdrawn and
their content erased, delegations to them end, their shares are kept or burned as the
charter says, they are shown as left and can no longer act, and the log still verifies.
On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from commonweal.errors import CommonwealError, Conflict, Forbidden, NotFound
from commonweal.ledger.event import sign_event
from commonweal.store import vault
from commonweal.verify import verify_hub
from tests.kit import community, text_items


@pytest.mark.parametrize("leaving_shares", ["keep", "give-up"])
def test_a_member_leaves(tmp_path: Path, database_url: str, leaving_shares: str) -> None:
    # A fifth held out, so that the 200 items left after she leaves still hold the
    # evaluation set's 20 whatever the draw.
    extra = {
        "membership": {"leaving_shares": leaving_shares},
        "training": {"evaluation": {"holdout_pct": 20}},
    }
    client, keys = community(
        tmp_path / "hub", database_url, kind="text-classification", charter_extra=extra
    )
    with client:
        hub = client.embedded_hub
        grace, tim = keys["Grace"].key_id, keys["Tim"].key_id
        # Grace earns shares for her data, and Tim delegates his vote to her.
        hub.models.train()
        hub.ownership.value()
        hub.ownership.close_epoch()
        held = hub.state.holdings[grace].shares
        assert held > 0
        client.submit([sign_event(keys["Tim"], "delegate.set", {"to": grace}, hub=client.origin)])
        assert hub.state.delegates[tim] == grace
        number = client.submit(
            [
                sign_event(
                    keys["Ada"],
                    "proposal.create",
                    {"title": "Train now", "actions": [{"type": "hub.run", "job": "train"}]},
                    hub=client.origin,
                )
            ]
        )["entries"][0]["index"]
        mine = sorted(
            c["id"]
            for c in client.contributions(member=grace)
            if c["status"] in ("accepted", "in_review")
        )
        assert len(mine) == 100
        others_before = hub.state.holdings[keys["Alan"].key_id].shares

        done = client.leave(keys["Grace"], note="moving away")
        assert [e["kind"] for e in done["entries"]] == ["member.leave"]

        state = hub.state
        me = state.members[grace]
        assert me.status == "left" and me.delegate == ""
        assert {state.contributions[i].status for i in mine} == {"withdrawn"}
        # The content is gone from the vault, in the same commit.
        with hub.read() as conn:
            assert vault.load_items(conn, hub.keyring, mine) == {}
        with pytest.raises(NotFound):
            hub.data.item_content(mine[0])
        # Tim votes for himself again.
        assert tim not in state.delegates and state.members[tim].delegate == ""
        # Shares: kept (she stays an owner) or burned (the others' part grows).
        shares = state.holdings[grace].shares
        assert shares == (held if leaving_shares == "keep" else 0)
        assert state.holdings[keys["Alan"].key_id].shares == others_before
        shown = {m["key"]: m["status"] for m in client.members()}
        assert shown[grace] == "left"

        # She can no longer act: not vote, contribute, review or delegate.
        refusals = [
            sign_event(
                keys["Grace"], "vote.cast", {"proposal": number, "choice": "for"}, hub=client.origin
            ),
            sign_event(
                keys["Grace"], "delegate.set", {"to": keys["Alan"].key_id}, hub=client.origin
            ),
            sign_event(keys["Grace"], "member.leave", {}, hub=client.origin),
        ]
        for ev in refusals:
            with pytest.raises(Forbidden, match="member 'Grace' is left"):
                client.submit([ev])
        with pytest.raises(CommonwealError):
            client.contribute(keys["Grace"], text_items(1, seed=4))
        with pytest.raises(Conflict):
            client.join(keys["Grace"], "Grace again")

        # The next version unlearns her items; the whole log verifies.
        v2 = hub.models.train()
        assert not set(mine) & set(hub.models.manifest_ids(v2["version"]))
        report = verify_hub(hub, workers=1)
        assert report.state is not None and report.state.members[grace].status == "left"


def test_the_founder_cannot_leave_while_others_remain(tmp_path: Path, database_url: str) -> None:
    client, keys = community(tmp_path / "hub", database_url, kind="text-classification", items=[])
    with client:
        size = client.embedded_hub.log.size()
        with pytest.raises(Conflict, match="founder cannot leave while other members remain"):
            client.leave(keys["Ada"])
        assert client.embedded_hub.log.size() == size
