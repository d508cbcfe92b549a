"""The node's gate: a SuperNode of a member runs only the app bundle the community logged.

Flower's SuperNode starts ``flwr-clientapp`` (looked up on ``PATH``) for every message,
and that process pulls the run's app bundle (FAB) from the SuperLink and installs it
before importing its ClientApp. Flower 1.42 cannot verify a locally built bundle (its
signatures come from Flower Hub only), so the node puts this gate first on the
SuperNode's ``PATH`` under the same name: it runs Flower's own ``flwr-clientapp`` with the
install step checked — SHA-256 of the bundle's bytes against ``COMMONWEAL_APP_SHA256``
(the charter's ``federated.app_sha256``). Any other bundle fails the task before a byte of
it is unpacked, and the hub sees an error reply naming both hashes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path
from typing import Any

__all__ = ["ENV", "AppRefused", "check_bundle", "main", "write_gate"]

ENV = "COMMONWEAL_APP_SHA256"
COMMAND = "flwr-clientapp"


class AppRefused(RuntimeError):
    """The hub sent an app bundle other than the one the community logged."""


def check_bundle(content: bytes, expected: str) -> None:
    """Raise AppRefused unless ``content`` hashes to ``expected``."""
    got = hashlib.sha256(content).hexdigest()
    if not expected:
        raise AppRefused(
            "this node has no logged app bundle hash to run; "
            f"the hub sent {got[:16]}…: set the charter's federated.app_sha256"
        )
    if got != expected.lower():
        raise AppRefused(
            f"this node runs only the app bundle the community logged "
            f"(sha256 {expected[:16]}…); the hub sent {got[:16]}…"
        )


def write_gate(bin_dir: Path, python: str | None = None) -> Path:
    """Write the gate as ``bin_dir/flwr-clientapp`` (run by ``python``); its path."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / COMMAND
    path.write_text(
        f"#!{python or sys.executable}\n"
        "# Commonweal's gate: Flower's flwr-clientapp, running only the logged app bundle.\n"
        "from commonweal.federated.gate import main\n"
        "main()\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def main() -> None:
    """Flower's ``flwr-clientapp``, its bundle install checked against the logged hash."""
    from flwr.supernode.cli.flwr_clientapp import flwr_clientapp
    from flwr.supernode.runtime import run_clientapp

    expected = os.environ.get(ENV, "")
    names = vars(run_clientapp)  # install_from_fab is imported there, not exported
    install = names["install_from_fab"]

    def checked_install(fab_file: Any, *args: Any, **kwargs: Any) -> Any:
        content = fab_file if isinstance(fab_file, bytes) else Path(fab_file).read_bytes()
        check_bundle(content, expected)
        return install(fab_file, *args, **kwargs)

    # run_clientapp imported the name into its module: replacing it there is the seam.
    names["install_from_fab"] = checked_install
    flwr_clientapp()
