"""``review next`` at a terminal: one item after another until the queue is empty or the
reviewer quits. Each item is shown readably — its text, its image drawn in block
characters from its pixels, or its row of features — with the label its contributor
proposed, the label choices under number keys, why it is back if it is a re-review (and
the item a near copy resembles), and how many items are left. A key that means nothing
is asked again."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.markup import escape

from commonweal.cli.output import out
from commonweal.client import HubClient
from commonweal.errors import CommonwealError
from commonweal.ledger.keys import SigningKey

__all__ = ["image_blocks", "label_keys", "review_loop", "show_item"]

_SHADES = " ░▒▓█"
_MAX_COLUMNS = 32  # pixels across; larger images are scaled down to fit
_WHY = {
    "suspected-label-error": "a quality scan suspects its label is wrong",
    "negative-value": "a valuation found that it makes the model worse",
    "near-duplicate": "it nearly copies an item the community already had",
    "duplicate": "it copies an item the community already had",
    "personal-data": "it held personal data (redacted)",
}
_KEYS = "a accept · r reject · f flag · s skip · q quit"
_MAX_SKIP = 200  # item ids /reviews/next takes in ?skip= (the API's MAX_SKIP)
_RECENT = 20


def image_blocks(data: str) -> list[str]:
    """A base64 PNG/JPEG as lines of shading characters, two per pixel (dark to light)."""
    # Only a reviewer of images needs Pillow; an item from the hub is still decoded within
    # the same bounds as anything else from outside.
    from commonweal.images import open_image

    img = open_image(data, "the item's image").convert("L")
    if img.width > _MAX_COLUMNS:
        img = img.resize((_MAX_COLUMNS, max(1, img.height * _MAX_COLUMNS // img.width)))
    px = list(img.tobytes())
    rows = []
    for y in range(img.height):
        line = px[y * img.width : (y + 1) * img.width]
        rows.append("".join(_SHADES[v * len(_SHADES) // 256] * 2 for v in line))
    return rows


def _content_lines(content: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if "text" in content:
        lines += [f"  {escape(str(x))}" for x in str(content["text"]).splitlines() or [""]]
    if "image" in content:
        try:
            lines += [f"  │{row}│" for row in image_blocks(content["image"])]
        except CommonwealError:  # an image we do not read: say so, do not stop the review
            lines.append(f"  <an image of {len(content['image'])} base64 characters>")
        if content.get("caption"):
            lines.append(f"  caption: {escape(str(content['caption']))}")
    if "features" in content:
        lines += [f"  {escape(str(k))} = {escape(str(v))}" for k, v in content["features"].items()]
    return lines


def label_keys(labels: list[str]) -> dict[str, str]:
    """The key that picks each label: the label itself when every label is one digit (a
    digits community types 7 for "7"), else its number from 1."""
    if labels and all(len(x) == 1 and x.isdigit() for x in labels):
        return {x: x for x in labels}
    return {str(n): x for n, x in enumerate(labels, 1)}


def _flags(item: dict[str, Any]) -> list[str]:
    return [f for f in str(item.get("flags") or "").split(",") if f]


def _why_lines(c: HubClient, item: dict[str, Any]) -> list[str]:
    flags = _flags(item)
    lines = []
    if "re-review" in flags:
        reasons = [f"{f} ({_WHY[f]})" if f in _WHY else f for f in flags if f != "re-review"]
        lines.append(
            "[yellow]Re-review:[/] it was accepted, then flagged "
            + ("; ".join(reasons) or "for another look")
            + ". Your verdict can keep it, relabel it or reject it."
        )
    elif flags:
        lines.append(f"Flags: {', '.join(flags)}")
    other = item.get("resembles")
    if other:
        lines.append(f"It resembles item {other}, logged before it{_about(c, other)}.")
    return lines


def _about(c: HubClient, item_id: str) -> str:
    try:
        row = c.contribution(item_id)
    except CommonwealError:
        return ""
    label = row.get("decided_label") or row.get("label")
    return f" ({row['status']}, label {label!r})" if label is not None else f" ({row['status']})"


def show_item(
    c: HubClient, item: dict[str, Any], labels: list[str], left: int | None = None
) -> None:
    """Print an item for review: content, proposed label, reasons, choices, count left."""
    head = f"[bold]Item {item['id']}[/]  ({item['reviews']}/{item['reviews_needed']} reviews)"
    out.print(head + (f"  ·  {left} left for you" if left is not None else ""), highlight=False)
    for line in _content_lines(item["content"]):
        out.print(line, highlight=False)
    proposed = item.get("label")
    if proposed is not None:
        out.print(f"Proposed label: [bold]{escape(str(proposed))}[/]", highlight=False)
    for line in _why_lines(c, item):
        out.print(line, highlight=False)
    keys = label_keys(labels)
    if keys and all(k == x for k, x in keys.items()):
        out.print(f"Relabel: type the label ({', '.join(keys)})", highlight=False)
    elif keys:
        choices = "  ".join(f"{k} {escape(x)}" for k, x in keys.items())
        out.print(f"Relabel: {choices}", highlight=False)
    out.print(_KEYS, highlight=False)


@dataclass
class Session:
    """One reviewer's pass through the queue."""

    client: HubClient
    key: SigningKey
    labels: list[str]
    # The last few items reviewed: a hub process a moment behind the log could offer one.
    reviewed: deque[str] = field(default_factory=lambda: deque(maxlen=_RECENT))
    skipped: dict[str, None] = field(default_factory=dict)  # in the order skipped
    done: dict[str, int] = field(default_factory=dict)

    def next_item(self) -> dict[str, Any] | None:
        """The hub's next item for this reviewer, passing over those skipped (the most
        recent, as many as the hub takes); its ``left`` is how many wait, this one
        included."""
        skip = [*self.reviewed, *list(self.skipped)[-(_MAX_SKIP - _RECENT) :]]
        return self.client.next_review(self.key, skip=skip)


