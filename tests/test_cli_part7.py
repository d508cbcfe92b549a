"""The command line as people use it (part 7): ``review next`` as a loop at the terminal,
ids by unique prefix and names, ``leave``, the charter in plain words, its template and
amendment diffs, and failures that stay one line.

Storage is not what these tests are about: they run on SQLite in the test's directory.
Commands that fail run as separate processes (``cw``), so that what reaches the user's
terminal — one line on stderr, an exit status — is what is checked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from commonweal.cli import app
from commonweal.cli.charter import charter_diff, template_text
from commonweal.cli.ids import pick, resolve_member, short_ids
from commonweal.cli.output import out
from commonweal.cli.review import image_blocks, label_keys, show_item
from commonweal.client import HubClient
from commonweal.community.charter import Charter, validate_charter
from commonweal.errors import InvalidInput, NotFound
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from tests.kit.communities import digit_items, text_items

SQLITE = "sqlite:///hub.db"


def cw(
    *args: str | Path, ok: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``commonweal ARGS`` as a separate process (wide terminal, so lines do not wrap)."""
    proc = subprocess.run(
        [sys.executable, "-m", "commonweal", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        env={**os.environ, "COLUMNS": "200"},
    )
    if ok:
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc


def cwj(*args: str | Path) -> Any:
    return json.loads(cw(*args, "--json").stdout)


def one_line_failure(proc: subprocess.CompletedProcess[str], words: str) -> None:
    assert proc.returncode != 0, proc
    assert words in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def text_hub(tmp_path: Path, **charter: Any) -> tuple[Path, dict[str, SigningKey]]:
    """A text community (river/market, one review an item) of Ada (founder), Grace and
    Tim; Grace's four items wait for review. Keys are saved as NAME.key."""
    doc = {
        "name": "River Co-op",
        "task": {"kind": "text-classification", "labels": ["river", "market"]},
        "review": {"reviews_needed": 1, "newcomer_reviews_needed": 1, "consensus": "majority"},
        **charter,
    }
    hub_dir = tmp_path / "hub"
    hub, ada = Hub.init(hub_dir, charter=validate_charter(doc), founder_name="Ada", database=SQLITE)
    hub.close()
    keys = {"Ada": ada, "Grace": SigningKey.generate(), "Tim": SigningKey.generate()}
    with HubClient(str(hub_dir)) as c:
        for name in ("Grace", "Tim"):
            c.join(keys[name], name)
        # All proposed as "river": a relabel to "market" is always a change.
        c.contribute(keys["Grace"], [{**x, "label": "river"} for x in text_items(4)])
    for name, k in keys.items():
        k.save(tmp_path / f"{name}.key")
    return hub_dir, keys


def rows_by_id(hub_dir: Path) -> dict[str, dict[str, Any]]:
    with HubClient(str(hub_dir)) as c:
        return {r["id"]: r for r in c.contributions()}


# -- review next ------------------------------------------------------------------------


def test_review_next_loops_until_the_member_quits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_dir, _ = text_hub(tmp_path)
    runner = CliRunner()

    def not_needed(*args: Any, **kw: Any) -> Any:
        raise AssertionError("the loop asks the hub for the next item and the count left")

    # Not the member's whole export, nor every item in review: /reviews/next says it all.
    monkeypatch.setattr(HubClient, "export", not_needed)
    monkeypatch.setattr(HubClient, "contributions", not_needed)
    # a typo, accept, relabel to "market" (key 2), skip, quit
    result = runner.invoke(
        app,
        ["review", "next", "--hub", str(hub_dir), "--key", str(tmp_path / "Ada.key")],
        input="x\na\n2\ns\nq\n",
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    text = result.output
    assert "4 left for you" in text and "3 left for you" in text and "2 left for you" in text
    assert "'x' is not a choice" in text
    assert "Proposed label: river" in text and "1 river  2 market" in text
    assert "Report 0:" in text  # the item's text is shown
    assert "This session: 1 accept, 1 relabel, 1 skip" in text
    first, second, third, _ = re.findall(r"Item ([0-9a-f]{32})", text)
    monkeypatch.undo()
    after = rows_by_id(hub_dir)
    decided = {r["id"]: (r["status"], r["decided_label"]) for r in after.values()}
    assert decided[first] == ("accepted", "river")
    assert decided[second] == ("accepted", "market")
    assert decided[third][0] == "in_review"  # skipped
    assert sum(r["status"] == "in_review" for r in after.values()) == 2


def test_review_next_stops_when_the_queue_is_empty_and_shows_re_reviews(tmp_path: Path) -> None:
    hub_dir, keys = text_hub(tmp_path)
    runner = CliRunner()
    args = ["review", "next", "--hub", str(hub_dir), "--key", str(tmp_path / "Ada.key")]
    done = runner.invoke(app, args, input="a\na\na\na\n", terminal_width=200)
    assert done.exit_code == 0, done.output
    assert "Nothing else waits for your review." in done.output
    accepted = [r["id"] for r in rows_by_id(hub_dir).values() if r["status"] == "accepted"]
    assert len(accepted) == 4
    hub = Hub.open(hub_dir)
    try:
        body = {"items": accepted[:1], "flag": "suspected-label-error", "method": "cleanlab"}
        hub.append([hub.sign("contribution.flag", body)])
    finally:
        hub.close()
    tim = ["review", "next", "--hub", str(hub_dir), "--key", str(tmp_path / "Tim.key")]
    again = runner.invoke(app, tim, input="r\n", terminal_width=200)
    assert again.exit_code == 0, again.output
    assert "Re-review:" in again.output and "suspected-label-error" in again.output
    assert "suspects its label is wrong" in again.output
    row = rows_by_id(hub_dir)[accepted[0]]  # Tim's verdict joined Ada's; one more is due
    assert (row["status"], row["reviews"], row["reviews_needed"]) == ("in_review", 2, 3)
    assert "This session: 1 reject" in again.output and keys["Tim"]


def test_an_item_that_resembles_another_names_it(tmp_path: Path) -> None:
    class Client:
        def contribution(self, item_id: str) -> dict[str, Any]:
            if item_id != "a" * 32:
                raise NotFound("no such item")
            return {"status": "accepted", "label": "river", "decided_label": None}

    item = {
        "id": "b" * 32,
        "reviews": 0,
        "reviews_needed": 2,
        "label": "river",
        "flags": "near-duplicate",
        "resembles": "a" * 32,
        "content": {"text": "the [bold] river"},
    }
    with out.capture() as cap:
        show_item(Client(), item, ["river", "market"], left=5)  # type: ignore[arg-type]
    shown = cap.get()
    assert f"It resembles item {'a' * 32}" in shown and "accepted, label 'river'" in shown
    assert "the [bold] river" in shown  # markup in an item is shown as typed
    assert "5 left for you" in shown and "Flags: near-duplicate" in shown


def test_an_image_is_drawn_from_its_pixels() -> None:
    lines = image_blocks(digit_items(0, 1)[0]["image"])
    assert len(lines) == 8 and all(len(x) == 16 for x in lines)
    assert any("█" in x for x in lines) and any(" " in x for x in lines)


def test_label_keys_are_digits_themselves_for_a_digits_community() -> None:
    assert label_keys([str(d) for d in range(10)])["7"] == "7"
    assert label_keys(["river", "market"]) == {"1": "river", "2": "market"}


# -- ids --------------------------------------------------------------------------------


def test_short_ids_are_unique_prefixes() -> None:
    ids = ["abcdef0123", "abcdef0199", "ffff000000"]
    short = short_ids(ids, 4)
    assert short == {"abcdef0123": "abcdef012", "abcdef0199": "abcdef019", "ffff000000": "ffff"}
    assert len(set(short.values())) == 3


def test_an_ambiguous_prefix_is_one_line_listing_the_candidates() -> None:
    with pytest.raises(InvalidInput) as info:
        pick("item", "abcd", ["abcdef0123", "abcdef0199"], {"abcdef0123": "accepted"})
    message = info.value.message
    assert "\n" not in message and "matches 2 items" in message
    assert "abcdef012 (accepted)" in message and "abcdef019" in message
    with pytest.raises(NotFound):
        pick("item", "zz", [], {})


def test_members_are_named_by_name_or_key_prefix() -> None:
    members = [{"key": "ab" * 32, "name": "Grace"}, {"key": "ac" * 32, "name": "Tim"}]
    assert resolve_member(members, "grace") == "ab" * 32
    assert resolve_member(members, "acacacac") == "ac" * 32
    with pytest.raises(NotFound):
        resolve_member(members, "abab")  # too short to be a key prefix


def test_commands_take_item_prefixes_and_member_names(tmp_path: Path) -> None:
    hub_dir, keys = text_hub(tmp_path)
    item = next(iter(rows_by_id(hub_dir)))
    shown = cwj("contribution", item[:10], "--hub", hub_dir)
    assert shown["id"] == item
    mine = cwj("contributions", "--hub", hub_dir, "--member", "grace")["contributions"]
    assert len(mine) == 4 and all(r["member"] == keys["Grace"].key_id for r in mine)
    reviewed = cwj(
        "review", "submit", item[:12], "accept", "--hub", hub_dir, "--key", tmp_path / "Tim.key"
    )
    assert reviewed["item"] == item
    table = cw("contributions", "--hub", hub_dir).stdout
    assert "Grace" in table and item[:8] in table
    one_line_failure(cw("contribution", "0123", "--hub", hub_dir, ok=False), "too short")


# -- leave ------------------------------------------------------------------------------


def test_leave_says_what_it_erases_and_asks(tmp_path: Path) -> None:
    hub_dir, keys = text_hub(tmp_path, membership={"leaving_shares": "give-up"})
    with HubClient(str(hub_dir)) as c:
        c.submit(
            [sign_event(keys["Tim"], "delegate.set", {"to": keys["Grace"].key_id}, hub=c.origin)]
        )
    grace = tmp_path / "Grace.key"
    declined = cw("leave", "--hub", hub_dir, "--key", grace, ok=False, stdin="n\n")
    assert declined.returncode == 1 and "nothing was signed" in declined.stderr
    for words in ("every item you gave (4)", "content deleted", "1 delegation(s) to you"):
        assert words in declined.stderr, declined.stderr
    assert "you give them up" in declined.stderr
    left = cwj("leave", "--hub", hub_dir, "--key", grace, "--yes")
    assert left["terms"]["items"] == 4
    with HubClient(str(hub_dir)) as c:
        me = next(m for m in c.members() if m["name"] == "Grace")
        assert me["status"] == "left"
        assert {r["status"] for r in c.contributions(member=me["key"])} == {"withdrawn"}
        assert c.delegations() == {}
    again = cw("leave", "--hub", hub_dir, "--key", grace, "--yes", ok=False)
    one_line_failure(again, "only an active member can leave")


# -- one-line failures ------------------------------------------------------------------


def test_invite_create_prints_the_token_alone(tmp_path: Path) -> None:
    hub_dir = tmp_path / "hub"
    cw("init", hub_dir, "--name", "Clinic", "--join-policy", "invite")
    proc = cw("invite", "create", "--hub", hub_dir, "--key", hub_dir / "founder.key")
    token = proc.stdout.strip()
    assert proc.stdout == token + "\n" and " " not in token and "Invite token" in proc.stderr
    assert f"open /join?invite={token} on the served hub" in proc.stderr  # the browser's way in
    cw("key", "new", "--out", tmp_path / "k.key")
    cw("join", "--hub", hub_dir, "--key", tmp_path / "k.key", "--name", "Lee", "--invite", token)


def test_ledger_verify_names_a_missing_checkpoint_or_key(tmp_path: Path) -> None:
    hub_dir = tmp_path / "hub"
    cw("init", hub_dir, "--name", "Log Co-op")
    log = tmp_path / "log.jsonl"
    cw("ledger", "export", "--hub", hub_dir, "--out", log)
    Path(f"{log}.vkey").unlink()
    one_line_failure(cw("ledger", "verify", "--file", log, ok=False), "log.jsonl.vkey is missing")
    Path(f"{log}.checkpoint").unlink()
    proc = cw("ledger", "verify", "--file", log, ok=False)
    one_line_failure(proc, "log.jsonl.checkpoint is missing")


def test_init_refuses_labels_without_a_task_and_a_bad_database_leaves_nothing(
    tmp_path: Path,
) -> None:
    proc = cw("init", tmp_path / "a", "--name", "X", "--labels", "a,b", ok=False)
    one_line_failure(proc, "--labels needs a --task")
    assert not (tmp_path / "a").exists()
    url = "postgresql+psycopg://someone:secret@127.0.0.1:1/nowhere"
    proc = cw("init", tmp_path / "b", "--name", "X", "--database", url, ok=False)
    one_line_failure(proc, "cannot create the hub's database at")
    assert "secret" not in proc.stderr and not (tmp_path / "b").exists()
    proc = cw("init", tmp_path / "c", "--name", "X", "--database", "foo://bar", ok=False)
    one_line_failure(proc, "not supported")
    assert not (tmp_path / "c").exists()


def test_predict_reads_a_file_and_a_missing_file_is_an_error(tmp_path: Path) -> None:
    from commonweal.cli import model

    hub_dir, _ = text_hub(tmp_path)
    proc = cw("predict", "--hub", hub_dir, tmp_path / "nothere.txt", ok=False)
    one_line_failure(proc, "nothere.txt does not exist")
    task = {"kind": "text-classification", "labels": ["river", "market"]}
    lines = tmp_path / "ask.txt"
    lines.write_text("the river rose\n\nbread at the market\n")
    inputs = model._inputs(str(lines), task)
    assert inputs == [{"text": "the river rose"}, {"text": "bread at the market"}]
    listed = tmp_path / "ask.json"
    listed.write_text(json.dumps([{"text": "a"}, {"text": "b"}]))
    assert model._inputs(str(listed), task) == [{"text": "a"}, {"text": "b"}]
    assert model._inputs("just words", task) == [{"text": "just words"}]


# -- the charter ------------------------------------------------------------------------


def test_charter_show_says_every_section_in_words(tmp_path: Path) -> None:
    hub_dir, _ = text_hub(tmp_path)
    text = cw("charter", "show", "--hub", hub_dir).stdout
    for heading in (
        "The community",
        "What the model learns",
        "Peer review",
        "Rewards and ownership",
        "Joining and leaving",
        "Event times",
        "What the hub does on its own",
        "Votes",
    ):
        assert heading in text, heading
    assert "Items are labelled one of: river, market." in text
    assert "An item needs 1 reviews" in text or "An item needs 1 review" in text
    assert "A member who leaves keeps their shares" in text
    assert "A member may create at most 5 invites per invite period." in text
    assert "An event's own time may be at most 5 minutes from the hub's clock." in text
    assert "Voting lasts 3 days." in text


def test_the_template_round_trips_through_init(tmp_path: Path) -> None:
    text = template_text()
    doc = tomllib.loads(text)
    charter = validate_charter(doc)
    expected = Charter.model_validate(
        {
            "name": "My Community",
            "task": {"kind": "text-classification", "labels": ["spam", "not-spam"]},
        }
    )
    assert charter == expected
    settings = sum(1 for line in text.splitlines() if " = " in line and not line.startswith("#"))
    comments = sum(1 for line in text.splitlines() if line.startswith("# "))
    assert comments >= settings  # every setting has its comment
    path = tmp_path / "charter.toml"
    cw("charter", "template", "--out", path)
    founded = cwj("init", tmp_path / "hub", "--charter", path)
    assert founded["name"] == "My Community"
    shown = cwj("charter", "show", "--hub", tmp_path / "hub")
    assert shown == charter.to_json()


def test_a_charter_amendment_shows_what_it_changes(tmp_path: Path) -> None:
    hub_dir, _ = text_hub(tmp_path)
    ada = tmp_path / "Ada.key"
    proc = cw(
        "propose", "charter.amend", "rewards.data_pct=60", "rewards.review_pct=30",
        "--title", "More for review", "--hub", hub_dir, "--key", ada,
    )  # fmt: skip
    assert "rewards.data_pct: 70 → 60" in proc.stdout
    assert "rewards.review_pct: 20 → 30" in proc.stdout
    listed = cw("proposals", "--hub", hub_dir).stdout
    assert "amends the charter" in listed and "rewards.data_pct: 70 → 60" in listed
    rows = cwj("proposals", "--hub", hub_dir)
    assert rows[0]["changes"] == ["rewards.data_pct: 70 → 60", "rewards.review_pct: 20 → 30"]
    old = Charter(name="X").to_json()
    assert charter_diff(old, {"name": "X", "governance": {"secret_ballot": True}}) == [
        "governance.secret_ballot: false → true"
    ]


def test_a_secret_ballot_per_proposal_follows_the_charter(tmp_path: Path) -> None:
    """``propose --secret`` asks for a secret ballot on this proposal (what the web app's
    checkbox sends too); the rules grant it where ``governance.secret_per_proposal`` allows
    and refuse it, in one line naming the setting, where it does not."""

    def propose(directory: Path, *flags: str, ok: bool = True) -> Any:
        args = ("propose", "signal", "text=hello", "--title", "Hi", "--hub", directory / "hub",
                "--key", directory / "Ada.key", *flags)  # fmt: skip
        return cwj(*args) if ok else cw(*args, ok=False)

    text_hub(tmp_path)  # the default charter: a proposer may ask
    assert propose(tmp_path, "--secret")["secret"] is True
    assert propose(tmp_path)["secret"] is False
    closed = tmp_path / "closed"
    closed.mkdir()
    text_hub(closed, governance={"secret_per_proposal": False})
    one_line_failure(propose(closed, "--secret", ok=False), "governance.secret_per_proposal")
    every = tmp_path / "every"
    every.mkdir()
    text_hub(every, governance={"secret_ballot": True})
    assert propose(every)["secret"] is True


def test_the_review_loop_skips_no_more_items_than_the_hub_takes() -> None:
    from commonweal.api.contributions import MAX_SKIP
    from commonweal.cli.review import _MAX_SKIP

    assert _MAX_SKIP == MAX_SKIP
