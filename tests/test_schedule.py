"""The community runs itself (part 7): with the hub's clock in the test's hand, the
charter's schedule says when the hub trains, values, closes an epoch, pays out and scans;
``Scheduler.tick`` runs what is due, after which nothing is; a passed ``hub.run`` vote
orders a job; a job that fails waits for the log to change. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from commonweal.community.governance import at
from commonweal.errors import Conflict
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from tests.kit import Clock, accept_all, community, text_items

T0 = "2030-01-01T00:00:00.000Z"
DAY = 86400


class Counted:
    """A scheduler job that counts its runs."""

    def __init__(self, job: Any) -> None:
        self.job, self.runs = job, 0

    def __call__(self) -> Any:
        self.runs += 1
        return self.job()


def test_the_hub_runs_what_the_charter_schedules(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(T0)
    monkeypatch.setattr(Hub, "clock", staticmethod(clock))
    monkeypatch.setattr("commonweal.ledger.event.now", clock)  # members sign on it too
    # The schedule as the charter's defaults have it; a fifth of the items held out, so
    # that the evaluation set holds its 20 whatever the draw.
    client, keys = community(
        tmp_path / "hub",
        database_url,
        kind="text-classification",
        charter_extra={"training": {"evaluation": {"holdout_pct": 20}}},
    )
    with client:
        hub = client.embedded_hub
        cfg = hub.state.charter.schedule  # type: ignore[union-attr]
        assert (cfg.train_after_items, cfg.train_every_seconds) == (50, DAY)  # v2 defaults
        gov = hub.governance
        sched = gov.scheduler()

        # 300 new accepted items, no version yet: train; and a first scan.
        assert gov.due() == ["train", "quality-scan"]
        assert sched.tick() == ["train", "quality-scan"]
        assert len(hub.state.models) == 1
        # A new version is valued; a valuation of new work closes an epoch.
        assert gov.due() == ["value"]
        assert sched.tick() == ["value"]
        assert gov.due() == ["close-epoch"]
        assert sched.tick() == ["close-epoch"]
        assert len(hub.state.epochs) == 1
        assert gov.due() == [] and sched.tick() == []

        # 49 new accepted items are not enough to train again; the 50th is.
        client.contribute(keys["Tim"], text_items(50, seed=5)[:49])
        accept_all(client, keys)
        assert gov.due() == []
        client.contribute(keys["Tim"], text_items(50, seed=5)[49:])
        accept_all(client, keys)
        assert gov.due() == ["train"]
        assert sched.tick() == ["train"]
        assert sched.tick() == ["value"]
        _epoch_or_nothing_new(hub, sched)

        # Revenue in the treasury is paid out when due (the first time at once).
        secret, _ = client.create_apikey(keys["Alan"], "Shop")
        client.predict([{"text": "the river flood"}] * 3, api_key=secret)
        assert hub.models.close_revenue() is not None
        assert hub.state.treasury.balance > 0
        assert gov.due() == ["payout"]
        assert sched.tick() == ["payout"]
        assert hub.state.treasury.balance == 0 and gov.due() == []

        # A day later: a scan again, and one new item trains (the timer) once a day.
        client.contribute(keys["Tim"], text_items(1, seed=6))
        accept_all(client, keys)
        assert gov.due() == []
        clock.advance(DAY)
        assert gov.due() == ["train", "quality-scan"]
        assert sched.tick() == ["train", "quality-scan"]
        assert sched.tick() == ["value"]
        _epoch_or_nothing_new(hub, sched)


def _epoch_or_nothing_new(hub: Hub, sched: Any) -> None:
    """The scheduled epoch after a valuation: it closes — or, when no member's value rose
    above what was paid (a few new items can move the evaluation draw's values either way)
    and no review carried information, it is refused and not retried until the log
    changes."""
    epochs = len(hub.state.epochs)
    ran = sched.tick()
    if ran == ["close-epoch"]:
        assert len(hub.state.epochs) == epochs + 1 and hub.governance.due() == []
        return
    assert ran == [] and len(hub.state.epochs) == epochs
    with pytest.raises(Conflict, match="nothing new to reward"):
        hub.ownership.close_epoch()
    assert hub.governance.due() == ["close-epoch"] and sched.tick() == []


def test_a_vote_orders_a_job_and_a_failed_job_waits_for_the_log_to_change(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(T0)
    monkeypatch.setattr(Hub, "clock", staticmethod(clock))
    monkeypatch.setattr("commonweal.ledger.event.now", clock)  # members sign on it too
    # Nothing on the charter's schedule: only votes order jobs.
    off = {
        "train_after_items": 0,
        "train_every_seconds": 0,
        "value_new_versions": False,
        "close_epoch_after_valuation": False,
        "payout_every_seconds": 0,
        "scan_every_seconds": 0,
    }
    client, keys = community(
        tmp_path / "hub",
        database_url,
        kind="text-classification",
        charter_extra={"schedule": off, "training": {"evaluation": {"holdout_pct": 20}}},
    )
    with client:
        hub = client.embedded_hub
        gov = hub.governance
        sched = gov.scheduler()
        train = Counted(sched.jobs["train"])
        sched.jobs["train"] = train
        assert gov.due() == [] and sched.tick() == []

        def ordered(job: str) -> None:
            body = {"title": f"Run {job}", "actions": [{"type": "hub.run", "job": job}]}
            ack = client.submit(
                [sign_event(keys["Ada"], "proposal.create", body, hub=client.origin)]
            )
            number = ack["entries"][0]["index"]
            client.submit(
                [
                    sign_event(
                        keys[n],
                        "vote.cast",
                        {"proposal": number, "choice": "for"},
                        hub=client.origin,
                    )
                    for n in keys
                ]
            )
            clock.t = at(clock.t, 5 * DAY)  # past the voting period and the timelock
            gov.execute(number)

        ordered("train")
        assert gov.due() == ["train"]
        assert sched.tick() == ["train"] and train.runs == 1
        assert len(hub.state.models) == 1 and gov.due() == []

        # Ordered again with nothing new: training is refused, and not tried again on
        # every tick while the log stays as it is.
        ordered("train")
        assert gov.due() == ["train"]
        assert sched.tick() == [] and train.runs == 2
        assert sched.tick() == [] and train.runs == 2
        assert len(hub.state.models) == 1
        # Once the log changes (a new accepted item), the order is carried out.
        client.contribute(keys["Tim"], text_items(1, seed=8))
        accept_all(client, keys)
        assert sched.tick() == ["train"] and train.runs == 3
        assert len(hub.state.models) == 2 and gov.due() == []
