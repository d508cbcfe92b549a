"""Every kind of tampering ``ledger verify`` must catch: in a hub's database, and in an
exported log file. One catalogue, run by ``tests/test_tamper.py`` on both databases and
by ``bench/tamper.py``, which prints it as a table.

Each kind changes a copy of a community built once (``build_community``: members, an
invite, reviewed data, a model version, a valuation, an epoch, revenue, a payout and a
proposal), and returns the words the refusal must contain, so that a kind only counts as
detected when the message names what was altered.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select, update
from typer.testing import CliRunner

from commonweal.cli import app
from commonweal.errors import CommonwealError
from commonweal.hub import Hub
from commonweal.ledger.canonical import canonical
from commonweal.ledger.event import decode_leaf, encode_leaf, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import Frontier, MemoryTree
from commonweal.ledger.note import Checkpoint, NoteSigner
from commonweal.store import schema
from commonweal.store.artifacts import EVALUATION_SHARD
from tests.kit.communities import community, digit_items

__all__ = [
    "DATABASE_KINDS",
    "EXPORT_KINDS",
    "DatabaseKind",
    "ExportKind",
    "Tampering",
    "build_community",
    "detected",
    "export_log",
    "hub_tampering",
    "read_lines",
    "verify_command",
    "write_lines",
]


def build_community(directory: Path, database: str) -> Path:
    """A closed hub in ``directory`` holding something in every table ``verify`` reads."""
    client, keys = community(directory, database, items=digit_items(0, 120))
    try:
        hub = client.embedded_hub
        client.create_invite(keys["Ada"])
        assert hub.models.train()["version"] == 1
        hub.ownership.value()
        hub.ownership.close_epoch()
        secret, _ = client.create_apikey(keys["Tim"], "Corner Shop")
        client.predict([{"image": it["image"]} for it in digit_items(0, 5)], api_key=secret)
        assert hub.models.close_revenue() is not None
        hub.ownership.pay_out(None)
        signal = [{"type": "signal", "text": "Plant more trees by the canal"}]
        client.submit(
            [
                sign_event(
                    keys["Grace"],
                    "proposal.create",
                    {"title": "Trees", "actions": signal},
                    hub=client.origin,
                )
            ]
        )
    finally:
        client.close()
    return directory


def verify_command(*args: str) -> tuple[dict[str, Any] | None, str]:
    """``commonweal ledger verify ARGS --workers 1 --json`` in this process: the report, or
    ``None`` and the one-line message of the Commonweal error that refused it."""
    result = CliRunner().invoke(app, ["ledger", "verify", *args, "--workers", "1", "--json"])
    if result.exception is None:
        return json.loads(result.stdout), ""
    if not isinstance(result.exception, CommonwealError):
        raise result.exception
    return None, str(result.exception)


def detected(message: str, words: list[str]) -> bool:
    """A refusal counts when its message holds every word that names what was altered."""
    return bool(message) and all(w.lower() in message.lower() for w in words)


# -- the database -----------------------------------------------------------------------------


class Tampering:
    """One copy of the community, open for tampering in one transaction (``conn``)."""

    def __init__(self, directory: Path, conn: Connection) -> None:
        self.directory = directory
        self.conn = conn
        self.signer = NoteSigner.parse((directory / "hub.key").read_text())
        self.size = int(conn.execute(select(schema.ledger_head.c.size)).scalar_one())

    def leaf(self, index: int) -> bytes:
        e = schema.ledger_entries.c
        return bytes(self.conn.execute(select(e.leaf).where(e.idx == index)).scalar_one())

    def set_leaf(self, index: int, leaf: bytes) -> None:
        e = schema.ledger_entries.c
        self.conn.execute(update(schema.ledger_entries).where(e.idx == index).values(leaf=leaf))

    def first(self, kind: str, after: int = 0) -> int:
        """The index of the first entry of ``kind`` at or after ``after``."""
        e = schema.ledger_entries.c
        stmt = select(func.min(e.idx)).where(e.kind == kind, e.idx >= after)
        return int(self.conn.execute(stmt).scalar_one())

    def set_node(self, level: int, idx: int, value: bytes) -> None:
        n = schema.ledger_nodes.c
        self.conn.execute(
            update(schema.ledger_nodes).where(n.level == level, n.idx == idx).values(hash=value)
        )

    def reseal(self, size: int) -> None:
        """What an operator holding the hub's key does to hide a rewrite: recompute every
        tree node over the first ``size`` leaves, sign a checkpoint of them, and move the
        head there."""
        leaves = [self.leaf(i) for i in range(size)]
        tree = MemoryTree(leaves)
        self.conn.execute(delete(schema.ledger_nodes))
        self.conn.execute(
            insert(schema.ledger_nodes),
            [{"level": lv, "idx": i, "hash": h} for (lv, i), h in tree.nodes.items()],
        )
        root = tree.root()
        c = schema.ledger_checkpoints.c
        self.conn.execute(delete(schema.ledger_checkpoints).where(c.size >= size))
        note = Checkpoint(self.signer.name, size, root).sign(self.signer)
        self.conn.execute(insert(schema.ledger_checkpoints).values(size=size, root=root, note=note))
        self.conn.execute(update(schema.ledger_head).values(size=size, root=root))

    def change_row(self, table: Table, column: str, change: Callable[[Any], Any]) -> None:
        """Change ``column`` of the first row of ``table`` (by primary key)."""
        key = next(iter(table.primary_key.columns))
        row = self.conn.execute(select(table).order_by(key).limit(1)).mappings().one()
        self.conn.execute(
            update(table).where(key == row[key.name]).values({column: change(row[column])})
        )


def _later_time(leaf: bytes) -> bytes:
    """``leaf`` with its log time a millisecond later (the same length: nothing else moves)."""
    found = re.search(rb'"log_time":"([^"]+)"', leaf)
    assert found is not None
    old = found.group(1)
    ms = re.search(rb"\.(\d{3})Z$", old)
    assert ms is not None
    new = old[: ms.start(1)] + b"%03d" % ((int(ms.group(1)) + 1) % 1000) + b"Z"
    return leaf.replace(b'"log_time":"' + old, b'"log_time":"' + new)


def _forged_leaf(index: int, like: bytes, *, hub: str | None = None) -> bytes:
    """A validly signed join by a stranger, as the leaf at ``index``, at ``like``'s time,
    signed for ``like``'s hub unless another ``hub`` is given."""
    was = decode_leaf(like, strict=False)
    ev = sign_event(
        SigningKey.generate(), "member.join", {"name": "Mallory"}, hub=hub or was.event.get("hub")
    )
    return encode_leaf(ev.data, index, was.log_time, ev.sig)


