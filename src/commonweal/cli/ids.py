"""Naming things on the command line: members by name, key id or a unique prefix of it;
items by id or a unique prefix. The pure resolution (also used by the web app's member
pages) is ``commonweal.community.naming``; here it meets the hub through the SDK."""

from __future__ import annotations

from collections.abc import Sequence

from commonweal.client import HubClient
from commonweal.community.naming import ITEM_MIN, KEY_MIN, pick, resolve_member, short_ids
from commonweal.errors import InvalidInput

__all__ = [
    "ITEM_MIN",
    "KEY_MIN",
    "pick",
    "resolve_item",
    "resolve_items",
    "resolve_member",
    "short_ids",
]


def resolve_items(client: HubClient, given: Sequence[str]) -> list[str]:
    """Full item ids for ``given`` ids or unique prefixes (each at least ``ITEM_MIN``
    characters); the item list is fetched once, and only when a prefix needs it."""
    from commonweal.wire import ITEM_ID_HEX

    if all(len(g) == ITEM_ID_HEX for g in given):
        return list(given)
    short = [g for g in given if len(g) < ITEM_MIN]
    if short:
        raise InvalidInput(
            f"item id {short[0]!r} is too short: give at least {ITEM_MIN} characters"
        )
    rows = client.contributions()
    ids = [r["id"] for r in rows]
    names = {r["id"]: r["status"] for r in rows}
    return [
        g
        if len(g) == ITEM_ID_HEX
        else pick("item", g, [i for i in ids if i.startswith(g.lower())], names)
        for g in given
    ]


def resolve_item(client: HubClient, given: str) -> str:
    """The full id of the item ``given`` names (an id, or a unique prefix of one)."""
    return resolve_items(client, [given])[0]
