"""What the state says, shaped for people: the pure views behind the API, CLI and pages.

Each function reads a replayed ``State`` (and, where time matters, the instant it is asked
about, passed in: the rules read no clock) and returns plain dicts. The hub adds what only
storage knows; everything derivable from the log alone is here, once.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

from commonweal.community.federated import node_status
from commonweal.community.governance import current_tally, phase, seconds_between
from commonweal.community.leaving import left_items
from commonweal.community.naming import resolve_member
from commonweal.community.ownership import POOLS
from commonweal.community.state import Proposal, State
from commonweal.community.tally import effective_votes
from commonweal.errors import Conflict, InvalidInput, NotFound

__all__ = [
    "MemberTally",
    "actors_matching",
    "cap_table",
    "describe_proposal",
    "executable_proposals",
    "explain_power",
    "federation",
    "find_member",
    "leaving_terms",
    "list_proposals",
    "member_api_keys",
    "member_items",
    "member_name",
    "member_node",
    "member_profile",
    "member_tallies",
    "model_report",
    "proposals_page",
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


_OPEN_PHASES = ("active", "revealing", "pending", "timelock", "executable")


def proposals_page(
    state: State, when: str, offset: int = 0, limit: int = 20
) -> tuple[list[dict[str, Any]], int]:
    """One page of proposals as people read them — the open ones first (voting, then
    revealing, not yet open, waiting out the timelock, due), each soonest deadline first;
    then the closed ones, newest first — and how many there are in all. Only the page's
    proposals are counted (a tally costs time in the number of members)."""
    ranked = []
    for number, p in state.proposals.items():
        ph = phase(p, when)
        if ph in _OPEN_PHASES:
            ranked.append((0, _OPEN_PHASES.index(ph), p.reveal_ends, number))
        else:
            ranked.append((1, 0, "", -number))
    ranked.sort()
    chosen = ranked[offset : offset + limit]
    numbers = [abs(r[3]) for r in chosen]
    return [describe_proposal(state, state.proposals[n], when) for n in numbers], len(ranked)


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


# -- voting power, explained ---------------------------------------------------------------


def _names(state: State, keys: Sequence[str]) -> str:
    """``Grace``, ``Grace and Alan``, ``Grace, Alan and Tim``."""
    names = [member_name(state, k) or f"{k[:16]}…" for k in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _holders(power: Any, ballots: Any, delegations: Any) -> dict[str, str]:
    """Whose ballot each eligible member's power goes with: their own if they voted, else
    the first member on their delegation chain (fixed at the snapshot) who voted, else the
    last member on the chain (who would carry it by voting). A cycle, which the rules
    refuse, would stop at the member itself."""
    out: dict[str, str] = {}
    for member in power:
        node, seen = member, {member}
        while node not in ballots and node in delegations:
            nxt = delegations[node]
            if nxt in seen:
                node = member
                break
            seen.add(nxt)
            node = nxt
        out[member] = node
    return out


def _weighting_reason(weighting: str, power: int) -> str:
    if weighting == "member":
        return "has one vote: one member, one vote"
    if weighting == "shares":
        if power == 0:
            return "held no shares when the proposal was made, and votes are weighed by shares"
        held = f"{power} share{'s' if power != 1 else ''}"
        return f"held {held} when the proposal was made, and votes are weighed by shares"
    if power == 0:
        return (
            "held no shares when the proposal was made, and votes are weighed by the square "
            "root of shares (quadratic)"
        )
    return (
        f"held {power * power} to {(power + 1) ** 2 - 1} shares when the proposal was made; "
        f"votes are weighed by the square root of shares (quadratic), so power {power}"
    )


def explain_power(state: State, number: int) -> list[dict[str, Any]]:
    """Every member's voting power on proposal ``number`` and why, in words: not a member
    at the snapshot (joined after it, or not active then), the weighting (one member one
    vote, shares held, quadratic), delegated to whom (so 0 on their own line, counted with
    that member), receiving delegations from whom. Power, members and delegations are the
    ones fixed when the proposal was made; votes are those logged so far (on a secret
    ballot, the revealed ones). Rows: the heaviest first, then by name.

    ``power`` is the member's own power; ``weight`` what their line counts now (their own
    power and what is delegated to them, or 0 if theirs goes with someone else's ballot)."""
    p = state.proposals.get(number)
    if p is None:
        raise NotFound(f"there is no proposal {number}")
    power = state.powers[number]
    delegations = state.delegations[number]
    ballots = state.ballots[number]
    holders = _holders(power, ballots, delegations)
    carried: dict[str, int] = defaultdict(int)
    for member, holder in holders.items():
        carried[holder] += power[member]
    delegators: dict[str, list[str]] = defaultdict(list)
    for member, delegate in delegations.items():
        if member in power:
            delegators[delegate].append(member)
    counted = effective_votes(power, ballots, delegations)
    rows = []
    for m in state.members.values():
        key = m.key
        row: dict[str, Any] = {
            "member": key,
            "name": m.name,
            "status": m.status,
            "eligible": key in power,
            "power": power.get(key, 0),
            "weight": 0,
            "voted": key in ballots,
            "delegate": "",
            "delegate_name": "",
            "counted_with": "",
            "counted_with_name": "",
            "delegators": [],
            "reasons": [],
        }
        reasons: list[str] = row["reasons"]
        if key not in power:
            if m.joined_index > p.entry:
                reasons.append(
                    f"joined after this proposal was made (log entry {p.entry}), so has no "
                    "vote on it"
                )
            else:
                reasons.append(
                    "was not an active member when this proposal was made, so has no vote on it"
                )
            rows.append(row)
            continue
        own = power[key]
        reasons.append(_weighting_reason(p.weighting, own))
        to = delegations.get(key)
        holder = holders[key]
        if to is not None:
            row["delegate"], row["delegate_name"] = to, member_name(state, to)
            if key in ballots:
                reasons.append(
                    f"delegated to {_names(state, [to])}, but voted themselves: their own "
                    "vote counts"
                )
            else:
                via = "" if holder == to else f" (through {_names(state, [to])})"
                row["counted_with"] = holder
                row["counted_with_name"] = member_name(state, holder)
                if key in counted:
                    reasons.append(
                        f"delegated to {_names(state, [to])}: 0 here, their power counts with "
                        f"{_names(state, [holder])}'s vote{via}"
                    )
                else:
                    reasons.append(
                        f"delegated to {_names(state, [to])}: 0 here, their power goes with "
                        f"{_names(state, [holder])}'s vote{via}, who has not voted; it counts "
                        "unless they vote themselves"
                    )
        mine = sorted(delegators.get(key, []), key=lambda k: (member_name(state, k), k))
        row["delegators"] = [{"member": k, "name": member_name(state, k)} for k in mine]
        if mine:
            extra = carried[key] - own if holder == key else sum(power[k] for k in mine)
            line = f"receives delegations from {_names(state, mine)} (+{extra} power)"
            if holder != key:
                line += f", passed on with their own to {_names(state, [holder])}"
            reasons.append(line)
        row["weight"] = carried[key] if holder == key else 0
        if m.status != "active":
            reasons.append(f"is {m.status} now, so can no longer vote")
        rows.append(row)
    rows.sort(key=lambda r: (-r["weight"], -r["power"], r["name"].casefold(), r["member"]))
    return rows