def _leaf_event_altered(t: Tampering) -> list[str]:
    i = t.first("member.join")
    t.set_leaf(i, t.leaf(i).replace(b'"Grace"', b'"Grave"'))
    return [f"entry {i}", "signature"]


def _leaf_log_time_altered(t: Tampering) -> list[str]:
    i = t.size - 3
    t.set_leaf(i, _later_time(t.leaf(i)))
    return [f"entry {i}", "leaf was changed"]


def _leaf_index_altered(t: Tampering) -> list[str]:
    i = t.first("review.submit")
    t.set_leaf(i, t.leaf(i).replace(b',"index":%d,' % i, b',"index":%d,' % (i + 1000)))
    return [f"entry {i}", f"leaf says it is entry {i + 1000}"]


def _entry_deleted(t: Tampering) -> list[str]:
    i = t.first("review.submit")
    t.conn.execute(delete(schema.ledger_entries).where(schema.ledger_entries.c.idx == i))
    return [f"entry {i}", f"leaf says it is entry {i + 1}"]


def _entries_swapped(t: Tampering) -> list[str]:
    i = t.first("contribution.submit")
    a, b = t.leaf(i), t.leaf(i + 1)
    t.set_leaf(i, b)
    t.set_leaf(i + 1, a)
    return [f"entry {i}", f"leaf says it is entry {i + 1}"]


