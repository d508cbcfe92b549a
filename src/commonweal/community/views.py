"""What the state says, shaped for people: the pure views behind the API, CLI and pages.

Each function reads a replayed ``State`` (and, where time matters, the instant it is asked
about, passed in: the rules read no clock) and returns plain dicts. The hub adds what only
storage knows; everything derivable from the log alone is here, once.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from commonweal.community.governance import current_tally, phase, seconds_between
from commonweal.community.ownership import POOLS
from commonweal.community.state import Proposal, State
from commonweal.errors import InvalidInput, NotFound

__all__ = [
    "actors_matching",
    "cap_table",
    "describe_proposal",
    "executable_proposals",
    "list_proposals",
    "member_api_keys",
    "member_name",
    "model_report",
    "release_of",
    "resolve_version",
    "statement",
    "valuation_report",
    "waiting",
]


def member_name(state: State, key: str) -> str:
    """A member's display name, or "" for a key that never joined."""
    m = state.members.get(key)
    return m.name if m is not None else ""


_HEX = frozenset("0123456789abcdef")


def actors_matching(state: State, query: str, *, limit: int = 100) -> list[str]:
    """The keys a person means by ``query``: "hub" for the hub's own key, a key prefix (4+
    hex digits), or a name — the members so named (case-insensitive), or failing that
    those whose name contains it. At most ``limit`` keys, sorted."""
    q = query.strip().casefold()
    if not q:
        return []
    if q in ("hub", "the hub"):
        return [state.hub_key] if state.hub_key else []
    if len(q) >= 4 and set(q) <= _HEX:
        keys = [k for k in state.members if k.startswith(q)]
        if q and state.hub_key.startswith(q):
            keys.append(state.hub_key)
        if keys:
            return sorted(keys)[:limit]
    exact = [k for k, m in state.members.items() if m.name.casefold() == q]
    found = exact or [k for k, m in state.members.items() if q in m.name.casefold()]
    return sorted(found)[:limit]


def resolve_version(state: State, version: str | int) -> int:
    """A model version number from ``latest`` or a number, NotFound if there is none."""
    if version == "latest":
        latest = state.latest_model
        if latest is None:
            raise NotFound("this community has no model yet; train one with `commonweal train`")
        return latest.version
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise InvalidInput(f"a model version is a number or 'latest', not {version!r}") from None
    if v not in state.models:
        raise NotFound(
            f"there is no model version {v}; versions are 1-{len(state.models)}"
            if state.models
            else f"there is no model version {v}: this community has no model yet"
        )
    return v


def cap_table(state: State) -> dict[str, Any]:
    """Who owns the community: shares held, percent, and how they were earned."""
    total = sum(h.shares for h in state.holdings.values())
    rows: list[dict[str, Any]] = [
        {
            "member": h.member,
            "name": member_name(state, h.member),
            "shares": h.shares,
            "percent": round(100.0 * h.shares / total, 4) if total else 0.0,
            "data": h.data,
            "review": h.review,
            "compute": h.compute,
            "credits": h.credits,
            "address": h.address,
        }
        for h in state.holdings.values()
        if h.shares or h.data or h.review or h.compute or h.credits
    ]
    rows.sort(key=lambda r: (-r["shares"], r["name"], r["member"]))
    assert state.charter is not None
    return {
        "total_shares": total,
        "epochs": len(state.epochs),
        "transferable": state.charter.rewards.transferable,
        "treasury": state.treasury.to_json(),
        "holders": rows,
    }


def statement(state: State, member: str) -> dict[str, Any]:
    """One member's account: holdings, each epoch's awards and each payout to them."""
    m = state.members.get(member)
    if m is None:
        raise NotFound(f"{member[:16]}… is not a member of this community")
    h = state.holdings.get(member)
    epochs = []
    for e in sorted(state.epochs.values()):
        awards = json.loads(e.awards)
        got = {p: sum(s for k, s in awards[p] if k == member) for p in POOLS}
        if any(got.values()):
            epochs.append({"epoch": e.epoch, "entry": e.entry, **got, "shares": sum(got.values())})
    payouts = []
    for p in sorted(state.payouts.values()):
        for k, shares, credits in json.loads(p.parts):
            if k == member:
                payouts.append(
                    {
                        "payout": p.payout,
                        "entry": p.entry,
                        "shares": shares,
                        "of_shares": p.shares_total,
                        "credits": credits,
                        "of_amount": p.amount,
                    }
                )
    return {
        "member": member,
        "name": m.name,
        "shares": h.shares if h else 0,
        "earned": {p: getattr(h, p) if h else 0 for p in POOLS},
        "credits": h.credits if h else 0,
        "address": h.address if h else "",
        "epochs": epochs,
        "payouts": payouts,
    }


