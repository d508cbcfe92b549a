"""Voting power explained for each member, and a proposal's actions in words: the pure
functions behind the web app's Decide pages (``views.explain_power``,
``cards.proposal_words``), on states built by the real rules from signed events."""

from __future__ import annotations

from typing import Any

from commonweal.cards.charter_words import charter_diff
from commonweal.cards.proposal_words import amendment, describe_action
from commonweal.community import rules
from commonweal.community.charter import Charter
from commonweal.community.state import Holding, State
from commonweal.community.views import explain_power
from commonweal.ledger.event import Leaf, decode_leaf, encode_leaf, sign_event
from commonweal.ledger.keys import SigningKey

T = "2030-01-01T00:00:00.000Z"
HUB = SigningKey(b"h" * 32)
ADA, GRACE, ALAN, TIM, EVE = (SigningKey(bytes([i + 1]) * 32) for i in range(5))
NAMES = {ADA: "Ada", GRACE: "Grace", ALAN: "Alan", TIM: "Tim", EVE: "Eve"}
SIGNAL = [{"type": "signal", "text": "Plant trees"}]


class Log:
    """A community's state, grown one signed event at a time through the real rules."""

    def __init__(self, **governance: Any) -> None:
        charter = Charter.model_validate(
            {"name": "P", "governance": governance} if governance else {"name": "P"}
        )
        self.state = State()
        self.add(
            ADA,
            "community.found",
            {
                "charter": charter.to_json(),
                "hub_key": HUB.key_id,
                "origin": "test/p",
                "founder_name": "Ada",
            },
        )
        for key in (GRACE, ALAN, TIM):
            self.add(key, "member.join", {"name": NAMES[key]})

    def add(self, key: SigningKey, kind: str, body: dict[str, Any]) -> int:
        ev = sign_event(
            key, kind, body, hub="test/p", time=T
        )  # signed when logged: within any skew
        leaf: Leaf = decode_leaf(encode_leaf(ev.data, self.state.size, T, ev.sig))
        self.state = rules.apply(self.state, leaf)
        return leaf.index

    def shares(self, **held: int) -> None:
        keys = {NAMES[k]: k for k in NAMES}
        holdings = self.state.holdings
        for name, n in held.items():
            key = keys[name].key_id
            holdings = holdings.set(key, Holding(key, shares=n, data=n))
        self.state = self.state.evolve({"holdings": holdings})

    def propose(self, actions: list[dict[str, Any]] = SIGNAL) -> int:
        return self.add(ALAN, "proposal.create", {"title": "Trees", "actions": actions})

    def explained(self, number: int) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in explain_power(self.state, number)}


def test_one_member_one_vote_gives_each_member_power_one() -> None:
    log = Log()
    rows = log.explained(log.propose())
    assert {n: r["weight"] for n, r in rows.items()} == {"Ada": 1, "Grace": 1, "Alan": 1, "Tim": 1}
    assert rows["Grace"]["reasons"] == ["has one vote: one member, one vote"]


def test_a_member_who_joined_after_the_snapshot_has_no_vote() -> None:
    log = Log()
    number = log.propose()
    log.add(EVE, "member.join", {"name": "Eve"})
    eve = log.explained(number)["Eve"]
    assert not eve["eligible"] and eve["weight"] == 0
    assert eve["reasons"] == [
        f"joined after this proposal was made (log entry {number}), so has no vote on it"
    ]


def test_a_member_not_active_at_the_snapshot_has_no_vote() -> None:
    log = Log(proposers="member")
    log.add(TIM, "member.leave", {})
    number = log.propose()
    tim = log.explained(number)["Tim"]
    assert not tim["eligible"]
    assert tim["reasons"] == [
        "was not an active member when this proposal was made, so has no vote on it"
    ]


def test_a_delegator_has_zero_here_and_counts_with_their_delegate() -> None:
    log = Log()
    log.add(TIM, "delegate.set", {"to": GRACE.key_id})
    number = log.propose()
    before = log.explained(number)
    assert before["Tim"]["weight"] == 0 and before["Tim"]["power"] == 1
    assert before["Tim"]["counted_with_name"] == "Grace"
    assert "who has not voted" in before["Tim"]["reasons"][1]
    log.add(GRACE, "vote.cast", {"proposal": number, "choice": "for"})
    rows = log.explained(number)
    assert rows["Tim"]["reasons"][1] == (
        "delegated to Grace: 0 here, their power counts with Grace's vote"
    )
    assert rows["Grace"]["weight"] == 2
    assert rows["Grace"]["reasons"][1] == "receives delegations from Tim (+1 power)"
    assert explain_power(log.state, number)[0]["name"] == "Grace"