def _entry_replaced_by_forgery(t: Tampering) -> list[str]:
    # The last entry, so that the rules accept the forgery and only the tree can tell.
    i = t.size - 1
    t.set_leaf(i, _forged_leaf(i, t.leaf(i)))
    return [f"entry {i}", "leaf was changed"]


def _other_hubs_event_resealed(t: Tampering) -> list[str]:
    """The operator logs an event lifted from another community's log (signed for that
    hub) and re-signs the checkpoint over it: tree and checkpoint agree, the rules do not."""
    i = t.size - 1
    t.set_leaf(i, _forged_leaf(i, t.leaf(i), hub="elsewhere.example/commonweal/other"))
    t.reseal(t.size)
    return [f"entry {i}", "signed for another hub"]


def _hub_event_resigned(t: Tampering) -> list[str]:
    """The operator rewrites a review decision the hub logged, and signs it again."""
    i = t.first("review.decide")
    leaf = decode_leaf(t.leaf(i), strict=False)
    event = json.loads(json.dumps(leaf.event))
    decision = event["body"]["decisions"][0]
    decision["status"] = "rejected" if decision.get("status") == "accepted" else "accepted"
    data = canonical(event)
    t.set_leaf(i, encode_leaf(data, i, leaf.log_time, t.signer.key.sign(data)))
    return [f"entry {i}", "decisions differ"]


def _entry_added_past_checkpoint(t: Tampering) -> list[str]:
    last = t.leaf(t.size - 1)
    t.conn.execute(
        insert(schema.ledger_entries).values(
            idx=t.size,
            leaf=_forged_leaf(t.size, last),
            kind="member.join",
            actor="0" * 64,
            log_time=decode_leaf(last, strict=False).log_time,
        )
    )
    return [f"entries up to index {t.size}", "without the hub signing"]


def _entry_added_with_head(t: Tampering) -> list[str]:
    _entry_added_past_checkpoint(t)
    t.conn.execute(update(schema.ledger_head).values(size=t.size + 1))
    return ["log head", f"size {t.size + 1}"]


def _last_entry_deleted(t: Tampering) -> list[str]:
    e = schema.ledger_entries.c
    t.conn.execute(delete(schema.ledger_entries).where(e.idx == t.size - 1))
    return [f"checkpoint says {t.size} entries", f"holds {t.size - 1}"]


def _checkpoint_altered(t: Tampering) -> list[str]:
    c = schema.ledger_checkpoints.c
    note = str(t.conn.execute(select(c.note).where(c.size == t.size)).scalar_one())
    lines = note.split("\n")
    lines[2] = ("B" if lines[2][0] == "A" else "A") + lines[2][1:]  # the root, still base64
    forged = "\n".join(lines)
    t.conn.execute(update(schema.ledger_checkpoints).where(c.size == t.size).values(note=forged))
    return ["signed checkpoint does not verify"]


def _checkpoint_by_another_key(t: Tampering) -> list[str]:
    c = schema.ledger_checkpoints.c
    root = bytes(t.conn.execute(select(c.root).where(c.size == t.size)).scalar_one())
    other = NoteSigner(t.signer.name, SigningKey.generate())
    note = Checkpoint(t.signer.name, t.size, root).sign(other)
    t.conn.execute(update(schema.ledger_checkpoints).where(c.size == t.size).values(note=note))
    return ["signed checkpoint does not verify"]


def _latest_checkpoint_deleted(t: Tampering) -> list[str]:
    c = schema.ledger_checkpoints.c
    t.conn.execute(delete(schema.ledger_checkpoints).where(c.size == t.size))
    return ["log head", f"size {t.size}", "latest signed checkpoint"]


