"""The storage seams' contracts, run against each backend (as Flower's ``linkstate_test``
does): one abstract class per seam states what every database must do; ``TestSqlite`` and
``TestPostgresql`` run all of them on a database of their kind (PostgreSQL skips when
COMMONWEAL_TEST_DATABASE_URL is not set).

The seams: the log (``store/log.py``), the content vault (``store/vault.py``), and the
hub's other stored parts (``artifacts``, ``values``, ``usage``). The hub's own tests run
these through the write path; here each is held to its contract directly."""

from __future__ import annotations

import hashlib
import threading
from abc import ABC
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import Engine, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from commonweal.errors import ConfigError, Conflict, HubError, NotFound
from commonweal.ledger.event import decode_leaf, encode_leaf, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.merkle import EMPTY_ROOT, Frontier
from commonweal.store import (
    artifacts,
    counters,
    replay,
    screening,
    usage,
    values,
    vault,
    webhooks,
)
from commonweal.store.contributions import quality_report
from commonweal.store.database import open_engine, read_connection, write_connection
from commonweal.store.keyring import Keyring
from commonweal.store.log import EntryRow, LogStore
from commonweal.store.schema import (
    CONTENT_TABLES,
    PROJECTION_TABLES,
    SCHEMA_VERSION,
    content_blobs,
    content_keys,
    dedup_exact,
    metadata,
    model_blobs,
    quality_reports,
    schema_info,
)
from tests.kit import at_once, database

T = "2030-01-01T00:00:00.000Z"


def entry(index: int) -> EntryRow:
    """A real leaf (a signed join) at ``index``."""
    ev = sign_event(SigningKey.generate(), "member.join", {"name": f"m{index}"}, hub=None)
    return EntryRow(index, encode_leaf(ev.data, index, T, ev.sig), "member.join", ev.actor, T)


