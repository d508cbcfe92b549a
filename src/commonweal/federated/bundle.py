"""The Flower app bundle (FAB) of the community's federated training.

The app ships inside the package (``app/``), and its bundle is built with Flower's own
deterministic builder (sorted files, fixed zip times), so a hub and a member build the
same bytes from the same release: the SHA-256 the charter logs (``federated.app_sha256``)
is the hash every node checks before it runs a task (see ``gate``).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

__all__ = ["app_bundle", "app_dir", "app_sha256"]


def app_dir() -> Path:
    """The Flower app's directory (its ``pyproject.toml`` and shim modules)."""
    return Path(__file__).resolve().parent / "app"


@cache
def app_bundle() -> bytes:
    """The app's FAB, as ``flwr run`` builds it."""
    from flwr.cli.build import build_fab_from_disk

    return build_fab_from_disk(app_dir())


def app_sha256() -> str:
    """The SHA-256 (hex) of :func:`app_bundle`: the hash the charter logs."""
    return hashlib.sha256(app_bundle()).hexdigest()
