"""The charter in plain words: one sentence per setting, saying what it means for members.

``SAY`` maps each setting's dotted path to a sentence about its value — a format string
(``{v}`` the value, ``{d}`` a duration in words, ``{pct}`` the value as a percentage) or a
function of the value. ``charter show`` and the web app's home page show the sentences for a
community's charter (``charter_sections``); ``charter template`` prints them, for the
default values, as the comments of a TOML file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel

from commonweal.community.charter import Charter, validate_charter

__all__ = [
    "SAY",
    "SECTIONS",
    "charter_diff",
    "charter_sections",
    "duration",
    "flat",
    "sentence",
    "settings",
]

Say = str | Callable[[Any], str]


def duration(seconds: int) -> str:
    """``seconds`` in words: 3 days, 1 hour, 90 seconds."""
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _words(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(map(str, v)) if v else "none"
    return str(v)


def _yes(yes: str, no: str) -> Callable[[Any], str]:
    return lambda v: yes if v else no


def _every(what: str) -> Callable[[Any], str]:
    return lambda v: f"The hub {what} every {duration(v)}." if v else f"The hub never {what}."


_AGGREGATION = {
    "fedavg": "averaging them, weighted by examples (FedAvg)",
    "trimmed-mean": "a trimmed mean, coordinate by coordinate",
    "median": "their coordinate-wise median",
    "krum": "Krum (the update closest to its neighbours)",
    "multi-krum": "Multi-Krum (averaging the updates closest to their neighbours)",
    "bulyan": "Bulyan (Krum, then a trimmed mean)",
}

_JOIN = {
    "open": "Anyone with a key may join.",
    "invite": "Joining needs an invite token from a member.",
    "approval": "A join waits until an active member approves it.",
}
_PERSONAL = {
    "redact": "Personal data found in an item (emails, phone and card numbers, IBANs, IPs) "
    "is redacted before it is stored.",
    "refuse": "An item holding personal data is refused.",
    "flag": "An item holding personal data is kept but flagged for reviewers.",
}
_CREDIT = {
    "original": "A copy's value goes to whoever gave the original (the item logged first).",
    "nobody": "A copy's value is credited to no one.",
    "copier": "A copy's value goes to the copier (the rule of version-1 charters).",
}
_REVIEW_WEIGHT = {
    "informative": "The review pool pays each reviewer for the information in their "
    "verdicts (agreement with consensus beyond chance): accepting everything earns nothing.",
    "matched": "The review pool pays each reviewer per verdict that matched consensus.",
}
_DONE = {"refuse": "refused", "flag": "kept but flagged for reviewers"}
_WEIGHTING = {
    "member": "one member, one vote",
    "shares": "votes weighed by shares held",
    "quadratic": "votes weighed by the square root of shares held",
}

SAY: dict[str, Say] = {
    "v": "Charter format version {v} (versions 1 and 2 keep the rules of communities "
    "founded before parts 7 and 9).",
    "name": "The community is called {v}.",
    "description": lambda v: f"About it: {v}" if v else "It has no description.",
    "join_policy": lambda v: _JOIN[v],
    "licenses": "Contributions may carry these licenses: {v}.",
    "consent_required": "Every contribution must consent to: {v}.",
    "limits.max_item_bytes": "One item may be at most {v} bytes.",
    "limits.max_batch_items": "One upload may hold at most {v} items.",
    "limits.max_items_per_member_per_day": "A member may give at most {v} items a day.",
    "limits.events_per_member_per_minute": "A member may add at most {v} events to the log "
    "a minute (more wait and retry).",
    "limits.requests_per_ip_per_minute": "One address may make at most {v} requests a minute "
    "to each of the hub's servers (more wait and retry).",
    "privacy.personal_data": lambda v: _PERSONAL[v],
    "privacy.phone_regions": "Phone numbers are recognised in the national formats of: {v}.",
    "duplicates.exact": lambda v: f"An exact copy of an item the community holds is {_DONE[v]}.",
    "duplicates.near": lambda v: f"A near copy is {_DONE[v]}.",
    "duplicates.near_threshold_pct": "Texts at least {v}% alike count as near copies.",
    "duplicates.image_max_distance": "Images within {v} bits of perceptual hash count as "
    "near copies.",
    "duplicates.copy_credit": lambda v: _CREDIT[v],
    "review.reviews_needed": "An item needs {v} reviews by other members.",
    "review.newcomer_reviews_needed": "A newcomer's item needs {v} reviews.",
    "review.newcomer_until_accepted": "A member is a newcomer until {v} of their items are "
    "accepted.",
    "review.consensus": "Reviews are combined by {v} (dawid-skene weighs each reviewer by "
    "their estimated reliability).",
    "review.accept_threshold_pct": "An item is accepted when consensus gives it at least {v}%.",
    "review.rereview_flags": "These flags send an accepted item back to review: {v}.",
    "review.rereviews_needed": "A re-reviewed item needs {v} more reviews.",
    "training.trainer": "The model is trained with the {v} trainer.",
    "training.shards": "Training splits the data into at most {v} shards, so a withdrawal "
    "retrains only its shard.",
    "training.min_rows_per_shard": "Each shard holds at least {v} items (a small community "
    "trains one model).",
    "training.min_rows_per_class_per_shard": "And at least {v} items of each label, on average.",
    "training.behind_unsharded_pct": "The sharded model may fall at most {v} points behind "
    "one model trained on all the same data.",
    "training.when_behind": lambda v: (
        "Falling further behind " + ("only warns." if v == "warn" else "refuses the new version.")
    ),
    "training.seed": "Training draws its randomness from seed {v}, so anyone can redo it.",
    "training.evaluation.holdout_pct": "{v}% of accepted items are held out to evaluate "
    "every version, never trained on.",
    "training.evaluation.min_items": "Training waits until the evaluation set has {v} items.",
    "training.evaluation.min_per_class": "Each label gets at least {v} evaluation items.",
    "serving.apikeys": "API keys for the model's consumers may be issued by: {v}.",
    "serving.price_per_call": lambda v: (
        f"Each prediction costs {v} credit{'' if v == 1 else 's'}, paid into the treasury."
    ),
    "serving.founder_revokes_keys": _yes(
        "The founder may revoke any API key.",
        "Only a key's issuer (or a vote) may revoke an API key.",
    ),
    "serving.quota_per_key_per_day": "One API key may make at most {v} calls a day.",
    "serving.revenue_period_seconds": "Usage is billed into the treasury every {d}.",
    "valuation.method": "Each contribution is valued by {v} (auto: knn-shapley for "
    "classification, tmc-shapley for regression).",
    "valuation.k": "KNN-Shapley looks at {v} neighbours.",
    "valuation.permutations": "TMC-Shapley samples {v} orders of members.",
    "valuation.truncation_pct": "TMC-Shapley stops an order within {v}% of the full score.",
    "rewards.shares_per_epoch": "Each reward epoch mints up to {v} ownership shares.",
    "rewards.data_pct": "{v}% of them go to contributors, by the value of their data.",
    "rewards.review_pct": "{v}% go to reviewers.",
    "rewards.compute_pct": "{v}% go to members who provide training compute.",
    "rewards.transferable": _yes(
        "Members may transfer shares to each other.", "Shares cannot be transferred."
    ),
    "rewards.review_weight": lambda v: _REVIEW_WEIGHT[v],
    "rewards.reward_once": _yes(
        "An epoch pays only value not rewarded before: the same work is never paid twice.",
        "Every epoch pays all current value again.",
    ),
    "membership.leaving_shares": lambda v: (
        "A member who leaves "
        + (
            "keeps their shares (and is still paid out)."
            if v == "keep"
            else "gives up their shares."
        )
    ),
    "membership.invites_per_member": lambda v: (
        f"A member may create at most {v} invite{'' if v == 1 else 's'} per invite period."
        if v
        else "A member may create any number of invites."
    ),
    "membership.invite_period_seconds": "Invites are counted over {d}.",
    "membership.approvals_required": lambda v: (
        f"A newcomer needs the approval of {v} member{'' if v == 1 else 's'} (or of every "
        "active member, while there are fewer) before they may contribute, review or vote."
        if v
        else "A newcomer needs no approval beyond the join policy."
    ),
    "events.max_clock_skew_seconds": lambda v: (
        f"An event's own time may be at most {duration(v)} from the hub's clock."
        if v
        else "An event's own time is not checked against the hub's clock."
    ),
    "schedule.train_after_items": lambda v: (
        f"The hub trains a new version once {v} items "
        "were accepted or withdrawn since the last one."
        if v
        else "The hub does not train on a count of new items."
    ),
    "schedule.train_every_seconds": _every("trains (when anything changed)"),
    "schedule.value_new_versions": _yes(
        "The hub values each new version.", "The hub does not value new versions on its own."
    ),
    "schedule.close_epoch_after_valuation": _yes(
        "A reward epoch closes after each valuation of new work.",
        "Reward epochs close only when someone closes them.",
    ),
    "schedule.payout_every_seconds": _every("pays the treasury out to shareholders"),
    "schedule.scan_every_seconds": _every("scans the pool for suspected label errors"),
    "federated.enabled": _yes(
        "Members may train the model on data that never leaves their machines (Flower).",
        "Members do not train on their own machines: all data is shared with the hub.",
    ),
    "federated.rounds": "A federated training run has {v} rounds.",
    "federated.clients_per_round": lambda v: (
        f"Each round asks {v} enrolled nodes." if v else "Each round asks every node online."
    ),
    "federated.min_clients": "A round needs replies from at least {v} nodes.",
    "federated.aggregation": lambda v: f"Updates are combined by {_AGGREGATION[v]}.",
    "federated.trim_pct": "Trimmed mean cuts {v}% of the updates at each end.",
    "federated.malicious": "Krum and Bulyan tolerate {v} dishonest nodes.",
    "federated.outlier_factor": lambda v: (
        f"An update more than {v} times as far from the median update as is usual is "
        "rejected, earns nothing that round, and the log says why."
        if v
        else "No update is rejected for its distance from the others."
    ),
    "federated.local_epochs": "Each node takes {v} training steps on its data per round.",
    "federated.learning_rate": "Nodes train with learning rate {v}.",
    "federated.l2": "Nodes train with L2 penalty {v}.",
    "federated.dp": lambda v: {
        "off": "No differential-privacy noise is added to the updates.",
        "server-fixed": "Updates are clipped and the hub adds Gaussian noise to their sum "
        "(differential privacy).",
        "client-fixed": "Each node clips its update and adds Gaussian noise before sending "
        "it (differential privacy).",
    }[v],
    "federated.noise_multiplier": "The noise is {v} times the clipping norm.",
    "federated.clipping_norm": "Updates are clipped to norm {v}.",
    "federated.delta": "Privacy loss is counted at delta {v}.",
    "federated.epsilon_budget": lambda v: (
        f"A member's node stops taking part once its privacy loss would pass epsilon {v}."
        if v not in ("0", "0.0")
        else "There is no cap on a member's privacy loss (each round's is logged)."
    ),
    "federated.valuation": "Each round values each accepted node by its Shapley value "
    "over the round's coalitions.",
    "federated.max_exact_players": "Shapley values are exact for up to {v} nodes a round.",
    "federated.permutations": "Beyond that, {v} seeded orders of the nodes are sampled.",
    "federated.local_holdout_pct": "Nodes keep {v}% of their data aside to score the model.",
    "federated.start": lambda v: (
        "A federated run starts from the latest centrally trained version."
        if v == "latest"
        else "A federated run starts from zeros."
    ),
    "federated.app_sha256": lambda v: (
        f"Nodes run only the Flower app whose SHA-256 is {v}."
        if v
        else "No Flower app is named yet: nodes run nothing."
    ),
    "governance.proposers": "Proposals may be made by: {v}.",
    "governance.proposal_threshold_shares": lambda v: (
        f"A proposer needs at least {v} shares." if v else "A proposer needs no shares."
    ),
    "governance.voting_delay_seconds": lambda v: (
        f"Voting opens {duration(v)} after a proposal is made."
        if v
        else "Voting opens as soon as a proposal is made."
    ),
    "governance.voting_period_seconds": "Voting lasts {d}.",
    "governance.timelock_seconds": "A passed proposal is carried out {d} after voting ends.",
    "governance.expiry_seconds": "A passed proposal not carried out within {d} lapses.",
    "governance.quorum_pct": "A vote counts only if {v}% of the voting power takes part.",
    "governance.quorum_counts": "These votes count toward the quorum: {v}.",
    "governance.change_votes": _yes(
        "A member may change their vote; the last one counts.", "A vote cannot be changed."
    ),
    "governance.secret_ballot": _yes(
        "Ballots are secret: votes are sealed, then revealed after voting.",
        "Ballots are open: everyone sees the votes as they come.",
    ),
    "governance.reveal_period_seconds": "Secret votes are revealed within {d} after voting.",
    "governance.probation_seconds": lambda v: (
        f"A member who joined less than {duration(v)} before voting starts votes with "
        "weight 0 (their vote is shown, not counted)."
        if v
        else "New members vote with full weight at once."
    ),
    "governance.default.weighting": lambda v: f"By default, {_WEIGHTING[v]}.",
    "governance.default.approval": "By default, a proposal passes with a {v} of For among "
    "For and Against (amending the charter needs at least two-thirds).",
}

SECTIONS: dict[str, str] = {
    "": "The community",
    "task": "What the model learns",
    "limits": "Limits",
    "privacy": "Personal data",
    "duplicates": "Copies",
    "review": "Peer review",
    "training": "Training",
    "training.evaluation": "Evaluation",
    "serving": "Serving the model",
    "valuation": "Valuing contributions",
    "rewards": "Rewards and ownership",
    "membership": "Joining and leaving",
    "events": "Event times",
    "schedule": "What the hub does on its own",
    "governance": "Votes",
    "governance.default": "Voting rule",
    "federated": "Federated members (data that stays home)",
}


def sentence(path: str, value: Any) -> str:
    """What ``value`` at ``path`` means, in a sentence."""
    say = SAY.get(path)
    if say is None:
        return f"{path} = {_words(value)}."
    if callable(say):
        return say(value)
    d = duration(value) if isinstance(value, int) and not isinstance(value, bool) else ""
    return say.format(v=_words(value), d=d)


# -- a whole charter, read -------------------------------------------------------------


def settings(model: type[BaseModel], doc: dict[str, Any], prefix: str = "") -> Iterator[Any]:
    """``("section", path)`` when a section starts and ``("field", path, value)`` for each
    setting, in the charter's own order (task and voting rules come whole)."""
    for name, field in model.model_fields.items():
        path = prefix + name
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield ("section", path)
            yield from settings(ann, doc.get(name) or {}, path + ".")
        else:
            yield ("field", path, doc.get(name))