def _seconds_until(t: str, when: str) -> int:
    return max(0, int(seconds_between(when, t)))


def describe_proposal(state: State, p: Proposal, when: str) -> dict[str, Any]:
    """A proposal as people read it: its phase now, time left, and the tally — hidden while
    a secret ballot is open (only the number of commitments shows)."""
    ph = phase(p, when)
    out: dict[str, Any] = {
        **p.to_json(),
        "actions": json.loads(p.actions),
        "options": json.loads(p.options),
        "quorum_counts": json.loads(p.quorum_counts),
        "tally": json.loads(p.tally) if p.tally else None,
        "phase": ph,
        "proposer_name": state.members[p.proposer].name if p.proposer in state.members else "",
    }
    if ph == "pending":
        out["seconds_left"] = _seconds_until(p.starts, when)
    elif ph == "active":
        out["seconds_left"] = _seconds_until(p.ends, when)
    elif ph == "revealing":
        out["seconds_left"] = _seconds_until(p.reveal_ends, when)
    elif ph == "timelock":
        out["seconds_left"] = _seconds_until(p.executable_after, when)
    elif ph == "executable":
        out["seconds_left"] = _seconds_until(p.expires, when)
    if p.status == "open":
        if p.secret and ph in ("pending", "active"):
            out["tally"] = None
            out["commitments"] = len(state.commits[p.proposal])
        else:
            out["tally"] = current_tally(state, p.proposal)
    t = out["tally"]
    if t is not None and p.choice == "basic":
        counted = sum(t["counts"][c] for c in out["quorum_counts"])
        out["quorum_reached"] = counted * 100 >= p.quorum_pct * p.total_power
    return out


def list_proposals(state: State, when: str) -> list[dict[str, Any]]:
    return [describe_proposal(state, p, when) for _, p in sorted(state.proposals.items())]


def executable_proposals(state: State, when: str) -> list[int]:
    """Open proposals whose timelock has run out, not lapsed, that passed."""
    out = []
    for number, p in sorted(state.proposals.items()):
        due = p.status == "open" and phase(p, when) == "executable"
        if due and current_tally(state, number)["passed"]:
            out.append(number)
    return out


def valuation_report(
    state: State, body: dict[str, Any], entry: int, rows: Sequence[tuple[str, str, str]]
) -> dict[str, Any]:
    """What ``commonweal value`` shows: per member, their share of the items and of the
    value, and the negative items."""
    # Per member: what they sent (every status), what the version trained on (relabelled
    # items included), and what they were credited for.
    sent: dict[str, int] = defaultdict(int)
    for c in state.contributions.values():
        sent[c.member] += 1
    used: dict[str, int] = defaultdict(int)
    relabelled: dict[str, int] = defaultdict(int)
    for item, member, _ in rows:
        owner = state.contributions[item].member
        used[owner] += 1
        if not member:
            relabelled[owner] += 1
    total_items = len(rows)
    positive = sum(max(0.0, float(m["value"])) for m in body["members"])
    members = []
    for m in body["members"]:
        val = float(m["value"])
        key = m["member"]
        members.append(
            {
                **m,
                "name": state.members[key].name if key in state.members else "",
                "sent": sent[key],
                "trained": used[key],
                "relabelled": relabelled[key],
                "items_pct": round(100.0 * used[key] / total_items, 2) if total_items else 0.0,
                "value_pct": round(100.0 * max(0.0, val) / positive, 2) if positive else 0.0,
                "value_per_item_sent": repr(val / sent[key]) if sent[key] else "0.0",
            }
        )
    members.sort(key=lambda m: -float(m["value"]))
    worst = sorted((r for r in rows if float(r[2]) < 0), key=lambda r: float(r[2]))[:20]
    return {
        **{k: body[k] for k in body if k != "members"},
        "entry": entry,
        "members": members,
        "flagged": [{"item": i, "member": m, "value": val} for i, m, val in worst],
    }


def release_of(state: State, version: int) -> dict[str, Any]:
    """How the members released ``version``: its license and whether its weights are
    public, and the proposal (its log entry) that decided it, if any."""
    mv = state.models[version]
    decided = None
    for number, p in sorted(state.proposals.items()):
        if p.status == "executed" and any(
            a["type"] == "model.release" and a["version"] == version for a in json.loads(p.actions)
        ):
            decided = number
    return {"license": mv.license, "weights": mv.weights, "proposal": decided}


