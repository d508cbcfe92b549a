"""The rules for contributed data: submitting, screening, reviewing, deciding, withdrawing.

The log never holds an item's content, only its salted commitment (SHA-256 of a random salt
and the item's canonical JSON) and the facts around it: who gave it, under which license
and consent, its label (a class from the charter's fixed list, needed to recompute review
consensus), what screening found, each review, each decision, each withdrawal.

Event kinds:

- ``contribution.submit`` — a member's signed batch of item descriptions.
- ``contribution.screen`` — the hub's signed results of its automatic checks for one batch:
  each item goes to review, or is refused with its reasons; flags are kept either way.
- ``review.submit`` — a member's verdict on an item: accept, reject, relabel or flag.
- ``review.decide`` — the hub's consensus decisions, computed from every review logged
  before entry ``upto``; ``ledger verify`` recomputes them.
- ``contribution.withdraw`` — the contributor takes items back; the hub deletes their
  content and keys in the same transaction, and no later training may use them.
- ``contribution.flag`` — the hub marks items a later check found suspect (confident
  learning's suspected label errors, once the pool is large enough), for reviewers to see.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container
from typing import Any

from commonweal.community.charter import CONSENT_SCOPES, Charter
from commonweal.community.kinds import Changes, Touched, fields, need_active, need_hub
from commonweal.community.review_pay import ReviewTally, decision_category, verdict_category
from commonweal.community.state import Contribution, MemberStats, Review, State, Verdict
from commonweal.errors import Conflict, Forbidden, InvalidInput, TooLarge
from commonweal.ledger.event import Leaf

__all__ = [
    "ITEM_ID_HEX",
    "KINDS",
    "VERDICTS",
    "item_id",
    "item_terms",
    "matched_consensus",
    "reviews_needed",
]

ITEM_ID_HEX = 32
VERDICTS = ("accept", "reject", "relabel", "flag")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FLAG = re.compile(r"[a-z][a-z0-9_-]{0,40}")
_OPEN = ("in_review",)
REREVIEW = "re-review"  # the flag an accepted item carries while it is reviewed again


def item_id(commitment: str) -> str:
    """An item's id: the first 128 bits of its commitment (which is salted, so it says
    nothing about the content)."""
    return commitment[:ITEM_ID_HEX]


def _task(state: State, kind: str) -> Charter:
    charter = state.charter
    if charter is None or charter.task is None:
        raise Forbidden(
            f"{kind}: this community has no task in its charter, so it takes no contributions"
        )
    return charter


def reviews_needed(state: State, member: str) -> int:
    """How many reviews a new item by ``member`` needs: more while they are a newcomer."""
    assert state.charter is not None
    rules = state.charter.review
    accepted = state.stats.get(member, MemberStats()).accepted
    if accepted < rules.newcomer_until_accepted:
        return max(rules.reviews_needed, rules.newcomer_reviews_needed)
    return rules.reviews_needed


_ITEM_FIELDS = {"id", "commitment", "license", "consent", "bytes", "label"}


def _day_count(state: State, leaf: Leaf, charter: Charter, n_items: int) -> tuple[str, int]:
    """The log day and how many items the actor sent earlier that day, once a batch of
    ``n_items`` fits the charter's batch and daily limits."""
    kind, limits = leaf.kind, charter.limits
    if not n_items:
        raise InvalidInput(f"{kind}: a batch holds at least one item")
    if n_items > limits.max_batch_items:
        raise TooLarge(f"{kind}: a batch holds at most {limits.max_batch_items} items")
    day = leaf.log_time[:10]
    stats = state.stats.get(leaf.actor, MemberStats())
    today = stats.day_items if stats.day == day else 0
    if today + n_items > limits.max_items_per_member_per_day:
        raise TooLarge(
            f"{kind}: {today} items today plus {n_items} would pass the charter's limit of "
            f"{limits.max_items_per_member_per_day} per member per day; send the rest tomorrow"
        )
    return day, today


def _item_commitment(
    raw: Any, where: str, taken: Container[str], ids: list[str]
) -> tuple[str, str]:
    """An item's commitment and id, once it is an object with known fields whose id is its
    commitment's and is neither in ``taken`` nor earlier in the batch (``ids``)."""
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be an object")
    extra = sorted(set(raw) - _ITEM_FIELDS)
    if extra:
        raise InvalidInput(f"{where}: unexpected field(s) {extra}")
    commitment, iid = raw.get("commitment"), raw.get("id")
    if not isinstance(commitment, str) or not _HEX64.fullmatch(commitment):
        raise InvalidInput(f"{where}: commitment must be 64 hex digits (SHA-256)")
    if iid != item_id(commitment):
        raise InvalidInput(f"{where}: id must be the first {ITEM_ID_HEX} hex of commitment")
    if iid in taken or iid in ids:
        raise Conflict(f"{where}: item {iid} was already submitted")
    return commitment, iid


