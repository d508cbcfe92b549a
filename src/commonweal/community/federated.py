"""The rules for federated members: nodes that train the community's model on data that
never leaves their owners' machines (Flower SuperNodes), and the rounds the hub runs.

The log holds what may be public: a member's node key, item and per-label counts and a
Merkle root over salted commitments of their items (``federated.enroll``); and for every
round, who took part, the hash of each update as the node sent it, what robust aggregation
rejected and why, the aggregate's hash, the metrics, and each accepted member's Shapley
value that round, with the coalition utilities it was computed from (``federated.round``).
The rules recompute the values and each member's privacy loss, so a verifier catches a hub
that credits anyone more than its own logged utilities give.

A federated model version (``model.version`` with a ``federated`` field, checked by
``check_version``) names the run's rounds; its valuation (``valuation_body``) sums each
member's per-round values. Accepted rounds since the last epoch are the compute pool's
weights (``community.ownership``).

Event kinds:

- ``federated.enroll`` — by an active member: their node key and what their data holds.
  Enrolling again replaces the enrollment (it may keep the key); a key serves one member's
  enrollment only, ever (Flower never registers an unregistered key again).
- ``federated.withdraw`` — by the member: their node is out of later rounds.
- ``federated.round`` — by the hub: one round of a Flower run.
"""

from __future__ import annotations

import base64
import binascii
import re
from fractions import Fraction
from typing import Any

from commonweal.community.charter import FEDERATED_TASKS, Charter
from commonweal.community.contributions import item_terms
from commonweal.community.federated_math import (
    epsilon_spent,
    format_value,
    needed_coalitions,
    round_shapley,
)
from commonweal.community.kinds import Changes, Touched, fields, need_active, need_hub
from commonweal.community.state import FlRound, FlVersion, ModelVersion, Node, State
from commonweal.errors import Conflict, Forbidden, InvalidInput
from commonweal.ledger.canonical import canonical_str
from commonweal.ledger.event import Leaf

__all__ = [
    "KINDS",
    "TRAINER",
    "central_version",
    "check_version",
    "dp_body",
    "node_status",
    "recipe",
    "strategy_body",
    "valuation_body",
    "valuation_params",
    "version_participants",
]

TRAINER = "federated-softmax"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RUN = re.compile(r"[0-9]{1,20}")
_DECIMAL = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,30})?")
_NONNEG = re.compile(r"[0-9]{1,30}(\.[0-9]{1,30})?")
_KEY_TYPE = b"ecdsa-sha2-nistp384"


def _charter(state: State, kind: str) -> Charter:
    """The charter, once it enables federation for a task that allows it."""
    charter = state.charter
    assert charter is not None
    kinds = charter.task.kind if charter.task is not None else None
    if not charter.federated.enabled or kinds not in FEDERATED_TASKS:
        raise Forbidden(
            f"{kind}: this community's charter does not enable federated members "
            "(federated.enabled); a vote to amend the charter can"
        )
    return charter


def node_status(state: State, member: str) -> str:
    """Where ``member``'s node stands: ``enrolled`` (may take part), ``withdrawn``, the
    member's own status when they are no longer active (``left``, ``removed``,
    ``pending``: the node follows its member), or ``none``."""
    node = state.nodes.get(member)
    if node is None:
        return "none"
    m = state.members.get(member)
    if node.status == "enrolled" and m is not None and m.status != "active":
        return m.status
    return node.status


# -- federated.enroll / federated.withdraw ------------------------------------------------


