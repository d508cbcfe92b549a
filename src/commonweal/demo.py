"""``commonweal demo``: a small community, built through the same SDK a member would use.

It is rebuilt only if the directory holds no hub yet; a second run reuses it (and verifies
it again). Each later part of Commonweal adds its step here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from commonweal.audit import audit_hub
from commonweal.client import HubClient
from commonweal.community.charter import Charter
from commonweal.hub import Hub
from commonweal.ledger.keys import SigningKey

__all__ = ["DEMO_MEMBERS", "build_demo"]

DEMO_NAME = "Commonweal demo co-op"
# Simulated members: who they are does not matter yet; later parts give them data to share.
DEMO_MEMBERS = [
    "Grace",
    "Alan",
    "Katherine",
    "Tim",
    "Ada L.",
    "Radia",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
]


def build_demo(directory: Path, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    directory = Path(directory)
    if not (directory / "hub.toml").exists():
        say(f"Creating the demo community in {directory} …")
        charter = Charter(
            name=DEMO_NAME,
            description="A demo data co-operative: members pool data and own the model.",
            join_policy="invite",
        )
        hub, founder = Hub.init(directory, charter=charter, founder_name="Ada")
        hub.close()
        keys_dir = directory / "members"
        with HubClient(str(directory)) as client:
            for name in DEMO_MEMBERS:
                key = SigningKey.generate()
                key.save(
                    keys_dir / f"{name.lower().replace(' ', '-').replace('.', '')}.key", name=name
                )
                token, _ = client.create_invite(founder)
                client.join(key, name, invite=token)
                say(f"  {name} joined with an invite from Ada")
    else:
        say(f"Reusing the demo community in {directory}")
    hub = Hub.open(directory)
    try:
        report = audit_hub(hub, workers=1)
        members = len(hub.members())
    finally:
        hub.close()
    say(f"Verified the log: {report.size} entries, root {report.root[:16]}…")
    return {
        "hub": str(directory),
        "name": DEMO_NAME,
        "members": members,
        "size": report.size,
        "root": report.root,
        "checks": report.checks,
    }
