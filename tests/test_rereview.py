"""Flags come back (part 7): a hub flag the charter names in ``review.rereview_flags`` on
an accepted item sends it back to review, with the reason shown to the reviewer; new
verdicts join the old ones, the consensus may reject or relabel it, the member's accepted
count is not counted twice, and the next version follows. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from commonweal.community.models import pool
from commonweal.ledger.event import sign_event
from commonweal.verify import verify_hub
from tests.kit import community

# One review accepts an item; a re-review asks two more members.
REVIEW = {
    "review": {
        "reviews_needed": 1,
        "newcomer_reviews_needed": 1,
        "consensus": "majority",
        "rereviews_needed": 2,
    },
    # A fifth of 300 held out: the evaluation set's 20 whatever the draw.
    "training": {"evaluation": {"holdout_pct": 20}},
}


def test_a_flagged_item_is_reviewed_again_and_the_next_version_follows(
    tmp_path: Path, database_url: str
) -> None:
    client, keys = community(
        tmp_path / "hub", database_url, kind="text-classification", charter_extra=REVIEW
    )
    with client:
        hub = client.embedded_hub
        charter = hub.state.charter
        assert charter is not None
        assert "suspected-label-error" in charter.review.rereview_flags  # the v2 default
        ada = keys["Ada"].key_id
        hub.models.train()
        state = hub.state
        accepted_before = state.stats[ada].accepted
        # Two of Ada's training items (Grace accepted them), and a third for a flag that
        # does not send an item back.
        x, y, z = [i for i in pool(state).training if state.contributions[i].member == ada][:3]
        label_y = state.contributions[y].label
        other = next(lb for lb in ("river", "market") if lb != label_y)

        def flag(items: list[str], name: str) -> None:
            body = {"items": items, "flag": name, "method": "cleanlab"}
            hub.append([hub.sign("contribution.flag", body)])

        flag([z], "looks-odd")
        assert hub.state.contributions[z].status == "accepted"
        flag([x, y], "suspected-label-error")
        for i in (x, y):
            c = hub.state.contributions[i]
            assert c.status == "in_review" and (c.reviews, c.reviews_needed) == (1, 3)
            assert c.flags.split(",")[-2:] == ["suspected-label-error", "re-review"]
        assert {c["id"] for c in client.contributions(status="in_review")} == {x, y}

        # The reviewer is shown the item with the reason it came back; neither the
        # contributor nor its first reviewer is asked again.
        shown = client.next_review(keys["Alan"])
        assert shown is not None and shown["id"] in (x, y)
        assert "suspected-label-error" in shown["flags"] and "re-review" in shown["flags"]
        assert client.next_review(keys["Ada"]) is None
        assert client.next_review(keys["Grace"]) is None

        verdicts = []
        for name in ("Alan", "Tim"):
            verdicts.append(
                sign_event(
                    keys[name],
                    "review.submit",
                    {"item": x, "verdict": "reject", "reason": "not about rivers"},
                    hub=client.origin,
                )
            )
            verdicts.append(
                sign_event(
                    keys[name],
                    "review.submit",
                    {"item": y, "verdict": "relabel", "label": other},
                    hub=client.origin,
                )
            )
        client.submit(verdicts)

        state = hub.state
        cx, cy = state.contributions[x], state.contributions[y]
        assert (cx.status, cx.reviews) == ("rejected", 3)
        assert (cy.status, cy.decided_label, cy.reviews) == ("accepted", other, 3)
        assert "re-review" not in cx.flags.split(",") + cy.flags.split(",")
        # Accepted again is not a new accepted item; the rejected one no longer counts.
        assert state.stats[ada].accepted == accepted_before - 1

        v2 = hub.models.train()
        ids = hub.models.manifest_ids(v2["version"])
        assert x not in ids and y in ids and z in ids
        assert verify_hub(hub, workers=1).state is not None