def _history_shrunk(t: Tampering) -> list[str]:
    t.conn.execute(delete(schema.ledger_entries).where(schema.ledger_entries.c.idx == t.size - 1))
    t.reseal(t.size - 1)
    return ["the log shrank", "rewrote its history"]


def _history_rewritten(t: Tampering) -> list[str]:
    t.set_leaf(t.size - 1, _later_time(t.leaf(t.size - 1)))
    t.reseal(t.size)
    return ["not an extension", "rewrote its history"]


def _tree_leaf_hash_altered(t: Tampering) -> list[str]:
    t.set_node(0, 5, b"\x00" * 32)
    return ["tree node (level 0, index 5) over entry 5"]


def _tree_inner_node_altered(t: Tampering) -> list[str]:
    t.set_node(2, 1, b"\x01" * 32)
    return ["tree node (level 2, index 1) over entries 4-7"]


def _tree_frontier_node_altered(t: Tampering) -> list[str]:
    # The node the hub folds into the root of its next checkpoint.
    level, idx = Frontier.keys_for(t.size)[-1]
    t.set_node(level, idx, b"\x02" * 32)
    return [f"tree node (level {level}, index {idx})"]


def _tree_node_deleted(t: Tampering) -> list[str]:
    n = schema.ledger_nodes.c
    t.conn.execute(delete(schema.ledger_nodes).where(n.level == 1, n.idx == 3))
    return ["tree node (level 1, index 3)", "missing"]


def _tree_node_added(t: Tampering) -> list[str]:
    t.conn.execute(insert(schema.ledger_nodes).values(level=0, idx=t.size + 5, hash=b"\x03" * 32))
    return ["tree nodes where a log of", "past the log"]


def _head_root_altered(t: Tampering) -> list[str]:
    t.conn.execute(update(schema.ledger_head).values(root=b"\x04" * 32))
    return ["log head", "root 0404"]


def _projection(table: Table, column: str, change: Callable[[Any], Any]) -> DatabaseKind:
    def tamper(t: Tampering) -> list[str]:
        t.change_row(table, column, change)
        return [f"projection '{table.name}' differs", "commonweal rebuild"]

    return DatabaseKind(f"projection {table.name}.{column}", "projections", tamper)


def _projection_row_deleted(t: Tampering) -> list[str]:
    m = schema.members.c
    key = t.conn.execute(select(m.key).order_by(m.key).limit(1)).scalar_one()
    t.conn.execute(delete(schema.members).where(m.key == key))
    return ["projection 'members' differs", "no such row"]


def _manifest_row_deleted(t: Tampering) -> list[str]:
    i = schema.model_items.c
    item = t.conn.execute(select(i.item).where(i.shard >= 0).order_by(i.item).limit(1)).scalar_one()
    t.conn.execute(delete(schema.model_items).where(i.item == item, i.shard >= 0))
    return ["stored item list of version 1", "manifest root"]


def _evaluation_row_deleted(t: Tampering) -> list[str]:
    i = schema.model_items.c
    item = t.conn.execute(
        select(i.item).where(i.shard == EVALUATION_SHARD).order_by(i.item).limit(1)
    ).scalar_one()
    t.conn.execute(delete(schema.model_items).where(i.item == item, i.shard == EVALUATION_SHARD))
    return ["evaluation", "version 1"]


def _stored_value_altered(t: Tampering) -> list[str]:
    t.change_row(schema.item_values, "value", lambda v: "1" if v != "1" else "2")
    return ["valuation 1"]


def _model_artifact_altered(t: Tampering) -> list[str]:
    b = schema.model_blobs.c
    sha, data = t.conn.execute(select(b.sha256, b.data).limit(1)).one()
    flipped = bytes(data[:-1]) + bytes([data[-1] ^ 1])
    t.conn.execute(update(schema.model_blobs).where(b.sha256 == sha).values(data=flipped))
    return ["model version 1, shard 0", "does not match its hash", "altered"]