def item_terms(raw: dict[str, Any], where: str, charter: Charter) -> tuple[Any, str]:
    """An item's license and its consent scopes in charter order, once the charter accepts
    the license and the consent covers what the charter requires."""
    lic = raw.get("license")
    if lic not in charter.licenses:
        raise InvalidInput(
            f"{where}: license {lic!r} is not one the charter accepts: {charter.licenses}"
        )
    consent = raw.get("consent")
    if not isinstance(consent, list) or any(c not in CONSENT_SCOPES for c in consent):
        raise InvalidInput(f"{where}: consent must be a list of {list(CONSENT_SCOPES)}")
    missing = [c for c in charter.consent_required if c not in consent]
    if missing:
        raise InvalidInput(f"{where}: the charter requires consent to {missing}")
    return lic, ",".join(c for c in CONSENT_SCOPES if c in consent)


def _item_label(raw: dict[str, Any], where: str, charter: Charter, labels: set[Any]) -> Any:
    """An item's label, once its size is within the charter's limit and the label fits the
    task (one of the classes, or none for a task without classes)."""
    assert charter.task is not None
    size = raw.get("bytes")
    if type(size) is not int or not 0 < size <= charter.limits.max_item_bytes:
        raise TooLarge(
            f"{where}: an item is at most {charter.limits.max_item_bytes} bytes (bytes={size!r})"
        )
    label = raw.get("label")
    if labels:
        if label not in labels:
            raise InvalidInput(f"{where}: label {label!r} is not one of {charter.task.labels}")
    elif label is not None:
        raise InvalidInput(f"{where}: a {charter.task.kind} item has no label")
    return label


def _submit(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"items": list})
    need_active(state, leaf.actor, kind)
    charter = _task(state, kind)
    assert charter.task is not None
    items = body["items"]
    day, today = _day_count(state, leaf, charter, len(items))
    labels = set(charter.task.labels)
    contributions = state.contributions.mutate()
    ids: list[str] = []
    required = reviews_needed(state, leaf.actor)
    for n, raw in enumerate(items):
        where = f"{kind}: items[{n}]"
        commitment, iid = _item_commitment(raw, where, contributions, ids)
        lic, ordered = item_terms(raw, where, charter)
        label = _item_label(raw, where, charter, labels)
        contributions[iid] = Contribution(
            iid,
            leaf.actor,
            leaf.index,
            commitment,
            label,
            lic,
            ordered,
            "screening",
            "",
            "",
            required,
            0,
            None,
            leaf.index,
        )
        ids.append(iid)
    stats = state.stats.get(leaf.actor, MemberStats())
    return {
        "contributions": contributions.finish(),
        "batches": state.batches.set(leaf.index, tuple(ids)),
        "stats": state.stats.set(leaf.actor, stats._replace(day=day, day_items=today + len(items))),
    }


def _screen(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"batch": int, "results": list})
    need_hub(state, leaf)
    batch = state.batches.get(body["batch"])
    if batch is None:
        raise Conflict(f"{kind}: entry {body['batch']} is not a batch awaiting screening")
    results = body["results"]
    if [r.get("id") if isinstance(r, dict) else None for r in results] != list(batch):
        raise InvalidInput(f"{kind}: results must cover the batch's items, in order")
    contributions = state.contributions.mutate()
    position = {iid: n for n, iid in enumerate(batch)}
    for r in results:
        status = r.get("status")
        if status not in ("in_review", "refused") or set(r) - _RESULT_FIELDS:
            raise InvalidInput(
                f"{kind}: each result is {{id, status, flags, reasons[, resembles]}}"
            )
        flags, reasons = r.get("flags", []), r.get("reasons", [])
        if not isinstance(flags, list) or not all(
            isinstance(f, str) and _FLAG.fullmatch(f) for f in flags
        ):
            raise InvalidInput(f"{kind}: flags are short lowercase words")
        if not isinstance(reasons, list) or not all(isinstance(x, str) for x in reasons):
            raise InvalidInput(f"{kind}: reasons are strings")
        if status == "refused" and not reasons:
            raise InvalidInput(f"{kind}: a refusal says why")
        c = contributions[r["id"]]
        contributions[c.id] = c._replace(
            status=status,
            flags=",".join(flags),
            reasons="; ".join(reasons),
            updated_index=leaf.index,
            resembles=_original(state, kind, r, position),
        )
    return {
        "contributions": contributions.finish(),
        "batches": state.batches.delete(body["batch"]),
        "beacons": state.beacons.set(body["batch"], hashlib.sha256(leaf.data).hexdigest()),
    }


