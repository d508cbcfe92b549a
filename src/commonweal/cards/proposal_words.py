"""A proposal's typed actions in words, for people deciding on them: what the hub will do
if the vote passes, and for a charter amendment, each setting it changes (old and new
value, and what the new one means, in the charter's own sentences).

``describe_action`` is the one sentence per action the web app and the CLI can show;
``amendment`` the lines of a ``charter.amend``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from commonweal.cards.charter_words import flat, sentence
from commonweal.community.charter import validate_charter
from commonweal.errors import CommonwealError

__all__ = ["JOB_WORDS", "amendment", "describe_action"]

JOB_WORDS = {
    "train": "train a new model version",
    "value": "value every contribution on the latest model",
    "close-epoch": "close a reward epoch (minting shares)",
    "payout": "pay the treasury out to the shareholders",
    "quality-scan": "scan the accepted items for suspected label errors",
}


def _credits(n: Any) -> str:
    return f"{n} credit{'' if n == 1 else 's'}"


def describe_action(
    action: Mapping[str, Any],
    *,
    names: Mapping[str, str] | None = None,
    charter: Mapping[str, Any] | None = None,
) -> str:
    """``action`` (one of a proposal's actions) as a sentence. ``names`` maps member keys
    to names; with ``charter`` (the charter in force), an amendment says how many
    settings it changes."""
    names = names or {}

    def who(key: Any) -> str:
        text = str(key)
        return names.get(text) or f"member {text[:16]}…"

    kind = str(action.get("type", ""))
    say: dict[str, Callable[[], str]] = {
        "charter.amend": lambda: _amend_words(action, charter),
        "member.admit": lambda: f"Admit {who(action['member'])} as a member.",
        "member.remove": lambda: f"Remove {who(action['member'])} from the community.",
        "model.release": lambda: (
            f"Release model version {action['version']} under the {action['license']} "
            + (
                "license, publishing its weights."
                if action["weights"] == "public"
                else "license, keeping its weights private."
            )
        ),
        "apikey.grant": lambda: (
            f"Grant an API key to {action['consumer']} for up to "
            f"{action['quota_per_day']} predictions a day."
        ),
        "apikey.revoke": lambda: f"Revoke the API key {str(action['key_hash'])[:16]}….",
        "price.set": lambda: (
            "Set the price of the model's use: "
            + sentence("serving.price_per_call", action["price_per_call"])
        ),
        "treasury.pay": lambda: (
            f"Pay {_credits(action['amount'])} from the treasury to the shareholders, "
            "in proportion to the shares they hold."
            if action["to"] == "shareholders"
            else f"Pay {_credits(action['amount'])} from the treasury to {who(action['to'])}."
        ),
        "contribution.remove": lambda: (
            f"Take down {len(action['items'])} item{'s' if len(action['items']) != 1 else ''}"
            f" (their content is erased; the next model unlearns them), because: "
            f"{action['reason']}"
        ),
        "hub.run": lambda: (
            "Order the hub to " + JOB_WORDS.get(str(action["job"]), f"run {action['job']}") + "."
        ),
        "signal": lambda: f"No action: the community says “{action['text']}”",
    }
    try:
        return say[kind]()
    except (KeyError, TypeError):
        return f"{kind or 'an action without a type'} (not a well-formed action)"


def _amend_words(action: Mapping[str, Any], charter: Mapping[str, Any] | None) -> str:
    if charter is None:
        return "Amend the charter."
    lines = amendment(action, charter)
    if lines and "error" in lines[0]:
        return "Amend the charter (the amended charter is not valid now)."
    n = len(lines)
    return (
        f"Amend the charter: {n} setting{'s' if n != 1 else ''} change."
        if n
        else ("Amend the charter (it changes nothing as the charter stands).")
    )


def amendment(action: Mapping[str, Any], charter: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a ``charter.amend`` action changes in ``charter``: per setting, its path, the
    value before and after (JSON text, ``(unset)`` where absent) and what the new value
    means. An amended charter that is not valid is one line with the rules' ``error``."""
    try:
        before = flat(validate_charter(dict(charter), where="current charter").to_full_json())
        amended = validate_charter(action.get("charter"), where="amended charter")
        after = flat(amended.to_full_json())
    except CommonwealError as exc:
        return [{"error": exc.message}]
    out = []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a != b:
            out.append(
                {
                    "path": path,
                    "before": "(unset)"
                    if path not in before
                    else json.dumps(a, ensure_ascii=False),
                    "after": "(unset)" if path not in after else json.dumps(b, ensure_ascii=False),
                    "says": sentence(path, b) if path in after else "",
                }
            )
    return out
