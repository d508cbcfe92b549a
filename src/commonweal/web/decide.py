"""Decide: the community's proposals, their actions in words, the ballot, the tally, each
member's voting power and why, proposing, and delegating.

Every write (a proposal, a vote, a sealed vote and its reveal, a delegation) is an event
the browser signs (``static/js/decide.js``) exactly as the CLI does; these routes only
read. The member-only parts (my power on a proposal, my delegation) are fragments under
``/w/decide`` fetched with a signed request.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from commonweal.api.deps import CurrentMember, HubDep, read_json
from commonweal.cards.charter_words import duration
from commonweal.cards.proposal_words import JOB_WORDS, amendment, describe_action
from commonweal.errors import CommonwealError, NotFound
from commonweal.hub import Hub
from commonweal.web.render import charter_doc, page, templates

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PER_PAGE = 20
POWER_PER_PAGE = 50

PHASE_WORDS = {
    "pending": "not open yet",
    "active": "voting",
    "revealing": "revealing secret votes",
    "timelock": "waiting out the timelock",
    "executable": "passed, to be carried out",
    "executed": "carried out",
    "cancelled": "cancelled",
    "expired": "lapsed",
}
WEIGHTING_WORDS = {
    "member": "one member, one vote",
    "shares": "votes weighed by shares held",
    "quadratic": "votes weighed by the square root of shares held (quadratic)",
}


def left(seconds: Any) -> str:
    """Time left in words, to the minute: ``2 days 3 hours``, ``5 minutes``, ``40 seconds``."""
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s} second{'s' if s != 1 else ''}"
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        n, s = divmod(s, size)
        if n:
            parts.append(f"{n} {unit}{'s' if n != 1 else ''}")
    return " ".join(parts[:2])


templates.filters["left"] = left


def _names(hub: Hub) -> dict[str, str]:
    return {k: m.name for k, m in hub.state.members.items()}


def _worded(hub: Hub, p: dict[str, Any]) -> dict[str, Any]:
    """A described proposal with its actions in words (and an amendment's changes)."""
    names = _names(hub)
    charter = charter_doc(hub)
    words = []
    for a in p["actions"]:
        changes = (
            amendment(a, charter)
            if a.get("type") == "charter.amend" and p["phase"] != "executed"
            else []
        )
        words.append(
            {
                "type": a.get("type"),
                "text": describe_action(
                    a, names=names, charter=charter if p["phase"] != "executed" else None
                ),
                "changes": changes,
            }
        )
    return {
        **p,
        "words": words,
        **_phase(p),
        "weighting_words": WEIGHTING_WORDS.get(p["weighting"], p["weighting"]),
        "jobs": _ordered_jobs(hub, p),
    }


def _ordered_jobs(hub: Hub, p: dict[str, Any]) -> list[dict[str, Any]]:
    """For an executed proposal that ordered hub jobs (``hub.run``): what each job made
    once the hub ran it (the first record of its kind logged after the execution), or
    nothing yet. Carrying out a ``hub.run`` only places the order; the hub's scheduler
    runs the job afterwards, so "carried out" alone does not say the model was trained."""
    closed = p.get("closed_index")
    if p["phase"] != "executed" or closed is None:
        return []
    st = hub.state
    made: dict[str, list[tuple[int, str, str | None]]] = {
        "train": [
            (m.entry, f"version {m.version}", f"/model/{m.version}") for m in st.models.values()
        ],
        "value": [
            (v.entry, f"valuation {v.valuation} of version {v.model}", None)
            for v in st.valuations.values()
        ],
        "close-epoch": [(e.entry, f"reward epoch {e.epoch}", None) for e in st.epochs.values()],
        "payout": [(x.entry, f"payout {x.payout}", None) for x in st.payouts.values()],
    }
    out = []
    for a in p["actions"]:
        job = a.get("type") == "hub.run" and a.get("job")
        if not job or job not in made:
            continue
        after = min((r for r in made[job] if r[0] > closed), default=None)
        entry, what, href = after if after else (None, None, None)
        out.append(
            {
                "job": job,
                "words": JOB_WORDS.get(job, job),
                "entry": entry,
                "what": what,
                "href": href,
            }
        )
    return out


def _phase(p: dict[str, Any]) -> dict[str, str]:
    """Where a proposal is, in words, and the time left for what comes next (once voting
    is over, whether it passed is the tally's)."""
    ph = p["phase"]
    secs = p.get("seconds_left")
    passed = bool(p["tally"] and p["tally"].get("passed"))
    words, time_words = PHASE_WORDS.get(ph, ph), ""
    if ph == "pending":
        time_words = f"voting opens in {left(secs)}"
    elif ph == "active":
        time_words = f"{left(secs)} left to vote"
    elif ph == "revealing":
        time_words = f"{left(secs)} left to reveal"
    elif ph in ("timelock", "executable") and not passed:
        words = "did not pass"
    elif ph == "timelock":
        time_words = f"carried out in {left(secs)}"
    elif ph == "executable":
        time_words = "the hub carries it out within seconds"
    return {"phase_words": words, "time_words": time_words}


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return max(1, int(raw)) if raw.isdigit() else 1


@router.get("/decide", response_class=HTMLResponse)
def decide(request: Request, hub: HubDep) -> HTMLResponse:
    number = _page_number(request)
    rows, total = hub.governance.page((number - 1) * PER_PAGE, PER_PAGE)
    st = hub.state
    active = sorted(
        ((m.name, k) for k, m in st.members.items() if m.status == "active"),
        key=lambda x: (x[0].casefold(), x[1]),
    )
    return page(
        request,
        hub,
        "decide.html",
        title="Decide",
        proposals=[_worded(hub, p) for p in rows],
        total=total,
        page_number=number,
        pages=max(1, -(-total // PER_PAGE)),
        active=active,
    )


def _form_context(hub: Hub) -> dict[str, Any]:
    st = hub.state
    members = sorted(st.members.values(), key=lambda m: (m.name.casefold(), m.key))
    assert st.charter is not None
    gov = st.charter.governance
    return {
        "charter": charter_doc(hub),
        "members": [
            {"key": m.key, "name": m.name, "status": m.status}
            for m in members
            if m.status in ("active", "pending")
        ],
        "versions": [v["version"] for v in hub.models.versions()],
        "apikeys": [
            {"key_hash": k.key_hash, "consumer": k.consumer}
            for k in st.apikeys.values()
            if k.status == "active"
        ],
        "jobs": JOB_WORDS,
        "treasury": st.treasury.balance,
        "secret_all": gov.secret_ballot,
        "secret_allowed": gov.secret_ballot or gov.secret_per_proposal,
        "voting": duration(gov.voting_period_seconds),
    }


@router.get("/decide/new", response_class=HTMLResponse)
def new_proposal(request: Request, hub: HubDep) -> HTMLResponse:
    ctx = _form_context(hub)
    return page(request, hub, "decide_new.html", title="Make a proposal", form=ctx)


@router.post("/decide/preview", response_class=HTMLResponse)
async def preview(request: Request, hub: HubDep) -> HTMLResponse:
    """What a would-be proposal's actions do, in words, or the rules' reason they cannot
    be proposed — before anything is signed. Reads only."""
    doc = await read_json(request)
    actions = doc.get("actions") if isinstance(doc, dict) else None
    try:
        hub.governance.check_actions(actions)
        error = ""
    except CommonwealError as exc:
        error = exc.message
    words = []
    if not error:
        charter = charter_doc(hub)
        names = _names(hub)
        for a in actions or []:
            words.append(
                {
                    "text": describe_action(a, names=names, charter=charter),
                    "changes": amendment(a, charter) if a.get("type") == "charter.amend" else [],
                }
            )
    html = templates.get_template("decide_preview.html").render(error=error, words=words)
    return HTMLResponse(html)


@router.get("/decide/{number}", response_class=HTMLResponse)
def proposal_page(request: Request, hub: HubDep, number: int) -> HTMLResponse:
    p = _worded(hub, hub.governance.proposal(number))
    rows = hub.governance.power(number)
    at = _page_number(request)
    shown = rows[(at - 1) * POWER_PER_PAGE : at * POWER_PER_PAGE]
    st = hub.state
    assert st.charter is not None
    data = {
        "proposal": number,
        "choice": p["choice"],
        "options": p["options"],
        "secret": p["secret"],
        "phase": p["phase"],
        "ends": p["ends"],
        "reveal_ends": p["reveal_ends"],
        "origin": hub.origin,
    }
    return page(
        request,
        hub,
        "decide_proposal.html",
        title=f"Proposal {number}",
        p=p,
        power=shown,
        power_total=len(rows),
        eligible=sum(1 for r in rows if r["eligible"]),
        page_number=at,
        pages=max(1, -(-len(rows) // POWER_PER_PAGE)),
        data=data,
        change_votes=st.charter.governance.change_votes,
    )


# -- member-only fragments ---------------------------------------------------------------

fragments = APIRouter(prefix="/w/decide", include_in_schema=False)


@fragments.get("/delegation", response_class=HTMLResponse)
def my_delegation(hub: HubDep, member: CurrentMember) -> HTMLResponse:
    """Whom I delegate my vote to now, and who delegates to me."""
    st = hub.state
    mine = st.delegates.get(member)
    to_me = sorted(
        (st.members[k].name for k, to in st.delegates.items() if to == member and k in st.members),
        key=str.casefold,
    )
    html = templates.get_template("decide_delegation.html").render(
        delegate=st.members[mine] if mine and mine in st.members else None,
        to_me=to_me,
        me=member,
    )
    return HTMLResponse(html)


@fragments.get("/{number}/me", response_class=HTMLResponse)
def my_power(hub: HubDep, member: CurrentMember, number: int) -> HTMLResponse:
    """My voting power on proposal ``number`` and why; whether I voted or sealed a vote."""
    st = hub.state
    if number not in st.proposals:
        raise NotFound(f"there is no proposal {number}")
    row = next((r for r in hub.governance.power(number) if r["member"] == member), None)
    html = templates.get_template("decide_me.html").render(
        row=row,
        voted=member in st.ballots[number],
        committed=member in st.commits[number],
    )
    return HTMLResponse(html)