_RESULT_FIELDS = {"id", "status", "flags", "reasons", "resembles"}


def _original(state: State, kind: str, result: dict[str, Any], position: dict[str, int]) -> Any:
    """The earlier item a screened item copies, checked: it must be in the log before it
    (an earlier batch, or earlier in the same batch) — log order decides the original."""
    other = result.get("resembles")
    if other is None:
        return None
    earlier = state.contributions.get(other) if isinstance(other, str) else None
    same_batch_later = other in position and position[other] >= position[result["id"]]
    if earlier is None or other == result["id"] or same_batch_later:
        raise InvalidInput(f"{kind}: an item resembles an item logged before it")
    return other


def _review(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"item": str, "verdict": str}, {"label": str, "reason": str})
    need_active(state, leaf.actor, kind)
    item = state.contributions.get(body["item"])
    if item is None:
        raise InvalidInput(f"{kind}: there is no item {body['item']!r}")
    if item.status not in _OPEN:
        raise Conflict(f"{kind}: item {item.id} is {item.status}, not in review")
    if item.member == leaf.actor:
        raise Forbidden(f"{kind}: members do not review their own items")
    if leaf.actor in item.reviewers:
        raise Conflict(f"{kind}: you already reviewed item {item.id}")
    verdict = body["verdict"]
    if verdict not in VERDICTS:
        raise InvalidInput(f"{kind}: verdict {verdict!r} is not one of {list(VERDICTS)}")
    label, reason = body.get("label"), body.get("reason")
    charter = _task(state, kind)
    assert charter.task is not None
    if verdict == "relabel":
        if label not in charter.task.labels:
            raise InvalidInput(f"{kind}: relabel to one of {charter.task.labels}, not {label!r}")
        if label == item.label:
            raise InvalidInput(f"{kind}: the item is already labelled {label!r}; accept it")
    elif label is not None:
        raise InvalidInput(f"{kind}: only a relabel verdict carries a label")
    if verdict == "flag" and not (reason and reason.strip()):
        raise InvalidInput(f"{kind}: a flag says what is wrong (--reason)")
    if reason is not None and len(reason) > 500:
        raise TooLarge(f"{kind}: a reason is at most 500 characters")
    review = Review(leaf.index, item.id, leaf.actor, verdict, label, reason)
    updated = item._replace(
        reviews=item.reviews + 1,
        reviewers=item.reviewers | {leaf.actor},
        updated_index=leaf.index,
    )
    verdicts = (*state.verdicts.get(item.id, ()), Verdict(leaf.actor, verdict, label))
    return {
        "contributions": state.contributions.set(item.id, updated),
        "reviews": state.reviews.set(leaf.index, review),
        "verdicts": state.verdicts.set(item.id, verdicts),
    }


def matched_consensus(v: Verdict, item: Contribution, outcome: str, label: str | None) -> bool:
    """Whether a verdict agreed with the decision: an accept (or a relabel to the decided
    label) of an accepted item, a reject or flag of a rejected one."""
    if outcome == "accepted":
        if v.verdict == "accept":
            return label == item.label
        return v.verdict == "relabel" and v.label == label
    return v.verdict in ("reject", "flag")