def _model_artifact_deleted(t: Tampering) -> list[str]:
    t.conn.execute(delete(schema.model_blobs))
    return ["model version 1, shard 0", "missing"]


@dataclass(frozen=True)
class DatabaseKind:
    """Tampering with a hub's database; ``seen_first``: a verifier saw the honest log
    before (a rewritten history is caught only by someone who remembers)."""

    name: str
    where: str
    tamper: Callable[[Tampering], list[str]]
    seen_first: bool = False
    new: bool = False  # caught since part 9


def _bump(v: Any) -> Any:
    return v + 1000 if isinstance(v, int) else f"{v}x"


DATABASE_KINDS: list[DatabaseKind] = [
    DatabaseKind("an event's bytes altered", "entries", _leaf_event_altered),
    DatabaseKind("a leaf's log time altered", "entries", _leaf_log_time_altered),
    DatabaseKind("a leaf's index altered", "entries", _leaf_index_altered),
    DatabaseKind("an entry deleted", "entries", _entry_deleted),
    DatabaseKind("two entries swapped", "entries", _entries_swapped),
    DatabaseKind("an entry replaced by a signed forgery", "entries", _entry_replaced_by_forgery),
    DatabaseKind("a hub event rewritten and re-signed", "entries", _hub_event_resigned),
    DatabaseKind("another hub's event logged and re-signed", "entries", _other_hubs_event_resealed),
    DatabaseKind(
        "an entry added past the checkpoint", "entries", _entry_added_past_checkpoint, new=True
    ),
    DatabaseKind("an entry added and the head moved", "entries", _entry_added_with_head, new=True),
    DatabaseKind("the last entry deleted", "entries", _last_entry_deleted),
    DatabaseKind("the checkpoint altered", "checkpoints", _checkpoint_altered),
    DatabaseKind("the checkpoint signed by another key", "checkpoints", _checkpoint_by_another_key),
    DatabaseKind(
        "the latest checkpoint deleted", "checkpoints", _latest_checkpoint_deleted, new=True
    ),
    DatabaseKind("history shrunk and re-signed", "checkpoints", _history_shrunk, seen_first=True),
    DatabaseKind(
        "history rewritten and re-signed", "checkpoints", _history_rewritten, seen_first=True
    ),
    DatabaseKind("a leaf hash in the tree altered", "tree", _tree_leaf_hash_altered, new=True),
    DatabaseKind("an inner tree node altered", "tree", _tree_inner_node_altered, new=True),
    DatabaseKind("a frontier tree node altered", "tree", _tree_frontier_node_altered, new=True),
    DatabaseKind("a tree node deleted", "tree", _tree_node_deleted, new=True),
    DatabaseKind("a tree node added", "tree", _tree_node_added, new=True),
    DatabaseKind("the log head's root altered", "head", _head_root_altered, new=True),
    _projection(schema.community, "name", _bump),
    _projection(schema.members, "name", _bump),
    _projection(schema.invites, "created_index", _bump),
    _projection(schema.contributions, "label", _bump),
    _projection(schema.reviews, "verdict", lambda v: "reject" if v == "accept" else "accept"),
    _projection(schema.models, "artifact_sha256", lambda v: "0" * 64),
    _projection(schema.apikeys, "quota_per_day", _bump),
    _projection(schema.treasury, "balance", _bump),
    _projection(schema.valuations, "total", _bump),
    _projection(schema.holdings, "shares", _bump),
    _projection(schema.epochs, "minted", _bump),
    _projection(schema.payouts, "amount", _bump),
    _projection(schema.proposals, "title", _bump),
    DatabaseKind("a projection row deleted", "projections", _projection_row_deleted),
    DatabaseKind("a model's stored item list altered", "manifests", _manifest_row_deleted),
    DatabaseKind(
        "a model's stored evaluation list altered", "manifests", _evaluation_row_deleted, new=True
    ),
    DatabaseKind("a stored value altered", "values", _stored_value_altered),
    DatabaseKind("a stored model artifact altered", "artifacts", _model_artifact_altered, new=True),
    DatabaseKind("a stored model artifact deleted", "artifacts", _model_artifact_deleted, new=True),
]


