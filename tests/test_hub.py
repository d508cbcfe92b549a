"""The hub's write path and storage, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update

from commonweal.errors import (
    BadSignature,
    Conflict,
    Forbidden,
    InvalidInput,
    Replay,
    UnknownMember,
    VerificationFailed,
)
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import MemoryTree, verify_consistency, verify_inclusion
from commonweal.ledger.note import parse_checkpoint
from commonweal.store.database import write_connection
from commonweal.store.schema import ledger_checkpoints, ledger_entries, ledger_head, ledger_nodes
from commonweal.store.schema import members as members_table
from commonweal.verify import Witness, verify_hub
from tests.kit import make_hub


def join(hub: Hub, name: str, **body: str) -> SigningKey:
    key = SigningKey.generate()
    hub.append([sign_event(key, "member.join", {"name": name, **body}, hub=hub.origin)])
    return key


def test_founding_event_makes_the_founder_a_member(hub: tuple[Hub, SigningKey]) -> None:
    h, founder = hub
    assert h.log.size() == 1
    [m] = h.members()
    assert (m["key"], m["name"], m["role"], m["status"]) == (
        founder.key_id,
        "Ada",
        "founder",
        "active",
    )
    assert h.community()["hub_key"] == h.signer.key.key_id
    assert verify_hub(h).size == 1


def test_open_community_admits_anyone_with_a_key(hub: tuple[Hub, SigningKey]) -> None:
    h, _ = hub
    k = join(h, "Grace")
    assert {m["key"]: m["status"] for m in h.members()}[k.key_id] == "active"
    cp = parse_checkpoint(h.log.checkpoint(), h.verifier)
    assert cp.size == 2 and cp.origin == h.origin


def test_invite_policy_needs_an_unused_token(tmp_path: Path, database_url: str) -> None:
    h, founder = make_hub(tmp_path / "hub", database_url, join_policy="invite")
    with pytest.raises(Forbidden, match="invitation"):
        join(h, "Grace")
    token = "a-secret-token-for-grace"
    th = hashlib.sha256(token.encode()).hexdigest()
    h.append([sign_event(founder, "invite.create", {"token_hash": th}, hub=h.origin)])
    with pytest.raises(Forbidden, match="not one this community issued"):
        join(h, "Grace", invite="wrong-token")
    join(h, "Grace", invite=token)
    with pytest.raises(Conflict, match="already used"):
        join(h, "Alan", invite=token)
    assert [m["name"] for m in h.members()] == ["Ada", "Grace"] or {
        m["name"] for m in h.members()
    } == {"Ada", "Grace"}
    assert verify_hub(h).size == 3
    h.close()


def test_approval_policy_keeps_a_newcomer_pending_until_approved(
    tmp_path: Path, database_url: str
) -> None:
    h, founder = make_hub(tmp_path / "hub", database_url, join_policy="approval")
    newcomer = join(h, "Grace")
    assert {m["key"]: m["status"] for m in h.members()}[newcomer.key_id] == "pending"
    with pytest.raises(Forbidden, match="pending"):
        h.append([sign_event(newcomer, "invite.create", {"token_hash": "0" * 64}, hub=h.origin)])
    h.append([sign_event(founder, "member.approve", {"member": newcomer.key_id}, hub=h.origin)])
    assert {m["key"]: m["status"] for m in h.members()}[newcomer.key_id] == "active"
    with pytest.raises(Conflict, match="already active"):
        h.append([sign_event(founder, "member.approve", {"member": newcomer.key_id}, hub=h.origin)])
    verify_hub(h)
    h.close()


def test_refused_events_append_nothing_and_the_log_still_verifies(
    hub: tuple[Hub, SigningKey],
) -> None:
    h, founder = hub
    good = sign_event(SigningKey.generate(), "member.join", {"name": "Grace"}, hub=h.origin)
    h.append([good])
    before = (h.log.size(), h.log.checkpoint())
    stranger = SigningKey.generate()

    forged = good.to_wire()
    forged["event"] = {**forged["event"], "body": {"name": "Mallory"}}
    cases = [
        (forged, BadSignature),  # body changed after signing
        (good.to_wire(), Replay),  # the same signed event again
        (
            sign_event(stranger, "invite.create", {"token_hash": "1" * 64}, hub=h.origin).to_wire(),
            UnknownMember,
        ),
        (
            sign_event(founder, "member.join", {"name": "Ada again"}, hub=h.origin).to_wire(),
            Conflict,
        ),
        (
            sign_event(stranger, "member.join", {"name": "grace"}, hub=h.origin).to_wire(),
            Conflict,
        ),  # taken
        (
            sign_event(stranger, "member.join", {"name": "X", "age": 3}, hub=h.origin).to_wire(),
            InvalidInput,
        ),
        (sign_event(stranger, "member.fly", {}, hub=h.origin).to_wire(), InvalidInput),
        ({"event": {"v": 1}, "sig": ""}, InvalidInput),
        ("not an object", InvalidInput),
    ]
    for doc, exc in cases:
        with pytest.raises(exc):
            h.submit(doc)
    assert (h.log.size(), h.log.checkpoint()) == before
    assert verify_hub(h).size == before[0]


def test_a_batch_is_all_or_nothing(hub: tuple[Hub, SigningKey]) -> None:
    h, _ = hub
    a, b = SigningKey.generate(), SigningKey.generate()
    batch = [
        sign_event(a, "member.join", {"name": "Grace"}, hub=h.origin),
        sign_event(b, "member.join", {"name": "GRACE"}, hub=h.origin),  # name taken by the first
    ]
    with pytest.raises(Conflict, match=r"events\[1\]"):
        h.submit({"events": [e.to_wire() for e in batch]})
    assert h.log.size() == 1 and len(h.members()) == 1
    # The refused batch left no trace in the hub's cached state either.
    ok = h.submit({"events": [batch[0].to_wire()]})
    assert ok.size == 2
    verify_hub(h)


def test_two_hub_processes_share_one_log(hub: tuple[Hub, SigningKey], tmp_path: Path) -> None:
    h1, _ = hub
    assert h1.directory is not None
    h2 = Hub.open(h1.directory)
    try:
        for i in range(5):
            join(h1 if i % 2 else h2, f"m{i}")
        assert h1.log.size() == h2.log.size() == 6
        assert h1.state.size == 6 or h2.state.size == 6
        verify_hub(h2)
    finally:
        h2.close()


def _writer(directory: str, prefix: str, n: int) -> None:
    h = Hub.open(directory)
    for i in range(n):
        keys = [SigningKey.generate() for _ in range(3)]
        h.append(
            [
                sign_event(k, "member.join", {"name": f"{prefix}{i}-{j}"}, hub=h.origin)
                for j, k in enumerate(keys)
            ]
        )
    h.close()


def test_concurrent_writers_never_fork_the_log(hub: tuple[Hub, SigningKey]) -> None:
    h, _ = hub
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(h.directory), p, 15)) for p in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert h.log.size() == 1 + 2 * 15 * 3
    report = verify_hub(h)
    assert report.members == 91


def test_proofs_from_storage_verify_against_signed_checkpoints(
    hub: tuple[Hub, SigningKey],
) -> None:
    h, _ = hub
    notes = []
    for i in range(13):
        join(h, f"m{i}")
        notes.append(parse_checkpoint(h.log.checkpoint(), h.verifier))
    leaves = [e.data for e in h.log.entries(0, None)]
    tree = MemoryTree(leaves)
    for cp in notes:
        assert tree.root(cp.size) == cp.root
        for index in (0, cp.size // 2, cp.size - 1):
            p = h.log.inclusion(index, cp.size)
            verify_inclusion(
                bytes.fromhex(p["leaf_hash"]),
                index,
                cp.size,
                [bytes.fromhex(x) for x in p["proof"]],
                cp.root,
            )
    for old in notes:
        for new in notes:
            if old.size <= new.size:
                c = h.log.consistency(old.size, new.size)
                verify_consistency(
                    old.size, new.size, old.root, new.root, [bytes.fromhex(x) for x in c["proof"]]
                )


def test_tampered_entry_is_named_by_verify(hub: tuple[Hub, SigningKey]) -> None:
    h, _ = hub
    for i in range(6):
        join(h, f"m{i}")
    with write_connection(h.engine) as conn:
        leaf = conn.execute(
            select(ledger_entries.c.leaf).where(ledger_entries.c.idx == 4)
        ).scalar_one()
        forged = bytes(leaf).replace(b'"name":"m3"', b'"name":"m9"')
        assert forged != leaf
        conn.execute(update(ledger_entries).where(ledger_entries.c.idx == 4).values(leaf=forged))
    with pytest.raises(VerificationFailed, match="entry 4: signature") as exc:
        verify_hub(h)
    assert exc.value.index == 4


def test_stale_projection_is_caught_and_rebuild_fixes_it(hub: tuple[Hub, SigningKey]) -> None:
    h, _ = hub
    k = join(h, "Grace")
    with write_connection(h.engine) as conn:
        conn.execute(delete(members_table).where(members_table.c.key == k.key_id))
    with pytest.raises(VerificationFailed, match="projection 'members'"):
        verify_hub(h)
    counts = h.rebuild()
    assert counts["members"] == 2 and counts["entries"] == 2
    assert verify_hub(h).members == 2


def _truncate(h: Hub, size: int) -> None:
    """What a dishonest operator would do: cut the log back and rewrite the head."""
    with write_connection(h.engine) as conn:
        conn.execute(delete(ledger_entries).where(ledger_entries.c.idx >= size))
        # Drop every stored subtree that covers an entry at or past `size`.
        for level in range(40):
            conn.execute(
                delete(ledger_nodes).where(
                    ledger_nodes.c.level == level, ((ledger_nodes.c.idx + 1) * (2**level)) > size
                )
            )
        conn.execute(delete(ledger_checkpoints).where(ledger_checkpoints.c.size > size))
        leaves = [
            bytes(r[0])
            for r in conn.execute(select(ledger_entries.c.leaf).order_by(ledger_entries.c.idx))
        ]
        conn.execute(update(ledger_head).values(size=size, root=MemoryTree(leaves).root()))


def test_rewritten_history_is_caught_by_a_verifier_that_saw_it_before(
    hub: tuple[Hub, SigningKey], tmp_path: Path
) -> None:
    h, _ = hub
    for i in range(5):
        join(h, f"m{i}")
    witness = Witness(tmp_path / "w")
    verify_hub(h, witness=witness)  # the verifier remembers size 6
    _truncate(h, 3)
    assert h.directory is not None
    rewritten = Hub.open(h.directory)
    rewritten.rebuild()
    for i in range(6):
        join(rewritten, f"other{i}")  # a new, validly signed history of size 9
    assert rewritten.log.size() == 9
    verify_hub(rewritten)  # on its own, the rewritten log is self-consistent...
    with pytest.raises(VerificationFailed, match="rewrote its history"):
        verify_hub(rewritten, witness=witness)  # ...but not an extension of what was seen
    rewritten.close()


def test_a_shrunk_log_is_caught(hub: tuple[Hub, SigningKey], tmp_path: Path) -> None:
    h, _ = hub
    for i in range(4):
        join(h, f"m{i}")
    witness = Witness(tmp_path / "w")
    verify_hub(h, witness=witness)
    _truncate(h, 2)
    assert h.directory is not None
    h2 = Hub.open(h.directory)
    with pytest.raises(VerificationFailed, match="shrank"):
        verify_hub(h2, witness=witness)
    h2.close()


def test_opening_a_database_without_a_hub_says_how_to_make_one(tmp_path: Path) -> None:
    from commonweal.errors import ConfigError

    with pytest.raises(ConfigError, match="commonweal init"):
        Hub.open(tmp_path)


def test_checkpoint_history_is_kept(hub: tuple[Hub, SigningKey]) -> None:
    h, _ = hub
    for i in range(3):
        join(h, f"m{i}")
    with h.engine.connect() as conn:
        sizes = [r[0] for r in conn.execute(text("SELECT size FROM ledger_checkpoints"))]
    assert sorted(sizes) == [1, 2, 3, 4]


def test_projection_rows_follow_the_table_columns() -> None:
    from commonweal.community.state import INVITE_COLUMNS, MEMBER_COLUMNS
    from commonweal.store.schema import invites

    assert tuple(c.name for c in members_table.c) == MEMBER_COLUMNS
    assert tuple(c.name for c in invites.c) == INVITE_COLUMNS


def test_a_remote_verifier_finds_the_served_projections_equal_to_its_replay(
    tmp_path: Path, database_url: str
) -> None:
    """What ``ledger verify --hub URL`` compares: the projections a hub serves against the
    rows its replay implies, here with contributions in them (a contribution's row has its
    table's columns only; the item it resembles lives in the log)."""
    import base64

    from commonweal.verify import verify_log
    from tests.kit import community, text_items

    client, _ = community(
        tmp_path / "hub", database_url, kind="text-classification", items=text_items(6)
    )
    try:
        note = client.checkpoint()
        leaves = [base64.b64decode(e["leaf"]) for e in client.iter_entries()]
        report = verify_log(
            iter(leaves),
            checkpoint_note=note,
            verifier=client.verifier(),
            witness=Witness(tmp_path / "seen"),
            projections=client.projections(),
            workers=1,
        )
    finally:
        client.close()
    assert "projections equal the replayed state" in report.checks


def test_a_version_1_hub_is_upgraded_when_opened(tmp_path: Path, database_url: str) -> None:
    """Schema 2 (part 3) only added tables: a hub made before it opens, gains them, and
    its log still verifies."""
    from commonweal.store.schema import (
        SCHEMA_VERSION,
        apikeys,
        epochs,
        holdings,
        item_values,
        model_blobs,
        model_items,
        models,
        payouts,
        schema_info,
        treasury,
        usage,
        valuations,
    )

    h, _ = make_hub(tmp_path / "hub", database_url)
    with write_connection(h.engine) as conn:
        for table in (apikeys, model_blobs, model_items, models, treasury, usage):
            table.drop(conn)
        for table in (valuations, holdings, epochs, payouts, item_values):  # schema 3
            table.drop(conn)
        conn.execute(update(schema_info).values(version=1))
    h.close()
    again = Hub.open(tmp_path / "hub")
    try:
        with again.read() as conn:
            assert conn.execute(select(schema_info.c.version)).scalar_one() == SCHEMA_VERSION
            assert conn.execute(select(models)).all() == []
        assert verify_hub(again).size == 1  # the new projections were filled from the log
    finally:
        again.close()


def test_a_refresh_from_an_older_snapshot_never_moves_the_cache_back(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server thread may read the head in a snapshot taken just before this process
    appended; catching up to that older size must not rewind the tree's frontier (the next
    append would then write its nodes at the wrong index)."""
    h, _ = make_hub(tmp_path / "hub", database_url)
    try:
        h.append(
            [sign_event(SigningKey.generate(), "member.join", {"name": "Grace"}, hub=h.origin)]
        )
        size = h.log.size()
        real_head = h.store.head
        monkeypatch.setattr(h.store, "head", lambda conn: (size - 1, real_head(conn)[1]))
        h.refresh()
        monkeypatch.setattr(h.store, "head", real_head)
        h.append([sign_event(SigningKey.generate(), "member.join", {"name": "Alan"}, hub=h.origin)])
        assert verify_hub(h).size == size + 1
    finally:
        h.close()


def test_the_database_url_in_the_environment_overrides_hub_toml(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``COMMONWEAL_DATABASE_URL`` (a moved database, a container's secret) wins over the
    database ``hub.toml`` names; a ``database=`` given to ``Hub.open`` wins over both."""
    from commonweal.errors import ConfigError

    h, founder = make_hub(tmp_path / "hub", database_url)
    join(h, "Grace")
    size, checkpoint = h.log.size(), h.log.checkpoint()
    h.close()
    config = tmp_path / "hub" / "hub.toml"
    config.write_text(config.read_text().replace(database_url, "sqlite:///elsewhere.db"))
    with pytest.raises(ConfigError, match="holds no Commonweal hub"):
        Hub.open(tmp_path / "hub")  # hub.toml's database: an empty file

    monkeypatch.setenv("COMMONWEAL_DATABASE_URL", database_url)
    moved = Hub.open(tmp_path / "hub")
    try:
        assert moved.log.size() == size and moved.log.checkpoint() == checkpoint
        assert moved.state.members[founder.key_id].name == "Ada"
    finally:
        moved.close()
    with pytest.raises(ConfigError, match="holds no Commonweal hub"):
        Hub.open(tmp_path / "hub", database="sqlite:///elsewhere.db")
