"""Withdrawal is erasure even when the database keeps old bytes, on both databases.

An attacker here holds what a database leaves behind — a copy of ``hub.db`` and
``hub.db-wal`` taken while a reader held the WAL open, or (PostgreSQL) the vault's rows as
a backup taken before the withdrawal — plus every key file left in the hub directory
afterwards. The withdrawn item must not decrypt with any of it, while the remaining items
still do. Then: a crash between the withdrawal's commit and the destruction of the old
key-encryption key (KEK) is finished by the next open; two hub processes on one database
keep reading each other's rotations; a schema-4 hub (plain item keys) migrates on open.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import nacl.exceptions
import pytest
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from commonweal.client import HubClient
from commonweal.community.charter import validate_charter
from commonweal.errors import NotFound
from commonweal.hub import Hub
from commonweal.store import vault
from commonweal.store.keyring import KEK_DIRECTORY, Keyring
from commonweal.store.schema import SCHEMA_VERSION, content_blobs, content_keys, schema_info
from commonweal.verify import verify_hub
from tests.kit import cw

SECRET = "Only Grace knows that the allotment key hangs behind the blue door."
OTHERS = [
    "Volunteers planted two hundred oak saplings along the northern edge of the common.",
    "Our library now lends seeds as well as books, and the tomato varieties went first.",
]


@pytest.fixture
def coop(tmp_path: Path, database_url: str) -> Iterator[dict[str, Any]]:
    """A text community whose founder contributed SECRET and OTHERS (the hub is open)."""
    charter = validate_charter(
        {"name": "Erasure Co-op", "task": {"kind": "text-classification", "labels": ["a", "b"]}}
    )
    directory = tmp_path / "hub"
    hub, founder = Hub.init(directory, charter=charter, founder_name="Ada", database=database_url)
    hub.close()
    with HubClient(str(directory)) as c:
        done = c.contribute(founder, [{"text": t, "label": "a"} for t in [SECRET, *OTHERS]])
        ids = [i["id"] for i in done["items"]]
        yield {
            "client": c,
            "hub": c.embedded_hub,
            "founder": founder,
            "dir": directory,
            "url": database_url,
            "secret": ids[0],
            "others": ids[1:],
        }


def rows(hub: Hub) -> dict[str, tuple[bytes, str, bytes]]:
    """Every stored item's (wrapped key, KEK id, ciphertext), as a backup would hold them."""
    with hub.read() as conn:
        got = conn.execute(
            select(
                content_keys.c.id,
                content_keys.c.key,
                content_keys.c.kek,
                content_blobs.c.ciphertext,
            ).join(content_blobs, content_blobs.c.id == content_keys.c.id)
        ).all()
    return {r[0]: (bytes(r[1]), str(r[2]), bytes(r[3])) for r in got}


def keks_on_disk(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (directory / KEK_DIRECTORY).iterdir()}


def unwraps(kek: bytes, item_id: str, wrapped: bytes) -> bytes | None:
    """The item key if ``kek`` unwraps ``wrapped``, else None: what an attacker tries."""
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(
            wrapped[24:], item_id.encode(), wrapped[:24], kek
        )
    except nacl.exceptions.CryptoError:
        return None


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    return Path(u.database or "") if u.get_backend_name() == "sqlite" else None