# -- an exported file ---------------------------------------------------------------------------


def export_log(hub: Path, out: Path) -> Path:
    """``commonweal ledger export --hub HUB --out OUT`` in this process."""
    result = CliRunner().invoke(app, ["ledger", "export", "--hub", str(hub), "--out", str(out)])
    assert result.exception is None, result.exception
    return out


Lines = list[dict[str, Any]]


def _dump(lines: Lines) -> str:
    return "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in lines)


def _line_leaf(e: dict[str, Any]) -> bytes:
    return base64.b64decode(e["leaf"])


def _set_line_leaf(e: dict[str, Any], leaf: bytes) -> None:
    e["leaf"] = base64.b64encode(leaf).decode()


@dataclass(frozen=True)
class ExportKind:
    """Tampering with an exported log: ``tamper(lines, path, hub)`` edits the parsed lines
    (or the files beside ``path``; ``hub`` is the hub directory, whose key an operator
    holds) and returns the words the refusal must hold."""

    name: str
    where: str
    tamper: Callable[[Lines, Path, Path], list[str]]
    seen_first: bool = False
    new: bool = False


def _x_leaf_altered(lines: Lines, path: Path, hub: Path) -> list[str]:
    i = next(n for n, e in enumerate(lines) if e["event"]["kind"] == "member.join")
    _set_line_leaf(lines[i], _line_leaf(lines[i]).replace(b'"Grace"', b'"Grave"'))
    return [f"entry {i}", "signature"]


def _x_leaf_log_time(lines: Lines, path: Path, hub: Path) -> list[str]:
    _set_line_leaf(lines[3], _later_time(_line_leaf(lines[3])))
    return ["Merkle root", "some entry was changed"]


def _x_line_dropped(lines: Lines, path: Path, hub: Path) -> list[str]:
    del lines[4]
    return ["entry 4", "leaf says it is entry 5"]


def _x_lines_swapped(lines: Lines, path: Path, hub: Path) -> list[str]:
    lines[4], lines[5] = lines[5], lines[4]
    return ["entry 4", "leaf says it is entry 5"]


def _x_line_duplicated(lines: Lines, path: Path, hub: Path) -> list[str]:
    lines.insert(5, lines[4])
    return ["entry 5", "leaf says it is entry 4"]


def _x_last_line_dropped(lines: Lines, path: Path, hub: Path) -> list[str]:
    n = len(lines)
    del lines[-1]
    return [f"checkpoint says {n} entries", f"holds {n - 1}"]


def _x_line_appended(lines: Lines, path: Path, hub: Path) -> list[str]:
    n = len(lines)
    leaf = _forged_leaf(n, _line_leaf(lines[-1]))
    lines.append(decode_leaf(leaf, strict=False).to_json())
    return [f"checkpoint says {n} entries", f"holds {n + 1}"]


def _x_not_json(lines: Lines, path: Path, hub: Path) -> list[str]:
    lines[2] = {"leaf": "%%% not base64 %%%"}
    return [f"{path.name}:3", "not an exported entry"]


def _x_checkpoint_altered(lines: Lines, path: Path, hub: Path) -> list[str]:
    cp = Path(f"{path}.checkpoint")
    parts = cp.read_text().split("\n")
    parts[1] = str(int(parts[1]) + 1)
    cp.write_text("\n".join(parts))
    return ["signed checkpoint does not verify"]


def _x_checkpoint_missing(lines: Lines, path: Path, hub: Path) -> list[str]:
    Path(f"{path}.checkpoint").unlink()
    return [f"{path.name}.checkpoint is missing"]