def flat(doc: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(doc, dict):
        return {prefix.rstrip("."): doc}
    found: dict[str, Any] = {}
    for k, v in doc.items():
        found |= flat(v, f"{prefix}{k}.")
    return found


def charter_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What ``new`` changes in ``old``, one line per setting: ``path: old → new`` (both
    read with the charter's defaults, so an amendment that names only some settings
    changes only those)."""
    before = flat(validate_charter(old, where="current charter").to_full_json())
    after = flat(validate_charter(new, where="amended charter").to_full_json())
    lines = []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a != b:
            shown_a = "(unset)" if path not in before else json.dumps(a, ensure_ascii=False)
            shown_b = "(unset)" if path not in after else json.dumps(b, ensure_ascii=False)
            lines.append(f"{path}: {shown_a} → {shown_b}")
    return lines


def _task_lines(task: dict[str, Any] | None) -> list[str]:
    if not task:
        return ["The community has no model task: it takes no data."]
    lines = [f"The model does {task['kind']}."]
    if task.get("labels"):
        lines.append(f"Items are labelled one of: {', '.join(task['labels'])}.")
    if task.get("columns"):
        cols = ", ".join(f"{c['name']} ({c['type']})" for c in task["columns"])
        lines.append(f"Each row has columns {cols}; the column to predict is {task['target']}.")
    if task["kind"] == "image-classification":
        lines.append(f"Images are at most {task['image_width']}x{task['image_height']} pixels.")
    return lines


def _rule_lines(rules: dict[str, Any]) -> list[str]:
    if not rules:
        return ["Every kind of proposal follows the default voting rule."]
    return [
        f"Proposals to {action}: {r['weighting']} weighting, {r['approval']} to pass."
        for action, r in sorted(rules.items())
    ]


def charter_sections(doc: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The charter ``doc`` (read with its defaults) as headed paragraphs: ``[(heading,
    [sentence, ...]), ...]``, one sentence per setting, in the charter's own order."""
    full = validate_charter(doc).to_full_json()
    top: tuple[str, list[str]] = (SECTIONS[""], [])
    sections = [top, (SECTIONS["task"], _task_lines(full["task"]))]
    for step in settings(Charter, full):
        if step[0] == "section":
            sections.append((SECTIONS.get(step[1], step[1]), []))
        elif step[1] == "governance.rules":
            sections[-1][1].extend(_rule_lines(step[2]))
        elif step[1] != "task":
            (sections[-1] if "." in step[1] else top)[1].append(sentence(step[1], step[2]))
    return sections
