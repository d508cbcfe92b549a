"""The model's commands, run as a user would: train, models, lineage, card, export, API
keys, predict, revenue — each as a separate process on a hub built with accepted data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from commonweal.ledger.keys import SigningKey
from tests.kit import community, cw, cwj, text_items


def test_train_lineage_card_predict_and_bill_from_the_command_line(
    tmp_path: Path, database_url: str
) -> None:
    # The charter's 8 shards on 300 texts: the floors on rows per shard are lowered
    # explicitly (a pool this small otherwise trains one shard), so that unlearning an item
    # retrains one shard of eight.
    floors = {"training": {"min_rows_per_shard": 1, "min_rows_per_class_per_shard": 1}}
    client, keys = community(
        tmp_path / "hub", database_url, kind="text-classification", charter_extra=floors
    )
    client.close()
    hub = tmp_path / "hub"
    keys["Grace"].save(tmp_path / "grace.key", name="Grace")
    no_model = cw("predict", "--hub", hub, "river flood", ok=False)
    assert no_model.returncode == 1 and "commonweal train" in no_model.stderr

    v1 = cwj("train", "--hub", hub)
    assert v1["version"] == 1 and float(v1["metrics"]["accuracy"]) > 0.9
    listed = cwj("models", "--hub", hub)
    assert [m["version"] for m in listed] == [1]

    used = cwj("lineage", "--model", "1", "--hub", hub)
    assert len(used["items"]) == v1["manifest"]["count"]
    assert sum(m["items"] for m in used["members"]) == v1["manifest"]["count"]
    item = used["items"][0]
    assert [v["version"] for v in cwj("lineage", item, "--hub", hub)["versions"]] == [1]

    # Grace withdraws one item: the incremental version retrains one shard and drops it.
    mine = cwj("contributions", "--hub", hub, "--key", tmp_path / "grace.key")["contributions"]
    gone = next(c["id"] for c in mine if c["id"] in set(used["items"]))
    cw("withdraw", gone, "--hub", hub, "--key", tmp_path / "grace.key")
    v2 = cwj("train", "--hub", hub, "--incremental")
    assert len(v2["retrained"]) == 1 and len(v2["reused"]) == 7
    proof = cwj("lineage", gone, "--model", "2", "--hub", hub)
    assert proof["included"] is False

    cards = cwj("card", "--hub", hub, "--model", "2", "--out", tmp_path / "cards")
    assert v2["manifest"]["root"] in Path(cards["model_card"]).read_text()
    assert json.loads(Path(cards["croissant"]).read_text())["@type"] == "sc:Dataset"
    exported = cwj("model", "export", "--hub", hub, "--model", "2", "-o", tmp_path / "m.zip")
    digest = hashlib.sha256((tmp_path / "m.zip").read_bytes()).hexdigest()
    assert exported["matches_log"] and digest == v2["artifact"]["sha256"]

    made = cwj(
        "apikey", "create", "--hub", hub, "--key", tmp_path / "grace.key", "--consumer", "Acme"
    )
    secret = made["api_key"]
    said = cwj("predict", "--hub", hub, "--api-key", secret, "the river flood rain water bank")
    assert said["predictions"][0]["label"] == "river" and said["credits"] == 1
    batch = tmp_path / "ask.jsonl"
    batch.write_text("".join(json.dumps({"text": t["text"]}) + "\n" for t in text_items(3, seed=9)))
    assert cwj("predict", "--hub", hub, "--api-key", secret, batch)["calls"] == 3
    unmetered = cwj("predict", "--hub", hub, "--model", "1", "market bread price")
    assert "credits" not in unmetered and unmetered["version"] == 1

    billed = cwj("revenue", "close", "--hub", hub)
    assert billed["credits"] == 4 and billed["balance"] == 4
    assert cwj("revenue", "treasury", "--hub", hub)["balance"] == 4
    keys_listed = cwj("apikey", "list", "--hub", hub)
    cw(
        "apikey",
        "revoke",
        keys_listed[0]["key_hash"],
        "--hub",
        hub,
        "--key",
        tmp_path / "grace.key",
    )
    revoked = cw("predict", "--hub", hub, "--api-key", secret, "river", ok=False)
    assert revoked.returncode == 1 and "revoked" in revoked.stderr
    assert cwj("ledger", "verify", "--hub", hub)["ok"]
    assert isinstance(SigningKey.load(tmp_path / "grace.key"), SigningKey)