def _x_other_vkey(lines: Lines, path: Path, hub: Path) -> list[str]:
    name = Path(f"{path}.vkey").read_text().split("+")[0]
    Path(f"{path}.vkey").write_text(str(NoteSigner(name, SigningKey.generate()).verifier) + "\n")
    return ["signed checkpoint does not verify"]


def _x_shrunk(lines: Lines, path: Path, hub: Path) -> list[str]:
    del lines[-1]
    signer = NoteSigner.parse((hub / "hub.key").read_text())
    tree = MemoryTree(_line_leaf(e) for e in lines)
    Path(f"{path}.checkpoint").write_text(
        Checkpoint(signer.name, len(lines), tree.root()).sign(signer)
    )
    return ["the log shrank"]


def _x_decoded_field(
    field: str, change: Callable[[Any], Any]
) -> Callable[[Lines, Path, Path], list[str]]:
    def tamper(lines: Lines, path: Path, hub: Path) -> list[str]:
        i = next(n for n, e in enumerate(lines) if e["event"]["kind"] == "member.join")
        lines[i][field] = change(lines[i][field])
        return [f"{path.name}:{i + 1}", f"decoded '{field}'", "does not match its leaf"]

    return tamper


def _renamed(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "body": {**event["body"], "name": "Mallory"}}


def _x_field_added(lines: Lines, path: Path, hub: Path) -> list[str]:
    lines[1]["verified"] = True
    return [f"{path.name}:2", "holds exactly"]


EXPORT_KINDS: list[ExportKind] = [
    ExportKind("a leaf's event altered", "lines", _x_leaf_altered),
    ExportKind("a leaf's log time altered", "lines", _x_leaf_log_time),
    ExportKind("a line dropped", "lines", _x_line_dropped),
    ExportKind("two lines swapped", "lines", _x_lines_swapped),
    ExportKind("a line duplicated", "lines", _x_line_duplicated),
    ExportKind("the last line dropped", "lines", _x_last_line_dropped),
    ExportKind("a signed forgery appended", "lines", _x_line_appended),
    ExportKind("a line without a leaf", "lines", _x_not_json),
    ExportKind("the checkpoint altered", "checkpoint", _x_checkpoint_altered),
    ExportKind("the checkpoint removed", "checkpoint", _x_checkpoint_missing),
    ExportKind("the verifier key replaced", "checkpoint", _x_other_vkey),
    ExportKind("history shrunk and re-signed", "checkpoint", _x_shrunk, seen_first=True),
    ExportKind("a decoded event edited", "decoded", _x_decoded_field("event", _renamed), new=True),
    ExportKind(
        "a decoded index edited", "decoded", _x_decoded_field("index", lambda i: i + 1), new=True
    ),
    ExportKind(
        "a decoded log time edited",
        "decoded",
        _x_decoded_field("log_time", lambda t: f"{t[:-2]}{(int(t[-2]) + 1) % 10}Z"),
        new=True,
    ),
    ExportKind(
        "a decoded signature edited",
        "decoded",
        _x_decoded_field("sig", lambda s: ("B" if s[0] == "A" else "A") + s[1:]),
        new=True,
    ),
    ExportKind("a field added to a line", "decoded", _x_field_added, new=True),
]


def read_lines(path: Path) -> Lines:
    """An export's lines, parsed."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_lines(path: Path, lines: Lines) -> None:
    """Write ``lines`` back as ``ledger export`` writes them."""
    path.write_text(_dump(lines))


@contextmanager
def hub_tampering(directory: Path) -> Iterator[Tampering]:
    """A ``Tampering`` over the hub in ``directory``, committed when the block exits."""
    hub = Hub.open(directory)
    try:
        with hub.engine.begin() as conn:
            yield Tampering(directory, conn)
    finally:
        hub.close()
