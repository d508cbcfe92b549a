"""The command line, run as a user would: as a separate process, on each database (the
hub's ``init --database``)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.kit import cw, cwj


def test_a_community_from_init_to_verified_export(tmp_path: Path, database_url: str) -> None:
    hub = tmp_path / "hub"
    info = cwj(
        "init", hub, "--name", "River Keepers", "--founder-name", "Ada", "--database", database_url
    )
    assert info["origin"].startswith("commonweal.local/river-keepers-")
    founder = Path(info["founder_key_file"])
    assert stat.S_IMODE(founder.stat().st_mode) == 0o600
    assert stat.S_IMODE((hub / "hub.key").stat().st_mode) == 0o600

    key = tmp_path / "grace.key"
    made = cwj("key", "new", "--out", key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    joined = cwj("join", "--hub", hub, "--key", key, "--name", "Grace")
    assert joined["status"] == "active" and joined["entries"][0]["index"] == 1

    members = cwj("members", "--hub", hub)["members"]
    assert {m["key"] for m in members} == {made["key_id"], info["founder"]}

    cp = cwj("ledger", "checkpoint", "--hub", hub)
    assert cp["size"] == 2 and cp["note"].startswith(info["origin"] + "\n2\n")
    shown = cwj("ledger", "show", "--hub", hub)["entries"]
    assert [e["event"]["kind"] for e in shown] == ["community.found", "member.join"]
    proof = cwj("ledger", "prove", "--hub", hub, "--index", "1")
    assert proof["verified_against"] == "signed checkpoint"

    report = cwj("ledger", "verify", "--hub", hub)
    assert report["ok"] and report["size"] == 2 and report["members"] == 2

    out = tmp_path / "log.jsonl"
    cwj("ledger", "export", "--hub", hub, "--out", out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["index"] for line in lines] == [0, 1]
    assert {"index", "leaf", "event"} <= set(lines[0])
    assert (tmp_path / "log.jsonl.checkpoint").exists() and (tmp_path / "log.jsonl.vkey").exists()
    assert cwj("ledger", "verify", "--file", out)["size"] == 2

    rebuilt = cwj("rebuild", "--hub", hub)
    assert rebuilt == {
        "entries": 2,
        "community": 1,
        "members": 2,
        "invites": 0,
        "contributions": 0,
        "reviews": 0,
        "models": 0,
        "apikeys": 0,
        "treasury": 1,
        "valuations": 0,
        "holdings": 0,
        "epochs": 0,
        "payouts": 0,
        "proposals": 0,
        "nodes": 0,
    }


def test_failures_exit_non_zero_with_one_line_on_stderr(tmp_path: Path, database_url: str) -> None:
    hub = tmp_path / "hub"
    cw("init", hub, "--name", "Invite Only", "--join-policy", "invite", "--database", database_url)
    cw("key", "new", "--out", tmp_path / "k.key")
    cases = [
        (("join", "--hub", hub, "--key", tmp_path / "k.key", "--name", "Zed"), "invitation"),
        (
            ("join", "--hub", hub, "--key", tmp_path / "missing.key", "--name", "Zed"),
            "does not exist",
        ),
        (("members", "--hub", tmp_path / "nohub"), "neither an http(s) URL nor a hub"),
        (("init", tmp_path / "h2", "--name", "X", "--join-policy", "maybe"), "join_policy"),
        (("init", hub, "--name", "Again"), "already holds a hub"),
        (("key", "new", "--out", tmp_path / "k.key"), "already exists"),
        (("ledger", "prove", "--hub", hub, "--index", "7"), "not in a tree"),
    ]
    for args, words in cases:
        proc = cw(*args, ok=False)
        assert proc.returncode != 0, args
        assert words in proc.stderr, (args, proc.stderr)
        assert proc.stderr.strip().count("\n") == 0, proc.stderr  # one line
        assert "Traceback" not in proc.stderr


def test_invite_flow_from_the_command_line(tmp_path: Path, database_url: str) -> None:
    hub = tmp_path / "hub"
    info = cwj(
        "init", hub, "--name", "Clinic Pool", "--join-policy", "invite", "--database", database_url
    )
    token = cwj("invite", "create", "--hub", hub, "--key", info["founder_key_file"])["token"]
    cw("key", "new", "--out", tmp_path / "k.key")
    res = cwj(
        "join", "--hub", hub, "--key", tmp_path / "k.key", "--name", "Dr Lee", "--invite", token
    )
    assert res["status"] == "active"


def test_charter_file_sets_the_rules(tmp_path: Path, database_url: str) -> None:
    charter = tmp_path / "charter.toml"
    charter.write_text('name = "Language Commons"\njoin_policy = "approval"\n')
    info = cwj("init", tmp_path / "hub", "--charter", charter, "--database", database_url)
    assert info["name"] == "Language Commons"
    charter.write_text('name = "X"\nvoting = "yes"\n')
    proc = cw("init", tmp_path / "hub2", "--charter", charter, ok=False)
    assert proc.returncode == 1 and "voting" in proc.stderr


def test_verify_names_the_tampered_entry(tmp_path: Path, database_url: str) -> None:
    hub = tmp_path / "hub"
    cw("init", hub, "--name", "Tamper Test", "--database", database_url)
    for i in range(3):
        cw("key", "new", "--out", tmp_path / f"{i}.key")
        cw("join", "--hub", hub, "--key", tmp_path / f"{i}.key", "--name", f"m{i}")
    db = create_engine(database_url)
    with db.begin() as conn:
        leaf = bytes(
            conn.execute(text("SELECT leaf FROM ledger_entries WHERE idx = 2")).scalar_one()
        )
        conn.execute(
            text("UPDATE ledger_entries SET leaf = :leaf WHERE idx = 2"),
            {"leaf": leaf.replace(b'"m1"', b'"m7"')},
        )
    db.dispose()
    proc = cw("ledger", "verify", "--hub", hub, ok=False)
    assert proc.returncode == 1
    assert "entry 2" in proc.stderr and "signature" in proc.stderr


def test_verify_detects_a_log_rewritten_between_two_runs(tmp_path: Path, database_url: str) -> None:
    hub = tmp_path / "hub"
    cw("init", hub, "--name", "Rewrite Test", "--database", database_url)
    for i in range(3):
        cw("key", "new", "--out", tmp_path / f"{i}.key")
        cw("join", "--hub", hub, "--key", tmp_path / f"{i}.key", "--name", f"m{i}")
    out = tmp_path / "log.jsonl"
    cw("ledger", "export", "--hub", hub, "--out", out)
    assert cwj("ledger", "verify", "--file", out)["size"] == 4
    # The operator drops the last entry and re-signs a checkpoint with the hub's own key.
    from commonweal.ledger.merkle import MemoryTree
    from commonweal.ledger.note import Checkpoint, NoteSigner

    lines = out.read_text().splitlines()[:3]
    out.write_text("\n".join(lines) + "\n")
    import base64

    tree = MemoryTree(base64.b64decode(json.loads(line)["leaf"]) for line in lines)
    signer = NoteSigner.parse((hub / "hub.key").read_text())
    Path(f"{out}.checkpoint").write_text(Checkpoint(signer.name, 3, tree.root()).sign(signer))
    proc = cw("ledger", "verify", "--file", out, ok=False)
    assert proc.returncode == 1 and "shrank" in proc.stderr


@pytest.mark.slow
def test_demo_builds_a_verified_community(tmp_path: Path) -> None:
    # The demo makes its own hub, always on SQLite in its directory: one database here.
    # A minute on an idle machine; several on a shared one.
    res = cwj("demo", "--hub", tmp_path / "demo", "--no-serve", timeout=900)
    assert res["members"] >= 11 and res["size"] >= 21
    # The careful members own more than the mislabeller and the duplicator; the treasury
    # was paid out to the owners, exactly.
    shares = res["shares"]
    assert min(shares["Grace"], shares["Alan"]) > max(shares["Edsger"], shares["Donald"])
    assert res["treasury"]["balance"] == 0 and res["treasury"]["paid"] > 0
    assert sum(res["credits_paid"].values()) == res["treasury"]["paid"]
    # A vote changed the reward split (data 70% -> 60%, review 20% -> 30%), and the next
    # epoch followed it. Since part 7 an epoch mints only for value not rewarded before:
    # the first epoch pays its pools whole, the second the part of each that new work is.
    assert [p["status"] for p in res["proposals"]] == ["executed"]
    # Then two clinics trained a version on their own nodes: its epoch pays them.
    first, second, federated = res["epochs"]
    assert federated["compute"] > 0
    assert (first["data"], first["review"]) == (700_000, 200_000)
    assert 0 <= second["data"] < 600_000 and 0 <= second["review"] <= 300_000
    assert second["data"] + second["review"] > 0  # an epoch with nothing new is refused
    again = cwj("demo", "--hub", tmp_path / "demo", "--no-serve")
    assert again["size"] == res["size"]  # reused, not rebuilt


def test_contribute_review_withdraw_and_export_from_the_command_line(
    tmp_path: Path, database_url: str
) -> None:
    hub = tmp_path / "hub"
    info = cwj(
        "init",
        hub,
        "--name",
        "Lang Commons",
        "--task",
        "text-classification",
        "--labels",
        "greeting,farewell",
        "--founder-name",
        "Ada",
        "--database",
        database_url,
    )
    founder = info["founder_key_file"]
    keys = {}
    for name in ("grace", "alan", "tim"):
        keys[name] = tmp_path / f"{name}.key"
        cw("key", "new", "--out", keys[name])
        cw("join", "--hub", hub, "--key", keys[name], "--name", name)
    data = tmp_path / "greetings.csv"
    data.write_text(
        "text,label\n"
        "Good morning to everyone on the early train today,greeting\n"
        "See you all at the next meeting of the garden club,farewell\n"
        "Good morning to everyone on the early train today,greeting\n"
    )
    res = cwj("contribute", data, "--hub", hub, "--key", keys["grace"])
    assert (res["items"], res["in_review"], res["refused"]) == (3, 2, 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nHello there,sports\n")
    proc = cw("contribute", bad, "--hub", hub, "--key", keys["grace"], ok=False)
    assert proc.returncode == 1 and "not one of" in proc.stderr
    mine = cwj("contributions", "--hub", hub, "--key", keys["grace"])["contributions"]
    item = next(r for r in mine if r["status"] == "in_review")["id"]
    for reviewer in (founder, keys["alan"], keys["tim"]):
        cw("review", "submit", item, "accept", "--hub", hub, "--key", reviewer)
    shown = cwj("contribution", item, "--hub", hub)
    assert shown["status"] == "accepted" and shown["report"]["status"] == "in_review"
    nxt = cwj("review", "next", "--hub", hub, "--key", keys["alan"], "--verdict", "reject")
    assert nxt["item"] != item
    out = tmp_path / "export"
    cwj("withdraw", "--all", "--hub", hub, "--key", keys["grace"])
    exported = cwj("export", "--hub", hub, "--key", keys["grace"], "--out", out)
    assert exported["contributions"] == 3
    assert "Good morning" not in (out / "contributions.jsonl").read_text()  # withdrawn: gone
    assert cwj("ledger", "verify", "--hub", hub)["ok"]
