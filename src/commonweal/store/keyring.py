"""The vault's key-encryption keys (KEKs): files in the hub's directory, never in the database.

Each contributed item is encrypted under a key of its own, and that item key is stored in
the database only wrapped (XChaCha20-Poly1305, the item id as associated data) under one
of the hub's KEKs. A KEK is 32 random bytes in ``<hub>/vault-keys/kek-<id>`` (mode 0600,
directory 0700, written atomically and fsynced); its id is stored beside each key it wraps.

Withdrawing an item rotates the KEK: the remaining item keys are re-wrapped under a new one
in the withdrawal's transaction, and once that commits the old KEK file is overwritten and
unlinked (``destroy``). Whatever copies of the database's old pages survive — SQLite's WAL,
PostgreSQL's ``pg_wal``, a backup, a replica — hold the withdrawn item's key wrapped only
under a KEK that no longer exists anywhere. The database is never asked to forget bytes.

Several processes may share one hub (PostgreSQL): a process meeting a KEK id it has not
loaded reads that file; KEKs are cached in memory and dropped once their file is gone.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)

from commonweal.errors import ConfigError, Conflict, HubError
from commonweal.ledger.files import fsync_directory, private_directory, write_private

__all__ = ["KEK_DIRECTORY", "KekGone", "Keyring"]

KEK_DIRECTORY = "vault-keys"
_PREFIX = "kek-"
_ID = re.compile(r"^[0-9a-f]{16}$")
_NONCE = 24
_KEY = 32


class KekGone(Conflict):
    """A key was wrapped under a KEK that a withdrawal has destroyed since this read's
    snapshot was taken: the same read, started again, sees the keys re-wrapped."""


class Keyring:
    """The KEK files of one hub directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.created = 0  # how many KEKs this process made: a failed write that made one
        # sweeps (its transaction rolled back, so nothing may be wrapped under it)

    def _path(self, kek_id: str) -> Path:
        # Ids come from database rows: only the exact shape names a file, so a damaged or
        # hostile row cannot point outside the directory.
        if not _ID.match(kek_id):
            raise HubError(f"vault key id {kek_id!r} is malformed: the vault is damaged")
        return self.directory / f"{_PREFIX}{kek_id}"

    def on_disk(self) -> set[str]:
        """The ids of the KEK files present now."""
        if not self.directory.is_dir():
            return set()
        return {
            p.name[len(_PREFIX) :]
            for p in self.directory.iterdir()
            if p.name.startswith(_PREFIX) and _ID.match(p.name[len(_PREFIX) :])
        }

    def create(self) -> str:
        """A new KEK, durably on disk before any key is wrapped under it; returns its id."""
        private_directory(self.directory)
        while True:
            kek_id = os.urandom(8).hex()
            try:
                write_private(self._path(kek_id), os.urandom(_KEY), replace=False)
            except FileExistsError:
                continue
            break
        with self._lock:
            self._cache[kek_id] = self._read(kek_id)
            self.created += 1
        return kek_id

    def _read(self, kek_id: str) -> bytes:
        try:
            data = self._path(kek_id).read_bytes()
        except FileNotFoundError:
            raise KekGone(
                f"vault key {kek_id} was destroyed by a withdrawal during this read; try again"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read vault key {self._path(kek_id)}: {exc}") from None
        if len(data) != _KEY:
            raise HubError(f"vault key file {self._path(kek_id)} is damaged")
        return data

    def get(self, kek_id: str) -> bytes:
        """The KEK ``kek_id``, from memory or its file (another process made it, say)."""
        with self._lock:
            got = self._cache.get(kek_id)
            if got is not None:
                return got
            kek = self._read(kek_id)
            # A new id means a rotation happened somewhere: forget KEKs destroyed since.
            for old in [k for k in self._cache if not self._path(k).exists()]:
                del self._cache[old]
            self._cache[kek_id] = kek
            return kek

    def wrap(self, kek_id: str, item_id: str, key: bytes) -> bytes:
        """``key`` encrypted under KEK ``kek_id``, bound to ``item_id``: nonce || ciphertext."""
        nonce = os.urandom(_NONCE)
        return nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(
            key, item_id.encode(), nonce, self.get(kek_id)
        )

    def unwrap(self, kek_id: str, item_id: str, wrapped: bytes) -> bytes:
        kek = self.get(kek_id)
        try:
            return crypto_aead_xchacha20poly1305_ietf_decrypt(
                wrapped[_NONCE:], item_id.encode(), wrapped[:_NONCE], kek
            )
        except Exception:
            raise HubError(f"item {item_id}'s key does not unwrap: the vault is damaged") from None

    def destroy(self, kek_id: str) -> bool:
        """Overwrite KEK ``kek_id``'s file, fsync, unlink it and fsync the directory.
        Returns whether there was a file (another process may have destroyed it first)."""
        path = self._path(kek_id)
        with self._lock:
            self._cache.pop(kek_id, None)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            return False
        try:
            # Overwriting first means a filesystem that keeps unlinked blocks around (until
            # reuse) keeps zeros, not the key.
            os.write(fd, b"\0" * _KEY)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_directory(self.directory)
        return True