def count(engine: Engine, table: Table) -> int:
    with read_connection(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


class Backend(ABC):
    """A database of ``kind`` with the hub's tables, fresh for each test."""

    kind: ClassVar[str]

    @pytest.fixture
    def engine(self, tmp_path: Path) -> Iterator[Engine]:
        with database(self.kind, tmp_path) as url:
            engine = open_engine(url)
            try:
                with write_connection(engine) as conn:
                    LogStore(engine).create(conn)
                yield engine
            finally:
                engine.dispose()

    @pytest.fixture
    def log(self, engine: Engine) -> LogStore:
        return LogStore(engine)


# -- the log --------------------------------------------------------------------------------


class LogStoreContract(Backend):
    def test_a_new_log_is_empty_at_the_current_schema(self, log: LogStore) -> None:
        with write_connection(log.engine) as conn:
            assert log.head(conn) == (0, EMPTY_ROOT)
            assert log.lock_head(conn) == (0, EMPTY_ROOT)
            assert log.leaf_bytes(conn, 0, 10) == []
            log.check_schema(conn)
            assert not log.needs_upgrade(conn)
            log.create(conn)  # again: nothing changes
            assert conn.execute(select(schema_info.c.version)).scalars().all() == [SCHEMA_VERSION]
            with pytest.raises(NotFound, match="no checkpoint"):
                log.latest_checkpoint(conn)

    def test_entries_are_read_back_in_index_order_in_any_window(self, log: LogStore) -> None:
        rows = [entry(i) for i in range(7)]
        with write_connection(log.engine) as conn:
            log.write_entries(conn, rows[:3])
            log.write_entries(conn, [])
        with write_connection(log.engine) as conn:
            log.write_entries(conn, rows[3:])
        with read_connection(log.engine) as conn:
            assert log.leaf_bytes(conn, 0, 7) == [r.leaf for r in rows]
            assert log.leaf_bytes(conn, 2, 5) == [r.leaf for r in rows[2:5]]
            assert log.leaf_bytes(conn, 5, 100) == [r.leaf for r in rows[5:]]
            assert list(log.iter_leaf_bytes(conn, 1, 7, chunk=2)) == [r.leaf for r in rows[1:]]
            leaves = log.leaves(conn, 0, 7)
        assert [lf.index for lf in leaves] == list(range(7))
        assert [lf.body["name"] for lf in leaves] == [f"m{i}" for i in range(7)]
        assert leaves[4] == decode_leaf(rows[4].leaf, strict=False)

    def test_a_batch_with_an_index_already_taken_writes_nothing(self, log: LogStore) -> None:
        with write_connection(log.engine) as conn:
            log.write_entries(conn, [entry(0)])
        with pytest.raises(IntegrityError), write_connection(log.engine) as conn:
            log.set_head(conn, 2, b"x" * 32)
            log.write_entries(conn, [entry(1), entry(0)])
        with read_connection(log.engine) as conn:
            assert len(log.leaf_bytes(conn, 0, 10)) == 1
            assert log.head(conn) == (0, EMPTY_ROOT)

    def test_nodes_are_found_by_level_and_index_and_missing_ones_are_absent(
        self, log: LogStore
    ) -> None:
        # More levels than one query's worth of terms (50), to cover the batching.
        nodes = [(level, idx, hashlib.sha256(b"%d/%d" % (level, idx)).digest())
                 for level in range(60) for idx in (0, 3)]  # fmt: skip
        with write_connection(log.engine) as conn:
            log.write_nodes(conn, nodes)
            log.write_nodes(conn, [])
        wanted = [(lv, i) for lv, i, _ in nodes] + [(0, 1), (61, 0)]
        with read_connection(log.engine) as conn:
            got = log.get_nodes(conn, wanted)
            assert log.get_nodes(conn, []) == {}
            assert log.node_reader(conn).get_nodes([(5, 3), (5, 4)]) == {(5, 3): nodes[11][2]}
        assert got == {(lv, i): h for lv, i, h in nodes}

    def test_the_nodes_a_range_of_leaves_completes_are_the_ones_appending_them_made(
        self, log: LogStore
    ) -> None:
        # What ``ledger verify`` compares chunk by chunk: for any [start, end), exactly the
        # nodes ``Frontier.append`` returned for those leaves, and the stored count.
        frontier, made, when = Frontier(), [], {}
        for i in range(300):
            for lv, idx, h in frontier.append(hashlib.sha256(b"%d" % i).digest()):
                made.append((lv, idx, h))
                when[(lv, idx)] = i
        with write_connection(log.engine) as conn:
            log.write_nodes(conn, made)
        with read_connection(log.engine) as conn:
            assert log.count_nodes(conn) == 2 * 300 - (300).bit_count() == len(made)
            for start, end in [(0, 300), (0, 1), (5, 6), (7, 9), (100, 257), (256, 300), (9, 9)]:
                want = {(lv, i): h for lv, i, h in made if start <= when[(lv, i)] < end}
                assert log.nodes_completed_by(conn, start, end) == want, (start, end)

    def test_the_head_moves_and_checkpoints_are_kept_latest_first(self, log: LogStore) -> None:
        with write_connection(log.engine) as conn:
            log.set_head(conn, 3, b"r" * 32)
            for size in (1, 3, 2):
                log.add_checkpoint(conn, size, bytes([size]) * 32, f"note {size}")
        with write_connection(log.engine) as conn:
            assert log.lock_head(conn) == (3, b"r" * 32)
            assert log.latest_checkpoint(conn) == "note 3"
        with read_connection(log.engine) as conn:
            assert log.head(conn) == (3, b"r" * 32)

    def test_lock_head_holds_off_a_second_writer_until_the_first_commits(
        self, log: LogStore
    ) -> None:
        seen: list[tuple[int, bytes]] = []
        done = threading.Event()

        def second_writer() -> None:
            with write_connection(log.engine) as conn:
                seen.append(log.lock_head(conn))
            done.set()

        with write_connection(log.engine) as conn:
            assert log.lock_head(conn) == (0, EMPTY_ROOT)
            log.set_head(conn, 1, b"1" * 32)
            writer = threading.Thread(target=second_writer)
            writer.start()
            # A bounded wait for something that must not happen: the second writer reads
            # the head while the first still holds it. (Only an upper bound on time.)
            assert not done.wait(0.3), "a second writer read the head through the lock"
        writer.join(30)
        assert seen == [(1, b"1" * 32)]  # it read the committed head, not the old one

    def test_schema_checks_name_a_database_without_a_hub_or_of_another_version(
        self, log: LogStore, tmp_path: Path
    ) -> None:
        with write_connection(log.engine) as conn:
            conn.execute(update(schema_info).values(version=SCHEMA_VERSION + 1))
        with (
            write_connection(log.engine) as conn,
            pytest.raises(ConfigError, match=f"is not the {SCHEMA_VERSION} this Commonweal"),
        ):
            log.check_schema(conn)
        with write_connection(log.engine) as conn:
            conn.execute(update(schema_info).values(version=SCHEMA_VERSION - 1))
        with write_connection(log.engine) as conn:
            log.check_schema(conn)  # older: the hub upgrades it
            assert log.needs_upgrade(conn)
            log.upgrade(conn)
        with write_connection(log.engine) as conn:
            assert not log.needs_upgrade(conn)
            assert conn.execute(select(schema_info.c.version)).scalar_one() == SCHEMA_VERSION
        (tmp_path / "empty").mkdir()
        with database(self.kind, tmp_path / "empty") as url:
            empty = LogStore(open_engine(url))
            try:
                with (
                    write_connection(empty.engine) as conn,
                    pytest.raises(ConfigError, match="holds no Commonweal hub"),
                ):
                    empty.check_schema(conn)
            finally:
                empty.engine.dispose()


# -- the content vault ----------------------------------------------------------------------


MEMBER = "ab" * 32
ITEMS = [
    ("a" * 32, {"text": "The ferry leaves at noon from the north harbour", "label": "news"}),
    ("b" * 32, {"text": "Choir practice moves to Thursday evenings", "label": "notice"}),
]


class VaultContract(Backend):
    @pytest.fixture
    def keyring(self, tmp_path: Path) -> Keyring:
        return Keyring(tmp_path / "vault-keys")

    def test_stored_items_load_back_and_are_encrypted_at_rest(
        self, engine: Engine, keyring: Keyring
    ) -> None:
        with write_connection(engine) as conn:
            vault.store_items(conn, keyring, MEMBER, ITEMS)
            vault.store_items(conn, keyring, MEMBER, [])
        with read_connection(engine) as conn:
            assert vault.load_items(conn, keyring, [i for i, _ in ITEMS]) == dict(ITEMS)
            assert vault.load_item(conn, keyring, ITEMS[1][0]) == ITEMS[1][1]
            assert vault.load_items(conn, keyring, []) == {}
            assert vault.load_items(conn, keyring, ["c" * 32]) == {}
            blobs = [bytes(b) for b in conn.execute(select(content_blobs.c.ciphertext)).scalars()]
            owners = set(conn.execute(select(content_blobs.c.member)).scalars())
            keks = set(conn.execute(select(content_keys.c.kek)).scalars())
        assert len(blobs) == 2 and owners == {MEMBER}
        assert not any(b"ferry" in b or b"Choir" in b for b in blobs)
        assert keks == keyring.on_disk() and len(keks) == 1  # one KEK, outside the database

    def test_shredded_content_is_gone_and_the_rest_stays(
        self, engine: Engine, keyring: Keyring
    ) -> None:
        gone, kept = ITEMS[0][0], ITEMS[1][0]
        with write_connection(engine) as conn:
            vault.store_items(conn, keyring, MEMBER, ITEMS)
            # What screening keeps about an item goes with it too.
            conn.execute(insert(dedup_exact).values(key="k" * 64, id=gone))
            conn.execute(insert(quality_reports).values(id=gone, report="{}"))
        first = keyring.on_disk()
        with write_connection(engine) as conn:
            n, retired = vault.shred(conn, keyring, [gone, "c" * 32])
        assert n == 1 and retired == first
        vault.destroy(keyring, retired)
        vault.purge_deleted(engine)
        assert len(keyring.on_disk()) == 1 and not keyring.on_disk() & first  # rotated
        with read_connection(engine) as conn:
            assert vault.load_items(conn, keyring, [gone, kept]) == {kept: ITEMS[1][1]}
            with pytest.raises(NotFound, match="withdrawn, refused or unknown"):
                vault.load_item(conn, keyring, gone)
            for table in CONTENT_TABLES:
                left = conn.execute(select(table.c.id).where(table.c.id == gone)).all()
                assert left == [], table.name
        with write_connection(engine) as conn:
            assert vault.shred(conn, keyring, [gone])[0] == 0  # nothing left to shred

    def test_a_withdrawal_rotates_only_the_kek_of_its_bucket(
        self, engine: Engine, keyring: Keyring, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(vault, "BUCKET", 2)
        items = [(f"{n:032x}", {"text": f"item {n}"}) for n in range(5)]
        with write_connection(engine) as conn:
            vault.store_items(conn, keyring, MEMBER, items[:3])  # buckets {0, 1}, {2}
            vault.store_items(conn, keyring, MEMBER, items[3:])  # no room in {2}: {3, 4}

        def kek_of() -> dict[str, str]:
            with read_connection(engine) as conn:
                return {
                    r[0]: r[1] for r in conn.execute(select(content_keys.c.id, content_keys.c.kek))
                }

        ids = [i for i, _ in items]
        before = kek_of()
        assert len(set(before.values())) == 3 == len(keyring.on_disk())
        assert (
            before[ids[0]] == before[ids[1]] != before[ids[2]] != before[ids[3]] == before[ids[4]]
        )
        with write_connection(engine) as conn:
            assert vault.shred(conn, keyring, [ids[3]]) == (1, {before[ids[3]]})
        vault.destroy(keyring, {before[ids[3]]})
        after = kek_of()
        # Item 4 shared item 3's bucket: re-wrapped under a new KEK; the others untouched.
        assert after[ids[4]] not in before.values()
        assert {i: after[i] for i in ids[:3]} == {i: before[i] for i in ids[:3]}
        assert keyring.on_disk() == set(after.values())
        with read_connection(engine) as conn:
            kept = [i for i in items if i[0] != ids[3]]
            assert vault.load_items(conn, keyring, ids) == dict(kept)
        with write_connection(engine) as conn:  # new items go under the rotated bucket's KEK
            vault.store_items(conn, keyring, MEMBER, [("f" * 32, {"text": "new"})])
        assert kek_of()["f" * 32] == after[ids[4]]
        # Item 2 was alone in its bucket: its KEK goes, and no new one takes its place.
        with write_connection(engine) as conn:
            assert vault.shred(conn, keyring, [ids[2]]) == (1, {before[ids[2]]})
        vault.destroy(keyring, {before[ids[2]]})
        assert keyring.on_disk() == set(kek_of().values()) and len(keyring.on_disk()) == 2

    def test_a_ciphertext_moved_to_another_item_does_not_decrypt(
        self, engine: Engine, keyring: Keyring
    ) -> None:
        (a, _), (b, _) = ITEMS
        with write_connection(engine) as conn:
            vault.store_items(conn, keyring, MEMBER, ITEMS)
            blob_a = conn.execute(select(content_blobs.c.ciphertext).where(content_blobs.c.id == a))
            conn.execute(
                update(content_blobs)
                .where(content_blobs.c.id == b)
                .values(ciphertext=bytes(blob_a.scalar_one()))
            )
        with read_connection(engine) as conn, pytest.raises(HubError, match="does not decrypt"):
            vault.load_item(conn, keyring, b)
        assert count(engine, content_keys) == 2


# -- model artifacts, item values, usage ---------------------------------------------------


class ArtifactsContract(Backend):
    def test_a_blob_is_kept_once_under_its_hash_and_checked_when_read(self, engine: Engine) -> None:
        data = b"\x00shard bytes\xff" * 100
        sha = hashlib.sha256(data).hexdigest()
        with write_connection(engine) as conn:
            artifacts.put_blob(conn, sha, data)
            artifacts.put_blob(conn, sha, data)  # a reused shard: already there
        assert count(engine, model_blobs) == 1
        with read_connection(engine) as conn:
            assert artifacts.blob(conn, sha) == data
            with pytest.raises(Conflict, match="is missing from the store"):
                artifacts.blob(conn, "0" * 64)
        with write_connection(engine) as conn:
            conn.execute(update(model_blobs).values(data=data + b"!"))
        with read_connection(engine) as conn, pytest.raises(Conflict, match="does not match"):
            artifacts.blob(conn, sha)

    def test_a_versions_items_and_evaluation_items_are_kept_apart(self, engine: Engine) -> None:
        train = [f"{n:032x}" for n in range(5001)]  # more than one insert's worth
        rows = [{"version": 1, "item": i, "shard": n % 3} for n, i in enumerate(train)]
        rows += [{"version": 1, "item": f"e{n:031x}", "shard": artifacts.EVALUATION_SHARD}
                 for n in range(4)]  # fmt: skip
        rows += [{"version": 2, "item": train[7], "shard": 0}]
        with write_connection(engine) as conn:
            artifacts.add_version_items(conn, list(reversed(rows)))
        with read_connection(engine) as conn:
            assert artifacts.version_items(conn, 1) == train
            assert artifacts.version_items(conn, 1, evaluation=True) == [
                f"e{n:031x}" for n in range(4)
            ]
            assert artifacts.version_items(conn, 2) == [train[7]]
            assert artifacts.version_items(conn, 3) == []
            assert artifacts.item_versions(conn, train[7]) == {1: 1, 2: 0}
            assert artifacts.item_versions(conn, "e" + "0" * 31) == {}  # evaluation only


class ValuesContract(Backend):
    def test_a_valuations_values_come_back_sorted_by_item(self, engine: Engine) -> None:
        rows = [(f"{n:032x}", MEMBER, repr(n / 7)) for n in reversed(range(5003))]
        with write_connection(engine) as conn:
            values.add_values(conn, 1, rows)
            values.add_values(conn, 2, [("f" * 32, MEMBER, "-0.5")])
        with read_connection(engine) as conn:
            assert values.values_of(conn, 1) == sorted(rows)
            assert values.values_of(conn, 2) == [("f" * 32, MEMBER, "-0.5")]
            assert values.values_of(conn, 3) == []


class UsageContract(Backend):
    def test_calls_add_up_per_key_and_day_and_are_billed_once(self, engine: Engine) -> None:
        a, b = "a" * 64, "b" * 64
        with write_connection(engine) as conn:
            usage.add_usage(conn, a, "2030-01-01", 3)
            usage.add_usage(conn, a, "2030-01-01", 4)
            usage.add_usage(conn, a, "2030-01-02", 5)
            usage.add_usage(conn, b, "2030-01-02", 1)
        with read_connection(engine) as conn:
            assert usage.stored_calls(conn, a, "2030-01-01") == 7
            assert usage.stored_calls(conn, a, "2030-01-03") == 0
        with write_connection(engine) as conn:
            assert usage.take_unbilled(conn) == {a: 12, b: 1}
        with write_connection(engine) as conn:
            assert usage.take_unbilled(conn) == {}  # billed once
            usage.add_usage(conn, b, "2030-01-02", 2)
        with write_connection(engine) as conn:
            assert usage.take_unbilled(conn) == {b: 2}
        with read_connection(engine) as conn:
            # Billing moves calls out of "unbilled", never out of the day's count (quotas).
            assert usage.stored_calls(conn, b, "2030-01-02") == 3
            assert usage.stored_calls(conn, a, "2030-01-01") == 7

    def test_a_failed_bill_leaves_the_calls_unbilled(self, engine: Engine) -> None:
        with write_connection(engine) as conn:
            usage.add_usage(conn, "a" * 64, "2030-01-01", 3)
        with pytest.raises(RuntimeError), write_connection(engine) as conn:
            assert usage.take_unbilled(conn) == {"a" * 64: 3}
            raise RuntimeError("the revenue entry was refused")
        with write_connection(engine) as conn:
            assert usage.take_unbilled(conn) == {"a" * 64: 3}


class ScreeningContract(Backend):
    def test_the_secret_is_made_once_and_kept(self, engine: Engine) -> None:
        with write_connection(engine) as conn:
            first = screening.dedup_secret(conn)
        with write_connection(engine) as conn:
            assert screening.dedup_secret(conn) == first and len(first) == 32

    def test_indexes_and_reports_read_back(self, engine: Engine) -> None:
        a, b = "a" * 32, "b" * 32
        with write_connection(engine) as conn:
            screening.add_exact_keys(conn, {"k" * 64: a})
            screening.add_exact_keys(conn, {})
            screening.add_near_signatures(conn, [(a, b"\x01\x02"), (b, b"\x03")])
            screening.add_reports(conn, [(a, {"status": "in_review", "flags": []})])
        with read_connection(engine) as conn:
            assert screening.exact_copy(conn, "k" * 64) == a
            assert screening.exact_copy(conn, "j" * 64) is None
            assert sorted(screening.near_signatures_stored(conn)) == [
                (a, b"\x01\x02"),
                (b, b"\x03"),
            ]
            assert quality_report(conn, a) == {"status": "in_review", "flags": []}
            assert quality_report(conn, b) is None


class WebhooksContract(Backend):
    def test_a_webhook_is_set_replaced_claimed_once_put_back_and_cleared(
        self, engine: Engine
    ) -> None:
        m = "a" * 64
        with write_connection(engine) as conn:
            webhooks.set_webhook(conn, m, "https://one.example/")
            webhooks.set_webhook(conn, m, "https://two.example/")  # replaced, not added
        with read_connection(engine) as conn:
            hook = webhooks.get_webhook(conn, m)
            assert webhooks.due_webhooks(conn, 0.0) == [hook]
        assert hook is not None and (hook.url, hook.notified) == ("https://two.example/", "")
        with write_connection(engine) as conn:
            assert webhooks.claim(conn, hook, "told")
            assert not webhooks.claim(conn, hook, "told")  # a second server loses
            webhooks.put_back(conn, hook, "told", retry_at=100.0, error="answered 500")
        with read_connection(engine) as conn:
            back = webhooks.get_webhook(conn, m)
            assert webhooks.due_webhooks(conn, 99.0) == []
            assert webhooks.due_webhooks(conn, 100.0) == [back]
        assert back is not None and (back.notified, back.failures) == ("", 1)
        assert back.last_error == "answered 500"
        with write_connection(engine) as conn:
            assert webhooks.claim(conn, back, "told")
            webhooks.sent(conn, back, "told")
            after = webhooks.get_webhook(conn, m)
            assert after is not None and (after.failures, after.retry_at) == (0, 0.0)
            assert webhooks.clear_webhook(conn, m)
            assert not webhooks.clear_webhook(conn, m)
            assert webhooks.get_webhook(conn, m) is None


class CountersContract(Backend):
    def test_a_window_takes_up_to_its_limit_and_no_further(self, engine: Engine) -> None:
        with write_connection(engine) as conn:
            assert counters.take(conn, "events", "m", "2030-01-01T00:00", 4, 10) == 4
            assert counters.take(conn, "events", "m", "2030-01-01T00:00", 6, 10) == 10
            # Passing the limit takes nothing, however little is asked.
            assert counters.take(conn, "events", "m", "2030-01-01T00:00", 1, 10) is None
            # Other subjects, scopes and windows count apart.
            assert counters.take(conn, "events", "n", "2030-01-01T00:00", 1, 10) == 1
            assert counters.take(conn, "try", "m", "2030-01-01T00:00", 1, 10) == 1
            assert counters.take(conn, "events", "m", "2030-01-01T00:01", 10, 10) == 10
            # A request larger than the whole limit never fits.
            assert counters.take(conn, "events", "o", "2030-01-01T00:01", 11, 10) is None
        with write_connection(engine) as conn:
            assert counters.prune(conn, "2030-01-01T00:01") == 3
            assert counters.take(conn, "events", "m", "2030-01-01T00:00", 1, 10) == 1

    def test_usage_charges_are_held_to_the_quota(self, engine: Engine) -> None:
        k = "k" * 64
        with write_connection(engine) as conn:
            assert usage.charge(conn, k, "2030-01-01", 7, 10) == 7
            assert usage.charge(conn, k, "2030-01-01", 4, 10) is None
            assert usage.charge(conn, k, "2030-01-01", 3, 10) == 10
            assert usage.stored_calls(conn, k, "2030-01-01") == 10
            assert usage.take_unbilled(conn) == {k: 10}


class ReplayContract(Backend):
    def test_a_request_digest_is_remembered_once_until_pruned(self, engine: Engine) -> None:
        with write_connection(engine) as conn:
            assert replay.remember(conn, b"\x01" * 32, 100)
            assert not replay.remember(conn, b"\x01" * 32, 999)  # the first row stands
            assert replay.remember(conn, b"\x02" * 32, 200)
        with write_connection(engine) as conn:
            assert replay.prune(conn, 150) == 1  # expired before 150: the first only
            assert replay.prune(conn, 150) == 0
            assert not replay.remember(conn, b"\x02" * 32, 200)
            assert replay.remember(conn, b"\x01" * 32, 300)  # forgotten, so new again

    def test_two_connections_remembering_one_digest_at_once_agree(self, engine: Engine) -> None:
        # Eight connections (as two server processes would hold) race on each digest:
        # exactly one of them records it.
        for n in range(5):
            digest = bytes([n]) * 32

            def remember(_: int, d: bytes = digest) -> bool:
                with write_connection(engine) as conn:
                    return replay.remember(conn, d, 1000)

            got = at_once(8, remember)
            assert sorted(got) == [False] * 7 + [True]


class StoreContract(
    LogStoreContract,
    CountersContract,
    VaultContract,
    ArtifactsContract,
    ValuesContract,
    UsageContract,
    ScreeningContract,
    WebhooksContract,
    ReplayContract,
):
    """Every seam's contract, for one backend."""


class TestSqlite(StoreContract):
    kind = "sqlite"


class TestPostgresql(StoreContract):
    kind = "postgresql"


def test_every_stored_table_has_a_contract_or_is_a_projection() -> None:
    """A new table that is not rebuilt from the log needs a contract above."""
    covered = {"schema_info", "ledger_head", "ledger_entries", "ledger_nodes",
               "ledger_checkpoints", "content_blobs", "content_keys", "model_blobs",
               "model_items", "item_values", "usage", "dedup_exact", "near_signatures",
               "quality_reports", "hub_settings", "webhooks", "rate_counters",
               "seen_requests"}  # fmt: skip
    projections = {t.name for t in PROJECTION_TABLES}
    assert set(metadata.tables) - projections - covered == set()