# The metrics a version is judged by first, per kind of task (the rest are per label or
# comparisons, shown beside them).
_HEADLINE = {"classification": ("accuracy", "macro_f1"), "regression": ("r2", "mae", "rmse")}
# Metrics where a smaller number is the better model.
_LOWER_IS_BETTER = frozenset({"mae", "rmse"})


def model_report(state: State, version: int) -> dict[str, Any]:
    """A version's metrics as members read them: the headline numbers beside one unsharded
    model's and the previous version's on the same items, how far SISA falls behind (and
    whether past the charter's allowance), and each label's precision and recall."""
    mv = state.models[version]
    assert state.charter is not None and state.charter.task is not None
    task = state.charter.task
    got = {k: float(v) for k, v in json.loads(mv.metrics).items()}
    names = _HEADLINE["regression" if task.kind.endswith("regression") else "classification"]
    headline: list[dict[str, Any]] = []
    for n in names:
        if n not in got:
            continue
        ours, theirs = got.get(f"compared.{n}"), got.get(f"previous.{n}")
        headline.append(
            {
                "name": n,
                "value": got[n],
                "unsharded": got.get(f"unsharded.{n}"),
                "compared": ours,
                "previous": theirs,
                "change": None if ours is None or theirs is None else ours - theirs,
                "lower_is_better": n in _LOWER_IS_BETTER,
            }
        )
    main = names[0]
    behind = (
        100.0 * (got[f"unsharded.{main}"] - got[main])
        if main in got and f"unsharded.{main}" in got
        else None
    )
    allowed = state.charter.training.behind_unsharded_pct
    labels = [
        {"label": x, "precision": got.get(f"precision.{x}"), "recall": got.get(f"recall.{x}")}
        for x in task.labels
        if f"precision.{x}" in got or f"recall.{x}" in got
    ]
    return {
        "version": version,
        "previous": mv.previous,
        "kind": task.kind,
        "headline": headline,
        "behind": behind,
        "behind_allowed": allowed,
        "too_far_behind": behind is not None and behind > allowed,
        "compared_items": int(got["compared.items"]) if "compared.items" in got else None,
        "labels": labels,
        "metrics": got,
    }


def member_api_keys(state: State, member: str) -> list[dict[str, Any]]:
    """The API keys ``member`` issued, newest first; with ``revocable`` on each key they
    may revoke (their own, and every key for the founder where the charter says so)."""
    assert state.charter is not None
    founder_may = state.charter.serving.founder_revokes_keys and member == state.founder
    out = []
    for k in state.apikeys.values():
        mine = k.issued_by == member
        if not mine and not (founder_may and k.status == "active"):
            continue
        out.append(
            {
                **k.to_json(),
                "mine": mine,
                "issuer_name": member_name(state, k.issued_by),
                "revocable": k.status == "active",
            }
        )
    return sorted(out, key=lambda k: -k["created_index"])


def waiting(state: State, member: str, when: str) -> dict[str, Any]:
    """What waits for ``member`` now: items they may review, open proposals they hold power
    in and have not voted on, secret ballots they committed and must still reveal (with the
    deadline), and their latest payout."""
    reviews = sum(
        1
        for c in state.contributions.values()
        if c.status == "in_review" and c.member != member and member not in c.reviewers
    )
    to_vote, to_reveal = [], []
    for number, p in sorted(state.proposals.items()):
        if p.status != "open" or not state.powers[number].get(member):
            continue
        ph = phase(p, when)
        voted = member in state.ballots[number] or member in state.commits[number]
        if ph == "active" and not voted:
            to_vote.append({"proposal": number, "title": p.title, "ends": p.ends})
        elif (
            ph == "revealing"
            and member in state.commits[number]
            and member not in state.ballots[number]
        ):
            to_reveal.append({"proposal": number, "title": p.title, "reveal_ends": p.reveal_ends})
    payout = None
    for paid in reversed(list(state.payouts.values())):
        mine = [c for m, _, c in json.loads(paid.parts) if m == member]
        if mine:
            payout = {"payout": paid.payout, "entry": paid.entry, "credits": mine[0]}
            break
    return {"reviews": reviews, "vote": to_vote, "reveal": to_reveal, "payout": payout}