def _ssh_strings(blob: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(blob):
        if pos + 4 > len(blob):
            raise ValueError("truncated")
        n = int.from_bytes(blob[pos : pos + 4], "big")
        out.append(blob[pos + 4 : pos + 4 + n])
        if pos + 4 + n > len(blob):
            raise ValueError("truncated")
        pos += 4 + n
    return out


def _check_node_key(key: str, kind: str) -> None:
    """An OpenSSH ECDSA P-384 public key, without a comment: what Flower's SuperNode
    authentication registers. (Whether the point is on the curve, Flower checks when the
    hub registers it.)"""
    parts = key.split(" ")
    try:
        if len(parts) != 2 or parts[0] != _KEY_TYPE.decode():
            raise ValueError("type")
        blob = base64.b64decode(parts[1], validate=True)
        if base64.b64encode(blob).decode() != parts[1]:
            raise ValueError("not canonical")
        strings = _ssh_strings(blob)
        if strings[:2] != [_KEY_TYPE, b"nistp384"] or len(strings) != 3:
            raise ValueError("fields")
        if len(strings[2]) != 97 or strings[2][0] != 4:
            raise ValueError("point")
    except (ValueError, binascii.Error):
        raise InvalidInput(
            f"{kind}: node_key {key[:40]!r}… is not an OpenSSH ecdsa-sha2-nistp384 public "
            "key without a comment; make the node key with `commonweal node enroll`"
        ) from None


def _check_labels(charter: Charter, body: dict[str, Any], kind: str) -> str:
    assert charter.task is not None
    labels, items = body["labels"], body["items"]
    if not 1 <= items <= 10**9:
        raise InvalidInput(f"{kind}: items must be from 1 to 10^9, not {items}")
    unknown = sorted(set(labels) - set(charter.task.labels))
    if unknown:
        raise InvalidInput(
            f"{kind}: label(s) {unknown[:5]} are not the charter's ({charter.task.labels}); "
            "relabel or leave out those items"
        )
    if any(type(n) is not int or n < 1 for n in labels.values()):
        raise InvalidInput(f"{kind}: each label's count must be a positive integer")
    if sum(labels.values()) != items:
        raise InvalidInput(
            f"{kind}: the label counts add up to {sum(labels.values())}, not items {items}"
        )
    return canonical_str(labels)


def _enroll(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(
        leaf,
        {
            "node_key": str,
            "items": int,
            "labels": dict,
            "root": str,
            "license": str,
            "consent": list,
        },
    )
    need_active(state, leaf.actor, kind)
    charter = _charter(state, kind)
    _check_node_key(body["node_key"], kind)
    labels = _check_labels(charter, body, kind)
    if not _HEX64.fullmatch(body["root"]):
        raise InvalidInput(f"{kind}: root must be 64 lowercase hex digits (a Merkle root)")
    lic, consent = item_terms(body, kind, charter)
    owner = state.node_keys.get(body["node_key"])
    mine = state.nodes.get(leaf.actor)
    keeps = mine is not None and mine.status == "enrolled" and mine.node_key == body["node_key"]
    if owner is not None and not keeps:
        raise Conflict(
            f"{kind}: that node key was already enrolled (entry by "
            f"{state.members[owner].name!r}); a node key serves one enrollment: make a new one"
        )
    node = Node(
        leaf.actor,
        body["node_key"],
        body["items"],
        labels,
        body["root"],
        lic,
        consent,
        "enrolled",
        leaf.index,
        leaf.index,
        mine.rounds if mine is not None else 0,
    )
    return {
        "nodes": state.nodes.set(leaf.actor, node),
        "node_keys": state.node_keys.set(body["node_key"], leaf.actor),
    }


def _withdraw(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    fields(leaf, {})
    need_active(state, leaf.actor, kind)
    node = state.nodes.get(leaf.actor)
    if node is None or node.status != "enrolled":
        raise Conflict(f"{kind}: you have no enrolled node to withdraw")
    gone = node._replace(status="withdrawn", updated_index=leaf.index)
    return {"nodes": state.nodes.set(leaf.actor, gone)}


# -- federated.round ----------------------------------------------------------------------


def strategy_body(charter: Charter) -> dict[str, Any]:
    """The ``strategy`` a round logs: the charter's aggregation and the parameters it uses
    (the rejection rule's ``outlier_factor`` always; ``trim_pct`` or ``malicious`` where
    the aggregation takes one)."""
    cfg = charter.federated
    params: dict[str, Any] = {"outlier_factor": cfg.outlier_factor}
    if cfg.aggregation == "trimmed-mean":
        params["trim_pct"] = cfg.trim_pct
    elif cfg.aggregation in ("krum", "multi-krum", "bulyan"):
        params["malicious"] = cfg.malicious
    return {"aggregation": cfg.aggregation, "params": params}


def dp_body(charter: Charter) -> dict[str, Any] | None:
    """The ``dp`` a round logs, or None when the charter's differential privacy is off."""
    cfg = charter.federated
    if cfg.dp == "off":
        return None
    return {
        "mode": cfg.dp,
        "noise_multiplier": cfg.noise_multiplier,
        "clipping_norm": cfg.clipping_norm,
        "delta": cfg.delta,
    }


def recipe(charter: Charter) -> dict[str, Any]:
    """The ``params`` of a federated ``model.version``: how its rounds trained."""
    cfg = charter.federated
    return {
        **strategy_body(charter),
        "local_epochs": cfg.local_epochs,
        "learning_rate": cfg.learning_rate,
        "l2": cfg.l2,
        "dp": dp_body(charter) or {"mode": "off"},
    }


def valuation_params(charter: Charter) -> dict[str, Any]:
    """How rounds are valued: exact Shapley up to ``max_exact_players``, else seeded
    permutation sampling (the seed is the charter's training seed)."""
    cfg = charter.federated
    return {
        "max_exact_players": cfg.max_exact_players,
        "permutations": cfg.permutations,
        "seed": charter.training.seed,
    }


_ROUND: dict[str, type] = {
    "run": str,
    "round": int,
    "start": int,
    "strategy": dict,
    "participants": list,
    "aggregate": str,
    "metrics": dict,
    "node_metrics": dict,
    "valuation": dict,
}
_PARTICIPANT = {"member", "node", "update", "examples", "status", "distance"}


def _check_run(state: State, body: dict[str, Any], charter: Charter, kind: str) -> None:
    """The round is the next of its run (or round 1 of a new one), from the run's start."""
    run, rnd, start = body["run"], body["round"], body["start"]
    if not _RUN.fullmatch(run):
        raise InvalidInput(f"{kind}: run {run!r} must be Flower's run id (digits)")
    last = state.fl_runs.get(run, 0)
    if rnd != last + 1:
        raise Conflict(
            f"{kind}: run {run}'s next round is {last + 1}, not {rnd}"
            + ("" if last else " (a new run starts at round 1)")
        )
    if rnd > charter.federated.rounds:
        raise Conflict(f"{kind}: a run has {charter.federated.rounds} rounds (federated.rounds)")
    if any(v.run == run for v in state.fl_versions.values()):
        raise Conflict(f"{kind}: run {run} already made a model version; start a new run")
    if last:
        first = next(r for r in state.fl_rounds.values() if r.run == run and r.round == 1)
        if start != first.start:
            raise InvalidInput(f"{kind}: run {run} started from version {first.start}, not {start}")
    elif start != 0 and start not in state.models:
        raise InvalidInput(f"{kind}: start version {start} does not exist (0 starts from zeros)")


def _check_participant(
    state: State, p: Any, where: str, last: str, dp: bool
) -> tuple[str, bool, Any]:
    """One participant row: an enrolled node of an active member, its update's hash and
    example count, its status, and (under DP) the epsilon it claims."""
    if not isinstance(p, dict):
        raise InvalidInput(f"{where} must be an object")
    want = _PARTICIPANT | ({"epsilon"} if dp else set())
    if p.get("status") == "rejected":
        want = want | {"reason"}
    if set(p) != want:
        raise InvalidInput(f"{where} must have exactly {sorted(want)}")
    member = p["member"]
    if not isinstance(member, str) or member <= last:
        raise InvalidInput(f"{where}: participants must be sorted by member key and distinct")
    status = node_status(state, member)
    if status != "enrolled":
        name = state.members[member].name if member in state.members else member[:16] + "…"
        raise Forbidden(
            f"{where}: {name!r} has no enrolled node (theirs is {status}); only enrolled "
            "active members take part"
        )
    node = state.nodes[member]
    if not isinstance(p["node"], str) or not _RUN.fullmatch(p["node"]):
        raise InvalidInput(f"{where}: node must be Flower's node id (digits)")
    if not isinstance(p["update"], str) or not _HEX64.fullmatch(p["update"]):
        raise InvalidInput(f"{where}: update must be the SHA-256 of the node's update")
    if type(p["examples"]) is not int or not 1 <= p["examples"] <= node.items:
        raise InvalidInput(f"{where}: examples must be 1 to the node's {node.items} items")
    if p["status"] not in ("accepted", "rejected"):
        raise InvalidInput(f"{where}: status must be accepted or rejected")
    if p["status"] == "rejected" and not (isinstance(p["reason"], str) and len(p["reason"]) > 0):
        raise InvalidInput(f"{where}: a rejected participant's reason says why")
    if not isinstance(p["distance"], str) or not _NONNEG.fullmatch(p["distance"]):
        raise InvalidInput(f"{where}: distance must be a non-negative decimal string")
    return member, p["status"] == "accepted", p.get("epsilon")


def _check_epsilons(
    state: State, charter: Charter, claimed: dict[str, Any], kind: str
) -> dict[str, int]:
    """Each participant's privacy loss after this round is the rules' (every participant
    spent it: the node trained and sent its update, whatever aggregation did with it), and
    within the charter's budget. Returns the members' new DP round counts."""
    cfg = charter.federated
    budget = Fraction(cfg.epsilon_budget)
    counts: dict[str, int] = {}
    for member, got in claimed.items():
        n = state.dp_rounds.get(member, 0) + 1
        want = epsilon_spent(n, cfg.noise_multiplier, cfg.delta)
        if got != want:
            raise InvalidInput(
                f"{kind}: {state.members[member].name!r}'s epsilon after {n} DP round(s) is "
                f"{want}, not {got!r}"
            )
        if budget and Fraction(want) > budget:
            raise Forbidden(
                f"{kind}: {state.members[member].name!r} would spend epsilon {want}, past the "
                f"charter's budget {cfg.epsilon_budget} (federated.epsilon_budget); leave "
                "them out of the round"
            )
        counts[member] = n
    return counts


def _check_metrics(body: dict[str, Any], members: set[str], kind: str) -> None:
    for name, value in body["metrics"].items():
        if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
            raise InvalidInput(f"{kind}: metric {name!r} must be a decimal string")
    for member, m in body["node_metrics"].items():
        if member not in members:
            raise InvalidInput(f"{kind}: node_metrics names {member[:16]}…, not a participant")
        if not isinstance(m, dict) or type(m.get("examples")) is not int or m["examples"] < 0:
            raise InvalidInput(f"{kind}: node_metrics of {member[:16]}… needs examples (int)")
        for name, value in m.items():
            if name != "examples" and not (isinstance(value, str) and _DECIMAL.fullmatch(value)):
                raise InvalidInput(f"{kind}: node metric {name!r} must be a decimal string")


def _check_valuation(
    body: dict[str, Any], charter: Charter, accepted: list[str], kind: str
) -> dict[str, str]:
    """The round's valuation: the accepted players, the utilities the method needs, and
    the values ``round_shapley`` recomputes from them, exactly."""
    v = body["valuation"]
    keys = {"method", "players", "utilities", "permutations", "seed", "values"}
    if set(v) != keys:
        raise InvalidInput(f"{kind}: valuation must have exactly {sorted(keys)}")
    params = valuation_params(charter)
    if v["method"] != charter.federated.valuation:
        raise InvalidInput(
            f"{kind}: the charter's round valuation is {charter.federated.valuation!r}"
        )
    if v["players"] != accepted:
        raise InvalidInput(
            f"{kind}: valuation players must be exactly the accepted participants, sorted"
        )
    exact = len(accepted) <= params["max_exact_players"]
    want_perms = 0 if exact else params["permutations"]
    if v["permutations"] != want_perms or v["seed"] != params["seed"]:
        raise InvalidInput(
            f"{kind}: with {len(accepted)} players the charter asks for permutations "
            f"{want_perms} and seed {params['seed']}"
        )
    utilities = v["utilities"]
    masks = needed_coalitions(len(accepted), want_perms, params["seed"])
    if not isinstance(utilities, dict) or set(utilities) != {str(m) for m in masks}:
        raise InvalidInput(
            f"{kind}: utilities must give exactly the {len(masks)} coalitions the method "
            "visits (federated_math.needed_coalitions)"
        )
    want = round_shapley(accepted, utilities, want_perms, params["seed"])
    if v["values"] != want:
        raise InvalidInput(f"{kind}: the values are not the Shapley values of the utilities")
    return want


def _check_central(state: State, body: dict[str, Any], kind: str) -> None:
    """The hub's own share of a round that started from a central version: an update on
    the central items that version trained on (so central and federated members make one
    model), weighted by their count. It is no member's: no credit, no value."""
    c = body["central"]
    start = body["start"]
    if start == 0:
        raise InvalidInput(f"{kind}: a run from zeros has no central items to train on")
    want = state.models[start].items
    if (
        not isinstance(c, dict)
        or set(c) != {"examples", "update"}
        or c["examples"] != want
        or not isinstance(c["update"], str)
        or not _HEX64.fullmatch(c["update"])
    ):
        raise InvalidInput(
            f"{kind}: central must be {{examples, update}}: the {want} items version {start} "
            "trained on, and the SHA-256 of the hub's update on them"
        )


def _round(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    charter = state.charter
    assert charter is not None
    dp = dp_body(charter)
    optional: dict[str, type] = {"central": dict}
    if dp:
        optional["dp"] = dict
    body = fields(leaf, _ROUND, optional)
    need_hub(state, leaf)
    charter = _charter(state, kind)
    _check_run(state, body, charter, kind)
    if "central" in body:
        _check_central(state, body, kind)
    if body["strategy"] != strategy_body(charter):
        raise InvalidInput(f"{kind}: the strategy must be the charter's, {strategy_body(charter)}")
    if dp is not None and body.get("dp") != dp:
        raise InvalidInput(f"{kind}: dp must be the charter's, {dp}")
    if not _HEX64.fullmatch(body["aggregate"]):
        raise InvalidInput(f"{kind}: aggregate must be the SHA-256 of the aggregated W, b")
    cfg = charter.federated
    rows = body["participants"]
    if not cfg.min_clients <= len(rows) <= (cfg.clients_per_round or len(rows)):
        raise Conflict(
            f"{kind}: a round has {cfg.min_clients} to "
            f"{cfg.clients_per_round or 'any number of'} participants, not {len(rows)}"
        )
    accepted: list[str] = []
    claimed: dict[str, Any] = {}
    last = ""
    for n, p in enumerate(rows):
        last, ok, eps = _check_participant(state, p, f"{kind}: participants[{n}]", last, bool(dp))
        if ok:
            accepted.append(last)
        if dp:
            claimed[last] = eps
    if not accepted:
        raise Conflict(f"{kind}: every update was rejected; a round needs one accepted")
    counts = _check_epsilons(state, charter, claimed, kind) if dp else {}
    _check_metrics(body, {p["member"] for p in rows}, kind)
    values = _check_valuation(body, charter, accepted, kind)
    nodes = state.nodes.mutate()
    credit = state.compute_credit.mutate()
    for m in accepted:
        nodes[m] = nodes[m]._replace(rounds=nodes[m].rounds + 1, updated_index=leaf.index)
        credit[m] = credit.get(m, 0) + 1
    dp_rounds = state.dp_rounds.mutate()
    for m, c in counts.items():
        dp_rounds[m] = c
    record = FlRound(
        body["run"], body["round"], body["start"], tuple(accepted), tuple(sorted(values.items()))
    )
    return {
        "nodes": nodes.finish(),
        "compute_credit": credit.finish(),
        "dp_rounds": dp_rounds.finish(),
        "fl_runs": state.fl_runs.set(body["run"], body["round"]),
        "fl_rounds": state.fl_rounds.set(leaf.index, record),
    }


def _round_touched(leaf: Leaf) -> Touched:
    rows = leaf.body.get("participants", [])
    return Touched(nodes=tuple(p["member"] for p in rows if p.get("status") == "accepted"))


# -- federated model versions --------------------------------------------------------------


def central_version(state: State) -> int:
    """The latest version the hub trained centrally (0 when there is none)."""
    central = [v for v in state.models if v not in state.fl_versions]
    return max(central, default=0)


def _run_rounds(state: State, run: str) -> list[int]:
    """The entries of ``run``'s rounds, in round order."""
    entries = [(r.round, e) for e, r in state.fl_rounds.items() if r.run == run]
    return [e for _, e in sorted(entries)]


def version_participants(state: State, run: str) -> list[dict[str, Any]]:
    """The ``federated.participants`` a version from ``run`` logs: each member accepted in
    one of its rounds, with their current enrollment's root and items and their accepted
    rounds in the run, sorted by member."""
    rounds: dict[str, int] = {}
    for e in _run_rounds(state, run):
        for m in state.fl_rounds[e].accepted:
            rounds[m] = rounds.get(m, 0) + 1
    return [
        {
            "member": m,
            "root": state.nodes[m].root,
            "items": state.nodes[m].items,
            "rounds": rounds[m],
        }
        for m in sorted(rounds)
    ]


def _check_start(state: State, charter: Charter, start: int, kind: str) -> dict[str, Any]:
    """The start version is the one the charter says (zeros, or the latest central
    version, which must have trained on the current pool); returns the manifest."""
    from commonweal.community.models import manifest_root, pool

    central = central_version(state) if charter.federated.start == "latest" else 0
    if start != central:
        raise Conflict(
            f"{kind}: the run must start from version {central} (federated.start = "
            f"{charter.federated.start!r}), not {start}"
        )
    if start == 0:
        return {"root": manifest_root([]), "count": 0}
    model = state.models[start]
    training = pool(state).training
    if model.manifest_root != manifest_root(training) or model.items != len(training):
        raise Conflict(
            f"{kind}: version {start} did not train on the current pool; train the central "
            "model first, then run federated training from it"
        )
    return {"root": model.manifest_root, "count": model.items}


def _check_federated_field(state: State, fed: Any, kind: str) -> tuple[str, list[int]]:
    """``federated``: a run not used before, all of its rounds in order, its start."""
    keys = {"run", "rounds", "start", "participants"}
    if not isinstance(fed, dict) or set(fed) != keys:
        raise InvalidInput(f"{kind}: federated must have exactly {sorted(keys)}")
    run = fed["run"]
    if not isinstance(run, str) or run not in state.fl_runs:
        raise InvalidInput(f"{kind}: run {run!r} has no logged rounds")
    if any(v.run == run for v in state.fl_versions.values()):
        raise Conflict(f"{kind}: run {run} already made a model version")
    entries = _run_rounds(state, run)
    if fed["rounds"] != entries:
        raise InvalidInput(
            f"{kind}: rounds must be the entries of all of run {run}'s rounds, in order: {entries}"
        )
    if fed["start"] != state.fl_rounds[entries[0]].start:
        raise InvalidInput(
            f"{kind}: run {run} started from version {state.fl_rounds[entries[0]].start}"
        )
    if fed["participants"] != version_participants(state, run):
        raise InvalidInput(
            f"{kind}: participants must be the run's accepted members with their current "
            "enrollments (federated.version_participants)"
        )
    return run, entries


def check_version(state: State, leaf: Leaf, body: dict[str, Any]) -> Changes:
    """The changes of a federated ``model.version`` once its body is the one the rules
    imply: trainer, recipe and seed from the charter; the run's rounds; the start version
    and its manifest; the pool's evaluation set; one shard holding the one model."""
    from commonweal.community.models import check_metrics_and_artifact, pool, summary

    kind = leaf.kind
    charter = _charter(state, kind)
    expected = len(state.models) + 1
    if body["version"] != expected:
        raise Conflict(f"{kind}: the next version is {expected}, not {body['version']}")
    if body["trainer"] != TRAINER:
        raise InvalidInput(f"{kind}: a federated version's trainer is {TRAINER!r}")
    if body["params"] != recipe(charter):
        raise InvalidInput(f"{kind}: params must be the charter's federated recipe")
    if body["seed"] != charter.training.seed:
        raise InvalidInput(f"{kind}: the charter's seed is {charter.training.seed}")
    previous = body.get("previous")
    if previous is not None and previous not in state.models:
        raise InvalidInput(f"{kind}: previous version {previous} does not exist")
    check_metrics_and_artifact(body, kind)
    run, entries = _check_federated_field(state, body["federated"], kind)
    start = body["federated"]["start"]
    manifest = _check_start(state, charter, start, kind)
    if body["manifest"] != manifest:
        raise InvalidInput(f"{kind}: the manifest must be version {start}'s, {manifest}")
    p = pool(state)
    if body["evaluation"] != summary(p.evaluation):
        raise InvalidInput(f"{kind}: the evaluation set is not the one the log implies")
    shards = body["shards"]
    ok = (
        len(shards) == 1
        and isinstance(shards[0], dict)
        and set(shards[0]) == {"root", "count", "sha256", "bytes"}
        and {k: shards[0][k] for k in ("root", "count")} == manifest
        and isinstance(shards[0]["sha256"], str)
        and _HEX64.fullmatch(shards[0]["sha256"]) is not None
        and type(shards[0]["bytes"]) is int
        and shards[0]["bytes"] > 0
    )
    if not ok:
        raise InvalidInput(
            f"{kind}: a federated version has one shard {{root, count, sha256, bytes}} "
            "whose root and count are the manifest's"
        )
    model = ModelVersion(
        body["version"],
        leaf.index,
        leaf.log_time,
        TRAINER,
        1,
        body["seed"],
        manifest["count"],
        manifest["root"],
        body["evaluation"]["count"],
        body["evaluation"]["root"],
        canonical_str(body["metrics"]),
        body["artifact"]["sha256"],
        previous,
    )
    parts = tuple(
        (r["member"], r["root"], r["items"], r["rounds"]) for r in body["federated"]["participants"]
    )
    return {
        "models": state.models.set(model.version, model),
        "fl_versions": state.fl_versions.set(
            model.version, FlVersion(run, tuple(entries), start, parts)
        ),
        "evaluated": state.evaluated | frozenset(p.evaluation),
    }


# -- valuing a federated version ---------------------------------------------------------


def valuation_body(state: State, version: int) -> dict[str, Any]:
    """The ``valuation.record`` body the rules expect for federated ``version``: each
    participant's value is the sum of their per-round values over the version's rounds;
    the values tree has one leaf per participant (their enroll root, key and value); the
    central items the start version trained on are uncredited."""
    from commonweal.community.valuations import values_root

    assert state.charter is not None
    fv = state.fl_versions[version]
    model = state.models[version]
    sums: dict[str, Fraction] = {m: Fraction(0) for m, *_ in fv.participants}
    for e in fv.rounds:
        for m, v in state.fl_rounds[e].values:
            sums[m] += Fraction(v)
    rows, leaves = [], []
    total = Fraction(0)
    negative = 0
    for member, root, items, _ in fv.participants:
        value = format_value(sums[member])
        neg = items if sums[member] < 0 else 0
        rows.append({"member": member, "items": items, "value": value, "negative": neg})
        leaves.append((root, member, value))
        total += sums[member]
        negative += neg
    return {
        "valuation": len(state.valuations) + 1,
        "model": version,
        "method": state.charter.federated.valuation,
        "params": valuation_params(state.charter),
        "evaluation": {"root": model.eval_root, "count": model.eval_items},
        "values": {"root": values_root(leaves), "count": len(rows)},
        "total": format_value(total),
        "negative": negative,
        "uncredited": model.items,
        "members": rows,
    }


KINDS: dict[str, tuple[Any, Any]] = {
    "federated.enroll": (_enroll, lambda lf: Touched(nodes=(lf.actor,))),
    "federated.withdraw": (_withdraw, lambda lf: Touched(nodes=(lf.actor,))),
    "federated.round": (_round, _round_touched),
}
