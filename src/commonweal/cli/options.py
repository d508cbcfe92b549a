"""The options many commands share, as ``Annotated`` types, and loading a member's key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from commonweal.files import open_file
from commonweal.ledger.keys import SigningKey

__all__ = ["HubDirOpt", "HubOpt", "JsonOpt", "KeyOpt", "ModelOpt", "load_key"]

HubOpt = Annotated[str, typer.Option("--hub", help="Hub directory, or http(s) URL of a hub.")]
# A string, not a Path: Path("http://host") would turn a URL given by mistake into
# "http:/host" before the command could say that it needs the directory. The metavar keeps
# the help showing what the option takes.
HubDirOpt = Annotated[
    str, typer.Option("--hub", metavar="<path>", help="Hub directory (on this machine).")
]
KeyOpt = Annotated[Path, typer.Option("--key", help="Your member key file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ModelOpt = Annotated[str, typer.Option("--model", help="A version number, or latest.")]


KEY_FILE_BYTES = 64 * 1024


def load_key(path: Path) -> SigningKey:
    """The member key in ``path`` (ConfigError, naming the file, when it cannot be read)."""
    if os.path.lexists(path):  # (a missing file: SigningKey.load says how to make one)
        # A key file is a few hundred bytes: not a device, a FIFO or a folder to read.
        open_file(Path(path), f"key file {path}", max_bytes=KEY_FILE_BYTES).close()
    return SigningKey.load(path)