def _ask(labels: list[str], proposed: Any) -> tuple[str, str | None, str | None]:
    """(verdict, label, reason) from the keyboard; ``skip`` and ``quit`` are verdicts
    here. Asks again until the answer means something."""
    while True:
        try:
            said = typer.prompt("Your verdict", prompt_suffix=" > ").strip().lower()
        except (EOFError, typer.Abort):
            return "quit", None, None
        if said in ("a", "accept"):
            return "accept", None, None
        if said in ("r", "reject"):
            return "reject", None, None
        if said in ("s", "skip", "q", "quit"):
            return ("skip" if said.startswith("s") else "quit"), None, None
        if said in ("f", "flag"):
            reason = typer.prompt("What is wrong", prompt_suffix=" > ").strip()
            return "flag", None, reason or "flagged in review"
        keys = label_keys(labels)
        if said in keys:
            chosen = keys[said]
            return ("accept", None, None) if chosen == proposed else ("relabel", chosen, None)
        hint = f", {min(keys)}-{max(keys, key=int)} to relabel" if keys else ""
        out.print(f"{said!r} is not a choice: a, r, f, s or q{hint}.", highlight=False)


def review_loop(c: HubClient, key: SigningKey) -> dict[str, int]:
    """Review until nothing is left or the reviewer quits; what was done, by verdict."""
    task = c.community()["charter"].get("task") or {}
    s = Session(c, key, list(task.get("labels") or []))
    while True:
        item = s.next_item()
        if item is None:
            out.print(
                "Nothing else waits for your review."
                if not s.skipped
                else "Only the items you skipped are left."
            )
            return s.done
        out.print()
        show_item(c, item, s.labels, item.get("left"))
        verdict, label, reason = _ask(s.labels, item.get("label"))
        if verdict == "quit":
            return s.done
        if verdict == "skip":
            s.skipped[item["id"]] = None
        else:
            c.review(key, item["id"], verdict, label=label, reason=reason)
            s.reviewed.append(item["id"])
            out.print(f"Recorded: {verdict}" + (f" as {label}" if label else ""))
        s.done[verdict] = s.done.get(verdict, 0) + 1