def _decide(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"method": str, "upto": int, "decisions": list})
    need_hub(state, leaf)
    charter = _task(state, kind)
    if body["method"] != charter.review.consensus:
        raise InvalidInput(f"{kind}: the charter's consensus method is {charter.review.consensus}")
    if not 0 < body["upto"] <= leaf.index:
        raise InvalidInput(f"{kind}: upto must be an earlier log position")
    contributions = state.contributions.mutate()
    stats = state.stats.mutate()
    verdicts = state.verdicts.mutate()
    credit = state.review_credit.mutate()
    tallies = state.review_tallies.mutate()
    for d in body["decisions"]:
        if not isinstance(d, dict) or set(d) != {"id", "outcome", "label", "confidence_pct"}:
            raise InvalidInput(f"{kind}: each decision is {{id, outcome, label, confidence_pct}}")
        c = contributions.get(d["id"])
        if c is None or c.status not in _OPEN:
            raise Conflict(f"{kind}: item {d['id']!r} is not in review")
        if c.reviews < c.reviews_needed:
            raise Conflict(f"{kind}: item {c.id} has {c.reviews} of {c.reviews_needed} reviews")
        if d["outcome"] not in ("accepted", "rejected"):
            raise InvalidInput(f"{kind}: outcome is accepted or rejected")
        flags = c.flags.split(",")
        contributions[c.id] = c._replace(
            status=d["outcome"],
            decided_label=d["label"],
            updated_index=leaf.index,
            flags=",".join(f for f in flags if f != REREVIEW),
        )
        # A re-review may accept an item again (no new accepted item) or reject it.
        was_accepted = REREVIEW in flags
        now_accepted = d["outcome"] == "accepted"
        if was_accepted != now_accepted:
            s = stats.get(c.member, MemberStats())
            stats[c.member] = s._replace(accepted=s.accepted + (1 if now_accepted else -1))
        # Score the item's verdicts against the decision, for the next reward epoch.
        decided = decision_category(d["outcome"], d["label"], c)
        for v in verdicts.get(c.id, ()):
            if matched_consensus(v, c, d["outcome"], d["label"]):
                credit[v.reviewer] = credit.get(v.reviewer, 0) + 1
            tally = tallies.get(v.reviewer, ReviewTally())
            tallies[v.reviewer] = tally.add(verdict_category(v, c), decided)
        if c.id in verdicts:
            del verdicts[c.id]
    return {
        "contributions": contributions.finish(),
        "stats": stats.finish(),
        "verdicts": verdicts.finish(),
        "review_credit": credit.finish(),
        "review_tallies": tallies.finish(),
    }


def _withdraw(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"items": list})
    if leaf.actor not in state.members:
        raise Forbidden(f"{kind}: only a member's own items can be withdrawn")
    if not body["items"]:
        raise InvalidInput(f"{kind}: name at least one item")
    contributions = state.contributions.mutate()
    for iid in body["items"]:
        c = contributions.get(iid) if isinstance(iid, str) else None
        if c is None:
            raise InvalidInput(f"{kind}: there is no item {iid!r}")
        if c.member != leaf.actor:
            raise Forbidden(f"{kind}: item {iid} is not yours to withdraw")
        if c.status == "withdrawn":
            raise Conflict(f"{kind}: item {iid} was already withdrawn")
        contributions[iid] = c._replace(status="withdrawn", updated_index=leaf.index)
    verdicts = state.verdicts
    for iid in body["items"]:
        if iid in verdicts:  # withdrawn before a decision: nothing to score them against
            verdicts = verdicts.delete(iid)
    return {"contributions": contributions.finish(), "verdicts": verdicts}


def _flag(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, {"items": list, "flag": str, "method": str})
    need_hub(state, leaf)
    if not _FLAG.fullmatch(body["flag"]):
        raise InvalidInput(f"{kind}: a flag is a short lowercase word")
    assert state.charter is not None
    rules = state.charter.review
    again = body["flag"] in rules.rereview_flags
    contributions = state.contributions.mutate()
    for iid in body["items"]:
        c = contributions.get(iid) if isinstance(iid, str) else None
        if c is None or c.status not in ("in_review", "accepted"):
            raise Conflict(f"{kind}: item {iid!r} is not in review or accepted")
        flags = [f for f in c.flags.split(",") if f]
        if body["flag"] not in flags:
            flags.append(body["flag"])
        c = c._replace(flags=",".join(flags), updated_index=leaf.index)
        if again and c.status == "accepted":
            # Back to review: more members look at it, their verdicts join the earlier
            # ones, and the consensus decides again (the next version follows).
            c = c._replace(
                status="in_review",
                reviews_needed=c.reviews + rules.rereviews_needed,
                flags=",".join([*flags, REREVIEW]),
            )
        contributions[iid] = c
    return {"contributions": contributions.finish()}


def _ids(leaf: Leaf, key: str = "items") -> tuple[str, ...]:
    items: Any = leaf.body.get(key, [])
    return tuple(i["id"] if isinstance(i, dict) else i for i in items)


KINDS: dict[str, tuple[Any, Any]] = {
    "contribution.submit": (_submit, lambda lf: Touched(contributions=_ids(lf))),
    "contribution.screen": (_screen, lambda lf: Touched(contributions=_ids(lf, "results"))),
    "review.submit": (
        _review,
        lambda lf: Touched(contributions=(lf.body["item"],), reviews=(lf.index,)),
    ),
    "review.decide": (_decide, lambda lf: Touched(contributions=_ids(lf, "decisions"))),
    "contribution.withdraw": (_withdraw, lambda lf: Touched(contributions=_ids(lf))),
    "contribution.flag": (_flag, lambda lf: Touched(contributions=_ids(lf))),
}