@contextmanager
def reader_open(url: str) -> Iterator[None]:
    """Another connection holding a read transaction (a snapshot) open meanwhile."""
    path = sqlite_path(url)
    if path is not None:
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("BEGIN")
            assert conn.execute("SELECT count(*) FROM content_keys").fetchone()[0] == 3
            yield
            conn.execute("COMMIT")
        return
    engine = create_engine(url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn, conn.begin():
            assert conn.execute(text("SELECT count(*) FROM content_keys")).scalar_one() == 3
            yield
    finally:
        engine.dispose()


def database_bytes(url: str, directory: Path) -> bytes:
    """Every byte of the database the hub wrote: its files (SQLite), or a dump of every
    table (PostgreSQL)."""
    path = sqlite_path(url)
    if path is not None:
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            from commonweal.store.schema import metadata

            return b"".join(
                repr(tuple(r)).encode() + b"".join(x for x in r if isinstance(x, bytes))
                for t in metadata.sorted_tables
                for r in conn.execute(select(t)).all()
            )
    finally:
        engine.dispose()


def test_withdrawal_with_a_reader_open_is_prompt_and_leaves_nothing_that_decrypts(
    coop: dict[str, Any], tmp_path: Path
) -> None:
    c, hub, ada, directory = coop["client"], coop["hub"], coop["founder"], coop["dir"]
    secret, others = coop["secret"], coop["others"]
    # The attacker's backup, taken before the withdrawal: the database's files (SQLite) or
    # the vault's rows (PostgreSQL), and — the control — the KEK directory as it was then.
    backup = rows(hub)
    old_keks = keks_on_disk(directory)
    item_key = unwraps(old_keks[f"kek-{backup[secret][1]}"], secret, backup[secret][0])
    assert item_key is not None  # the control: with the old KEK, the backup decrypts
    assert vault.decrypt_item(secret, item_key, backup[secret][2]) == {"text": SECRET, "label": "a"}

    with reader_open(coop["url"]):
        started = time.monotonic()
        done = c.withdraw(ada, [secret])
        took = time.monotonic() - started
        # Copied while the reader still pins the WAL: the old frames are all there.
        path = sqlite_path(coop["url"])
        if path is not None:
            for p in path.parent.glob(path.name + "*"):
                shutil.copy(p, tmp_path / p.name)
    assert took < 5, f"the withdrawal waited {took:.1f} s for a reader"
    assert done["entries"][0]["kind"] == "contribution.withdraw"
    assert c.contribution(secret)["status"] == "withdrawn"

    left = keks_on_disk(directory)
    assert len(left) == 1 and not set(left) & set(old_keks)  # rotated, the old one gone
    # Whatever copy of the withdrawn row the attacker holds, no KEK left on disk opens it.
    wrapped_copies = [backup[secret][0]]
    if path is not None:
        with closing(sqlite3.connect(tmp_path / path.name)) as copy:
            assert copy.execute("SELECT count(*) FROM content_keys").fetchone()[0] == 2
    for kek in left.values():
        for wrapped in wrapped_copies:
            assert unwraps(kek, secret, wrapped) is None
        # ... nor any backed-up key of the remaining items: the backup is dead weight.
        for other in others:
            assert unwraps(kek, other, backup[other][0]) is None
    # The item key itself never reached the database, before or after.
    assert item_key not in database_bytes(coop["url"], directory)
    if path is not None:
        assert item_key not in b"".join(p.read_bytes() for p in tmp_path.glob(path.name + "*"))
    # The remaining items still decrypt, through the hub and from the rows now.
    assert [c.content(ada, i)["text"] for i in others] == OTHERS
    now = rows(hub)
    assert set(now) == set(others)
    for other in others:
        wrapped, kek_id, _ = now[other]
        assert unwraps(left[f"kek-{kek_id}"], other, wrapped) is not None
    with pytest.raises(NotFound):
        hub.data.item_content(secret)
    verify_hub(hub)


CRASH = """
import os, sys
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.store import vault

def crash(keyring, kek_ids):
    os._exit(9)  # killed right after the withdrawal committed, before any KEK is destroyed

vault.destroy = crash
hub = Hub.open(sys.argv[1])
key = SigningKey.load(os.path.join(sys.argv[1], "founder.key"))
hub.append([sign_event(key, "contribution.withdraw", {"items": [sys.argv[2]]}, hub=hub.origin)])
"""


def test_a_crash_between_commit_and_kek_destruction_is_finished_by_the_next_open(
    coop: dict[str, Any],
) -> None:
    hub, directory, secret, others = coop["hub"], coop["dir"], coop["secret"], coop["others"]
    before = keks_on_disk(directory)
    backup = rows(hub)
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(directory), secret], capture_output=True, text=True
    )
    assert proc.returncode == 9, proc.stderr
    # The withdrawal committed; the old KEK is still on disk beside the new one.
    both = keks_on_disk(directory)
    assert set(before) < set(both) and len(both) == 2
    reopened = Hub.open(directory)
    try:
        assert reopened.state.contributions[secret].status == "withdrawn"
        left = keks_on_disk(directory)
        assert set(left) == set(both) - set(before)  # the sweep destroyed the old one
        assert unwraps(next(iter(left.values())), secret, backup[secret][0]) is None
        assert [reopened.data.item_content(i)["text"] for i in others] == OTHERS
    finally:
        reopened.close()