# -- a member's own pages ----------------------------------------------------------------

STATUSES = ("screening", "in_review", "accepted", "rejected", "refused", "removed", "withdrawn")


def find_member(state: State, who: str) -> str:
    """The key of the member ``who`` names: a name (any case), a key id, or a unique key
    prefix (``community.naming``, as the CLI resolves them)."""
    return resolve_member(({"key": m.key, "name": m.name} for m in state.members.values()), who)


def member_items(
    state: State, member: str, *, status: str | None = None, offset: int = 0, limit: int = 50
) -> dict[str, Any]:
    """One page of ``member``'s items, newest first (optionally of one status), with how
    many they have of each status. A member may have tens of thousands: only the page is
    built."""
    counts: dict[str, int] = defaultdict(int)
    mine = []
    for c in state.contributions.values():
        if c.member == member:
            counts[c.status] += 1
            if status is None or c.status == status:
                mine.append(c)
    mine.sort(key=lambda c: (-c.batch_index, c.id))
    return {
        "member": member,
        "status": status,
        "total": len(mine),
        "counts": dict(counts),
        "offset": offset,
        "items": [c.to_json() for c in mine[offset : offset + limit]],
    }


class MemberTally(NamedTuple):
    """A member's items by status and reviews by verdict."""

    items: dict[str, int]
    verdicts: dict[str, int]