def test_a_delegators_own_vote_overrides_the_delegation() -> None:
    log = Log()
    log.add(TIM, "delegate.set", {"to": GRACE.key_id})
    number = log.propose()
    log.add(GRACE, "vote.cast", {"proposal": number, "choice": "for"})
    log.add(TIM, "vote.cast", {"proposal": number, "choice": "against"})
    rows = log.explained(number)
    assert rows["Tim"]["weight"] == 1 and rows["Grace"]["weight"] == 1
    assert (
        rows["Tim"]["reasons"][1]
        == "delegated to Grace, but voted themselves: their own vote counts"
    )


def test_a_chain_of_delegations_is_explained_through_the_middle_member() -> None:
    log = Log()
    log.add(TIM, "delegate.set", {"to": ALAN.key_id})
    log.add(ALAN, "delegate.set", {"to": GRACE.key_id})
    number = log.propose()
    log.add(GRACE, "vote.cast", {"proposal": number, "choice": "for"})
    rows = log.explained(number)
    assert rows["Grace"]["weight"] == 3
    assert rows["Tim"]["reasons"][1] == (
        "delegated to Alan: 0 here, their power counts with Grace's vote (through Alan)"
    )
    assert rows["Alan"]["reasons"][2] == (
        "receives delegations from Tim (+1 power), passed on with their own to Grace"
    )


def test_a_delegation_made_after_the_snapshot_does_not_count() -> None:
    log = Log()
    number = log.propose()
    log.add(TIM, "delegate.set", {"to": GRACE.key_id})
    assert log.explained(number)["Tim"]["weight"] == 1


def test_share_weighting_explains_the_shares_held_at_the_snapshot() -> None:
    log = Log(default={"weighting": "shares"})
    log.shares(Grace=40, Alan=7)
    number = log.propose()
    log.shares(Grace=1000)  # after the snapshot: changes nothing
    rows = log.explained(number)
    assert rows["Grace"]["weight"] == 40
    assert rows["Grace"]["reasons"] == [
        "held 40 shares when the proposal was made, and votes are weighed by shares"
    ]
    assert rows["Tim"]["weight"] == 0
    assert rows["Tim"]["reasons"] == [
        "held no shares when the proposal was made, and votes are weighed by shares"
    ]


def test_quadratic_weighting_explains_the_square_root() -> None:
    log = Log(default={"weighting": "quadratic"})
    log.shares(Grace=40)
    rows = log.explained(log.propose())
    assert rows["Grace"]["weight"] == 6
    assert rows["Grace"]["reasons"] == [
        "held 36 to 48 shares when the proposal was made; votes are weighed by the square "
        "root of shares (quadratic), so power 6"
    ]


def test_a_member_removed_since_the_snapshot_is_told_they_can_no_longer_vote() -> None:
    log = Log()
    number = log.propose()
    log.add(TIM, "member.leave", {})
    assert log.explained(number)["Tim"]["reasons"][-1] == "is left now, so can no longer vote"


def test_actions_read_as_sentences() -> None:
    names = {GRACE.key_id: "Grace"}
    assert describe_action(
        {"type": "treasury.pay", "to": GRACE.key_id, "amount": 5}, names=names
    ) == ("Pay 5 credits from the treasury to Grace.")
    assert describe_action({"type": "treasury.pay", "to": "shareholders", "amount": 1}) == (
        "Pay 1 credit from the treasury to the shareholders, in proportion to the shares they hold."
    )
    assert describe_action({"type": "hub.run", "job": "train"}) == (
        "Order the hub to train a new model version."
    )
    assert describe_action({"type": "price.set", "price_per_call": 2}) == (
        "Set the price of the model's use: Each prediction costs 2 credits, paid into the treasury."
    )
    assert describe_action(
        {"type": "model.release", "version": 2, "license": "MIT", "weights": "public"}
    ) == ("Release model version 2 under the MIT license, publishing its weights.")
    assert describe_action({"type": "member.remove", "member": "ab" * 32}) == (
        f"Remove member {'ab' * 8}… from the community."
    )
    assert "not a well-formed action" in describe_action({"type": "price.set"})


def test_an_amendment_shows_each_setting_it_changes_in_words() -> None:
    charter = Charter(name="P").to_json()
    amended = {**charter, "governance": {**charter["governance"], "quorum_pct": 50}}
    action = {"type": "charter.amend", "charter": amended}
    assert amendment(action, charter) == [
        {
            "path": "governance.quorum_pct",
            "before": "20",
            "after": "50",
            "says": "A vote counts only if 50% of the voting power takes part.",
        }
    ]
    assert describe_action(action, charter=charter) == "Amend the charter: 1 setting change."
    assert charter_diff(charter, amended) == ["governance.quorum_pct: 20 → 50"]
    bad = {"type": "charter.amend", "charter": {**charter, "name": ""}}
    assert "error" in amendment(bad, charter)[0]