def test_a_withdrawal_that_cannot_destroy_its_old_kek_still_succeeds(
    coop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, ada, directory, secret = coop["client"], coop["founder"], coop["dir"], coop["secret"]

    def refuse(self: Keyring, kek_id: str) -> bool:
        raise PermissionError(f"cannot unlink {kek_id}")

    with monkeypatch.context() as m:
        m.setattr(Keyring, "destroy", refuse)
        c.withdraw(ada, [secret])  # committed: reported as done, not as a failure
    assert len(keks_on_disk(directory)) == 2
    Hub.open(directory).close()  # the next open finishes the job
    assert len(keks_on_disk(directory)) == 1


def test_a_kek_that_rows_reference_is_never_swept(coop: dict[str, Any]) -> None:
    hub, directory, others = coop["hub"], coop["dir"], coop["others"]
    ring = Keyring(directory / KEK_DIRECTORY)
    # One item re-wrapped under a second KEK that is not the current one, and a stray KEK
    # that nothing references (a rolled-back rotation's, say).
    second, stray = ring.create(), ring.create()
    key = unwraps(
        keks_on_disk(directory)[f"kek-{rows(hub)[others[0]][1]}"],
        others[0],
        rows(hub)[others[0]][0],
    )
    assert key is not None
    with hub.engine.begin() as conn:
        conn.execute(
            update(content_keys)
            .where(content_keys.c.id == others[0])
            .values(key=ring.wrap(second, others[0], key), kek=second)
        )
    reopened = Hub.open(directory)
    try:
        on_disk = {n.removeprefix("kek-") for n in keks_on_disk(directory)}
        assert second in on_disk and stray not in on_disk and len(on_disk) == 2
        assert [reopened.data.item_content(i)["text"] for i in others] == OTHERS
    finally:
        reopened.close()


def test_two_hub_processes_follow_each_others_rotations(coop: dict[str, Any]) -> None:
    c, ada, directory = coop["client"], coop["founder"], coop["dir"]
    secret, others = coop["secret"], coop["others"]
    new_text = "A new item, contributed through the second process."
    # A second client opens its own Hub on the same directory and database: its own KEK
    # cache, as a second server process has.
    with HubClient(str(directory)) as other:
        assert other.content(ada, others[0])["text"] == OTHERS[0]  # it caches the KEK
        c.withdraw(ada, [secret])  # the first rotates and destroys that KEK
        assert [other.content(ada, i)["text"] for i in others] == OTHERS
        # The second stores new items under the rotated KEK; the first reads them.
        new = other.contribute(ada, [{"text": new_text, "label": "b"}])["items"][0]["id"]
        assert {k for _, k, _ in rows(coop["hub"]).values()} == {
            n.removeprefix("kek-") for n in keks_on_disk(directory)
        }
        assert c.content(ada, new)["text"] == new_text
        # And a rotation by the second reaches the first.
        other.withdraw(ada, [others[0]])
        assert c.content(ada, others[1])["text"] == OTHERS[1]
        assert c.content(ada, new)["text"] == new_text
    assert len(keks_on_disk(directory)) == 1


def _to_schema_4(url: str, directory: Path) -> None:
    """Turn a schema-5 hub into what schema 4 stored: plain item keys, no ``kek`` column,
    no KEK files."""
    ring = Keyring(directory / KEK_DIRECTORY)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            got = conn.execute(
                select(content_keys.c.id, content_keys.c.key, content_keys.c.kek)
            ).all()
            conn.execute(text("DROP INDEX ix_content_keys_kek"))
            conn.execute(text("ALTER TABLE content_keys DROP COLUMN kek"))
            for iid, wrapped, kek in got:
                conn.execute(
                    text("UPDATE content_keys SET key = :k WHERE id = :i"),
                    {"k": ring.unwrap(kek, iid, bytes(wrapped)), "i": iid},
                )
            conn.execute(text("DELETE FROM hub_settings WHERE name = 'vault_kek'"))
            conn.execute(update(schema_info).values(version=4))
    finally:
        engine.dispose()
    shutil.rmtree(directory / KEK_DIRECTORY)


def test_a_schema_4_hub_migrates_and_every_item_stays_readable(coop: dict[str, Any]) -> None:
    c, hub, ada, directory = coop["client"], coop["hub"], coop["founder"], coop["dir"]
    secret, others = coop["secret"], coop["others"]
    c.withdraw(ada, [secret])
    hub.close()
    _to_schema_4(coop["url"], directory)
    # `rebuild` opens (and so migrates) the hub first; `ledger verify` then passes.
    cw("rebuild", "--hub", directory)
    cw("ledger", "verify", "--hub", directory)
    migrated = Hub.open(directory)
    try:
        with migrated.read() as conn:
            assert conn.execute(select(schema_info.c.version)).scalar_one() == SCHEMA_VERSION
        now = rows(migrated)
        assert set(now) == set(others)
        keks = keks_on_disk(directory)
        assert len(keks) == 1 and {k for _, k, _ in now.values()} == {
            n.removeprefix("kek-") for n in keks
        }
        for iid, (wrapped, kek_id, _) in now.items():
            assert len(wrapped) == 24 + 32 + 16  # wrapped, not a plain 32-byte key
            assert unwraps(keks[f"kek-{kek_id}"], iid, wrapped) is not None
        assert [migrated.data.item_content(i)["text"] for i in others] == OTHERS
        assert migrated.state.contributions[secret].status == "withdrawn"
        verify_hub(migrated)
    finally:
        migrated.close()
