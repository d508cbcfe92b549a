"""``hub.data``: contributed data — intake and screening, review, flags, export, content.

A batch arrives as the member's signed ``contribution.submit`` with the items beside it.
Hard checks (the item's shape, its salted commitment, its signed size and label) refuse
the whole batch before anything is written; screening then decides item by item, and its
``contribution.screen`` event, the encrypted content and the screening indexes join the
member's event in one commit.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from commonweal.community import views
from commonweal.community.charter import Charter
from commonweal.errors import Forbidden, InvalidInput, NotFound
from commonweal.hub.decisions import reliability
from commonweal.items import check_item, item_label
from commonweal.ledger.canonical import canonical
from commonweal.ledger.event import SignedEvent, decode_leaf
from commonweal.store import contributions as rows
from commonweal.store import vault
from commonweal.wire import SALT_BYTES, commitment_of

if TYPE_CHECKING:
    from commonweal.hub.core import Computing, Hub
    from commonweal.hub.screening import Screened, Screener

__all__ = ["DataArea"]


class DataArea:
    """Contributions, reviews and the content vault (``hub.data``)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._screener: Screener | None = None
        # Reliability is a consensus fit over every review in the log (0.85 s for 32,000
        # reviews, 2 s for 80,000) and a function of the log alone, so it is kept for the
        # size it was computed at; pages may take the last one while a newer is computed.
        self._reliability: tuple[int, dict[str, float]] = (-1, {})
        self._refreshing = threading.Lock()
        # Each member's items by status and reviews by verdict: one pass over the state,
        # kept for the size it was computed at.
        self._tallies: tuple[int, dict[str, views.MemberTally]] = (-1, {})

    @property
    def screener(self) -> Screener:
        """Screening (duplicate indexes, personal data): loaded on first use, since its
        libraries take a noticeable part of a second to import and most commands never
        screen anything."""
        if self._screener is None:
            from commonweal.hub.screening import Screener

            self._screener = Screener()
        return self._screener

    @property
    def screener_loaded(self) -> Screener | None:
        """The screener if anything has used it (the hub resets it after a rollback)."""
        return self._screener

    # -- intake --------------------------------------------------------------------------

    def contribute(self, doc: Any) -> dict[str, Any]:
        """Take a signed batch with its content: check it, screen it, store it encrypted.

        ``doc`` is ``{"event": ..., "sig": ..., "content": [{"id", "salt", "item"}, ...]}``.
        A batch that fails a hard check is refused whole (nothing is stored); otherwise the
        answer is a receipt: each item in review, or refused with its reasons.
        """
        signed, items = self._checked_batch(doc)
        screened: list[Screened] = []

        def screen(ctx: Computing) -> dict[str, Any]:
            assert ctx.state.charter is not None
            screened.extend(self.screener.screen(ctx.conn, ctx.state.charter, items))
            keep = [(s.id, s.stored) for s in screened if s.stored is not None]
            vault.store_items(ctx.conn, self._hub.keyring, signed.actor, keep)
            return {"batch": ctx.index - 1, "results": [s.result() for s in screened]}

        done = self._hub.record("contribution.screen", screen, after=[signed])
        return {
            "batch": done.entry - 1,
            "size": done.size,
            "checkpoint": done.checkpoint,
            "items": [{**s.result(), "report": s.report} for s in screened],
        }

    def _checked_batch(self, doc: Any) -> tuple[SignedEvent, list[tuple[str, dict[str, Any]]]]:
        """The member's event and its ``(id, item)`` pairs, every hard check passed."""
        if not isinstance(doc, dict) or set(doc) != {"event", "sig", "content"}:
            raise InvalidInput('send {"event": ..., "sig": ..., "content": [...]}')
        signed = SignedEvent.from_wire({"event": doc["event"], "sig": doc["sig"]})
        if signed.kind != "contribution.submit":
            raise InvalidInput(f"expected a contribution.submit event, got {signed.kind}")
        charter = self._hub.state.charter
        if charter is None or charter.task is None:
            raise Forbidden("this community has no task in its charter, so it takes no data")
        described = signed.body.get("items")
        content = doc["content"]
        if not isinstance(described, list) or not isinstance(content, list):
            raise InvalidInput("the event's items and the content must be lists")
        if len(content) != len(described):
            raise InvalidInput(
                f"the batch describes {len(described)} items but carries {len(content)}"
            )
        items = [
            _checked_part(charter, n, meta, part)
            for n, (meta, part) in enumerate(zip(described, content, strict=True))
        ]
        return signed, items

    # -- reads ---------------------------------------------------------------------------

    def contributions(
        self,
        *,
        member: str | None = None,
        status: str | None = None,
        flag: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Contributions in log order, filtered by member, status or one flag; each row
        says which earlier item it resembles, if screening found it a copy."""
        with self._hub.read() as conn:
            found = rows.contribution_rows(
                conn, member=member, status=status, flag=flag, limit=limit
            )
        return self._with_resembles(found)

    def contribution(self, item_id: str) -> dict[str, Any]:
        """One item's projection row; NotFound if the log never had it."""
        found = self.contributions_by_id([item_id])
        if not found:
            raise NotFound(f"there is no item {item_id}")
        return found[0]

    def contributions_by_id(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        with self._hub.read() as conn:
            found = rows.contributions_by_id(conn, ids)
        return self._with_resembles(found)

    def _with_resembles(self, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows with ``resembles``: the log, not the projection table, holds it (it never
        changes once screened). A row newer than this process's state catches it up."""
        state = self._hub.state
        if any(r["id"] not in state.contributions for r in found):
            self._hub.refresh()
            state = self._hub.state
        for r in found:
            c = state.contributions.get(r["id"])
            r["resembles"] = None if c is None else c.resembles
        return found

    def item_content(self, item_id: str) -> Any:
        """An item's decrypted content; NotFound once withdrawn (its key is gone)."""
        with self._hub.read() as conn:
            return vault.load_item(conn, self._hub.keyring, item_id)

    def quality_report(self, item_id: str) -> dict[str, Any]:
        """What screening found in an item, by kind and position (never by value)."""
        with self._hub.read() as conn:
            report = rows.quality_report(conn, item_id)
        if report is None:
            raise NotFound(f"item {item_id} has no quality report (unknown or withdrawn)")
        return report

    # -- review --------------------------------------------------------------------------

    def next_review(self, reviewer: str, *, skip: Collection[str] = ()) -> dict[str, Any] | None:
        """An item in review that ``reviewer`` may review, with its content: the one with
        the fewest reviews first, so items finish rather than all advancing slowly. Items
        in ``skip`` (the ones a reviewer passed over this session) are left for later.
        ``left`` counts the items waiting for this reviewer and not skipped, this one
        included."""
        state = self._hub.state
        passed = frozenset(skip)
        candidates = sorted(
            (
                c
                for c in state.contributions.values()
                if c.status == "in_review"
                and c.member != reviewer
                and reviewer not in c.reviewers
                and c.id not in passed
            ),
            key=lambda c: (c.reviews_needed - c.reviews, c.updated_index),
        )
        for n, c in enumerate(candidates):
            try:
                content = self.item_content(c.id)
            except NotFound:
                continue  # withdrawn since this state: not waiting any more
            return {
                **c.to_json(),
                "content": content,
                "report": self.quality_report(c.id),
                "left": len(candidates) - n,
            }
        return None

    def reviewer_reliability(self) -> dict[str, float]:
        """Each reviewer's estimated reliability (Dawid–Skene over the logged reviews),
        computed once per log size."""
        return self.reliability_as_of()[1]

    def reliability_as_of(self, *, stale_ok: bool = False) -> tuple[int, dict[str, float]]:
        """``(log size, reliability by reviewer)``. With ``stale_ok``, the last estimate
        is returned at once (a page shows what size it is "as of") and a newer one is
        computed in the background; only the very first is computed while waiting."""
        state = self._hub.state
        size, known = self._reliability
        if size == state.size:
            return size, dict(known)
        if stale_ok and size >= 0:
            self._refresh_reliability()
            return size, dict(known)
        known = reliability(state)
        self._keep_reliability(state.size, known)
        return state.size, dict(known)

    def _keep_reliability(self, size: int, known: dict[str, float]) -> None:
        if size > self._reliability[0]:  # a slower, older computation never wins
            self._reliability = (size, known)

    def _refresh_reliability(self) -> None:
        if not self._refreshing.acquire(blocking=False):
            return  # one at a time: it will be fresh enough

        def run() -> None:
            try:
                state = self._hub.state
                self._keep_reliability(state.size, reliability(state))
            finally:
                self._refreshing.release()

        threading.Thread(target=run, name="reliability", daemon=True).start()

    def member_tallies(self) -> dict[str, views.MemberTally]:
        """Every member's items by status and reviews by verdict (once per log size)."""
        state = self._hub.state
        size, tallies = self._tallies
        if size != state.size:
            tallies = views.member_tallies(state)
            self._tallies = (state.size, tallies)
        return tallies

    def scan_labels(self, *, seed: int = 0) -> dict[str, Any]:
        """Look for suspected label errors across the pool (confident learning) and flag
        them in the log for reviewers. Needs enough items per label to mean anything."""
        from commonweal.hub.quality import suspected_mislabels  # cleanlab: a second to load

        state = self._hub.state
        charter = state.charter
        if charter is None or charter.task is None or not charter.task.labels:
            raise InvalidInput("label checks need a classification task in the charter")
        pool = sorted(
            (c for c in state.contributions.values() if c.status in ("in_review", "accepted")),
            key=lambda c: c.id,
        )
        with self._hub.read() as conn:
            content = vault.load_items(conn, self._hub.keyring, [c.id for c in pool])
        pool = [c for c in pool if c.id in content]
        labels = [c.decided_label or c.label or "" for c in pool]
        suspects = suspected_mislabels(charter, [content[c.id] for c in pool], labels, seed=seed)
        new = [pool[i].id for i in suspects if "suspected-label-error" not in pool[i].flags]
        result: dict[str, Any] = {"scanned": len(pool), "suspected": len(suspects), "flagged": new}
        if new:
            body = {"items": new, "flag": "suspected-label-error", "method": "cleanlab"}
            done = self._hub.append([self._hub.sign("contribution.flag", body)])
            result["entry"] = done.entries[0]["index"]
        return result

    # -- portability ---------------------------------------------------------------------

    def member_export(self, member: str) -> dict[str, Any]:
        """Everything ``member`` contributed (content included) and every log entry by
        them or naming them: what data portability owes them."""
        mine = self.contributions(member=member, limit=10**9)
        my_items = {c["id"] for c in mine}
        with self._hub.read() as conn:
            content = vault.load_items(conn, self._hub.keyring, [c["id"] for c in mine])
        events = [
            leaf.to_json()
            for leaf in (decode_leaf(b, strict=False) for b in self._hub.log.iter_leaf_bytes())
            if _names(leaf.actor, leaf.body, member, my_items)
        ]
        return {
            "member": member,
            "contributions": [{**c, "content": content.get(c["id"])} for c in mine],
            "events": events,
        }


def _checked_part(charter: Charter, n: int, meta: Any, part: Any) -> tuple[str, dict[str, Any]]:
    """One item of a batch checked against what the member signed about it."""
    where = f"content[{n}]"
    if not isinstance(part, dict) or set(part) != {"id", "salt", "item"}:
        raise InvalidInput(f'{where} must be {{"id", "salt", "item"}}')
    if not isinstance(meta, dict) or part["id"] != meta.get("id"):
        raise InvalidInput(f"{where}: id does not match the event's items[{n}]")
    check_item(charter, part["item"], f"{where}.item")
    try:
        salt = base64.b64decode(part["salt"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise InvalidInput(f"{where}.salt must be base64") from None
    if len(salt) < SALT_BYTES:
        raise InvalidInput(f"{where}.salt must be at least {SALT_BYTES} random bytes")
    if commitment_of(salt, part["item"]) != meta.get("commitment"):
        raise InvalidInput(f"{where}: the item does not match its signed commitment")
    if len(canonical(part["item"])) != meta.get("bytes"):
        raise InvalidInput(f"{where}: bytes does not match the item's canonical size")
    if item_label(charter, part["item"]) != meta.get("label"):
        raise InvalidInput(f"{where}: label does not match the signed label")
    return part["id"], part["item"]


def _names(actor: str, body: dict[str, Any], member: str, items: set[str]) -> bool:
    """Whether an entry is by ``member`` or names them or one of their items."""
    return (
        actor == member
        or body.get("member") == member
        or body.get("item") in items
        or any(
            isinstance(r, dict) and r.get("id") in items
            for r in body.get("results", []) + body.get("decisions", [])
        )
    )
