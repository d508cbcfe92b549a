"""Communities to test against: a bare hub (``make_hub``), and communities with accepted
data for tests of training, lineage, serving, ownership and governance.

Items go in through the SDK (the real app in-process) and are reviewed by two other
members, so they are accepted by the same rules as anywhere else.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from commonweal.client import HubClient
from commonweal.community.charter import validate_charter
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey

__all__ = [
    "MEMBERS",
    "accept_all",
    "community",
    "digit_items",
    "make_hub",
    "png",
    "seeded_salts",
    "text_items",
]

MEMBERS = ("Grace", "Alan", "Tim")


def make_hub(
    directory: Path,
    database_url: str,
    *,
    join_policy: str = "open",
    name: str = "Test Co-op",
    charter_extra: dict[str, Any] | None = None,
) -> tuple[Hub, SigningKey]:
    """A community of its founder (Ada) alone; the hub is open (close it)."""
    charter = validate_charter({"name": name, "join_policy": join_policy, **(charter_extra or {})})
    return Hub.init(directory, charter=charter, founder_name="Ada", database=database_url)


def png(pixels: Any) -> str:
    from PIL import Image

    img = Image.fromarray((np.asarray(pixels) * 15).clip(0, 255).astype("uint8"), mode="L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def digit_items(start: int, n: int) -> list[dict[str, Any]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return [
        {"image": png(d.images[i].tolist()), "label": str(int(d.target[i]))}
        for i in range(start, start + n)
    ]


def text_items(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Two easily told apart topics, with enough variety that no two items repeat."""
    rng = np.random.default_rng(seed)
    rivers = ["river", "flood", "bank", "water", "bridge", "canal", "rain", "mill"]
    markets = ["market", "bread", "price", "stall", "cheese", "apples", "baker", "coins"]
    out = []
    for i in range(n):
        words, label = (rivers, "river") if i % 2 == 0 else (markets, "market")
        picked = " ".join(rng.choice(words, size=6))
        out.append(
            {"text": f"Report {i}: the {picked} today, number {i * 7919 % 1000}", "label": label}
        )
    return out


def community(
    directory: Path,
    database: str,
    *,
    kind: str = "image-classification",
    items: list[dict[str, Any]] | None = None,
    charter_extra: dict[str, Any] | None = None,
) -> tuple[HubClient, dict[str, SigningKey]]:
    """A hub in ``directory`` whose members shared ``items`` (default: 400 digits), all
    accepted by review. Returns an embedded client (close it) and the members' keys."""
    task: dict[str, Any] = {"kind": kind}
    if kind == "image-classification":
        task |= {"labels": [str(d) for d in range(10)], "image_width": 8, "image_height": 8}
        items = items if items is not None else digit_items(0, 400)
    elif kind == "text-classification":
        task |= {"labels": ["river", "market"]}
        items = items if items is not None else text_items(300)
    charter = validate_charter(
        {
            "name": "Model Co-op",
            "task": task,
            "review": {
                "reviews_needed": 2,
                "newcomer_reviews_needed": 2,
                "consensus": "majority",
            },
            "limits": {"max_item_bytes": 4096},
            **(charter_extra or {}),
        }
    )
    hub, founder = Hub.init(directory, charter=charter, founder_name="Ada", database=database)
    hub.close()
    client = HubClient(str(directory))
    keys = {"Ada": founder}
    for name in MEMBERS:
        keys[name] = SigningKey.generate()
        client.join(keys[name], name)
    names = list(keys)
    for n in range(0, len(items), 100):
        owner = names[(n // 100) % len(names)]
        client.contribute(keys[owner], items[n : n + 100])
    accept_all(client, keys)
    return client, keys


def accept_all(client: HubClient, keys: dict[str, SigningKey]) -> None:
    """Members other than the contributor (and, for an item back in review, other than
    its earlier reviewers) accept every item in review."""
    names = list(keys)
    pending = client.contributions(status="in_review")
    state = client.embedded_hub.state
    events = []
    for c in pending:
        before = state.contributions[c["id"]].reviewers
        others = [n for n in names if keys[n].key_id not in (c["member"], *before)]
        for name in others[: c["reviews_needed"] - c["reviews"]]:
            events.append(
                sign_event(
                    keys[name],
                    "review.submit",
                    {"item": c["id"], "verdict": "accept"},
                    hub=client.origin,
                )
            )
    for b in range(0, len(events), 500):
        client.submit(events[b : b + 500])


class _SeededOs:
    """``os`` as ``commonweal.wire`` sees it, with ``urandom`` a counter-derived stream."""

    def __init__(self) -> None:
        self.n = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def urandom(self, size: int) -> bytes:
        self.n += 1
        return hashlib.sha256(f"salt {self.n}".encode()).digest()[:size]


@contextmanager
def seeded_salts() -> Iterator[None]:
    """Items contributed meanwhile get salts from a fixed stream: the same items in the
    same order get the same ids on every run, so the shard and evaluation draws (and any
    accuracy a test expects) do not depend on luck."""
    import commonweal.wire

    real = commonweal.wire.os
    commonweal.wire.os = _SeededOs()  # type: ignore[assignment]
    try:
        yield
    finally:
        commonweal.wire.os = real