def member_tallies(state: State) -> dict[str, MemberTally]:
    """Every member's items by status and reviews by verdict, in one pass over the state
    (the hub keeps it per log size: at 100,000 entries a pass is a noticeable cost)."""
    items: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    verdicts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in state.contributions.values():
        items[c.member][c.status] += 1
    for r in state.reviews.values():
        verdicts[r.reviewer][r.verdict] += 1
    return {
        k: MemberTally(dict(items.get(k, {})), dict(verdicts.get(k, {})))
        for k in items.keys() | verdicts.keys()
    }


def member_profile(
    state: State, member: str, tallies: dict[str, MemberTally] | None = None
) -> dict[str, Any]:
    """What the log says of a member, for their public page: status, role, delegation,
    shares, items by status, reviews done. ``tallies`` is ``member_tallies(state)`` if
    the caller keeps one."""
    m = state.members.get(member)
    if m is None:
        raise NotFound(f"{member[:16]}… is not a member of this community")
    if tallies is None:
        tallies = member_tallies(state)
    tally = tallies.get(member, MemberTally({}, {}))
    counts, verdicts = tally.items, tally.verdicts
    h = state.holdings.get(member)
    total = sum(x.shares for x in state.holdings.values()) if h and h.shares else 0
    delegated_by = sorted(
        (
            {"key": k, "name": member_name(state, k)}
            for k, to in state.delegates.items()
            if to == member
        ),
        key=lambda d: (d["name"].casefold(), d["key"]),
    )
    return {
        **m.to_json(),
        "delegate_name": member_name(state, m.delegate) if m.delegate else "",
        "delegated_by": delegated_by,
        "items": dict(counts),
        "items_total": sum(counts.values()),
        "reviews": sum(verdicts.values()),
        "verdicts": dict(verdicts),
        "shares": h.shares if h else 0,
        "percent": round(100.0 * h.shares / total, 4) if h and total else 0.0,
        "earned": {p: getattr(h, p) if h else 0 for p in POOLS},
        "credits": h.credits if h else 0,
    }


def leaving_terms(state: State, member: str) -> dict[str, Any]:
    """What leaving would do to ``member``: items erased, delegations ended, shares kept
    or given up as the charter says (what ``commonweal leave`` shows before it asks)."""
    m = state.members.get(member)
    if m is None or m.status != "active":
        status = "not a member" if m is None else m.status
        raise Conflict(f"this key is {status} here: only an active member can leave")
    assert state.charter is not None
    h = state.holdings.get(member)
    return {
        "name": m.name,
        "items": len(left_items(state, member)),
        "delegates_to": state.delegates.get(member),
        "delegated_by": sorted(k for k, to in state.delegates.items() if to == member),
        "shares": h.shares if h else 0,
        "leaving_shares": state.charter.membership.leaving_shares,
    }


def member_node(state: State, member: str) -> dict[str, Any] | None:
    """A member's federated node as the log has it (None if they never enrolled), with
    its status following the member's (a member who left has their node out)."""
    node = state.nodes.get(member)
    if node is None:
        return None
    return {
        **node.to_json(),
        "labels": json.loads(node.labels),
        "consent": node.consent.split(",") if node.consent else [],
        "status": node_status(state, member),
        "dp_rounds": state.dp_rounds.get(member, 0),
        "compute_credit": state.compute_credit.get(member, 0),
    }


def federation(state: State) -> dict[str, Any]:
    """The community's federated section and its nodes, for ``GET /federated`` (the hub
    adds where its SuperLink listens and the CA that signed it)."""
    assert state.charter is not None
    cfg = state.charter.federated
    return {
        "enabled": cfg.enabled,
        "app_sha256": cfg.app_sha256,
        "charter": cfg.model_dump(mode="json"),
        "nodes": [
            {
                "member": key,
                "name": member_name(state, key),
                "status": node_status(state, key),
                "items": node.items,
                "rounds": node.rounds,
            }
            for key, node in sorted(state.nodes.items())
        ],
    }
