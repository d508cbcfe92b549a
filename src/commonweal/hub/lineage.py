"""Lineage: which items made which model version, with proofs against the log.

The hub stores each version's item list; the log holds its Merkle root (over the sorted
ids), which the rules recomputed from the replayed state when the version was appended.
So a list that hashes to the logged root is the list — and an item's presence or absence
can be shown with an RFC 9162 proof: an inclusion proof, or, for an absent item, inclusion
proofs of the two adjacent ids it would sit between.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from commonweal.community.models import manifest_root, pool
from commonweal.community.rules import replay
from commonweal.community.views import release_of
from commonweal.errors import NotFound, VerificationFailed
from commonweal.ledger.canonical import canonical, parse
from commonweal.ledger.event import decode_leaf
from commonweal.ledger.merkle import MemoryTree, inclusion_proof, leaf_hash
from commonweal.store import artifacts
from commonweal.store.projection import gc_paused

if TYPE_CHECKING:
    from commonweal.hub.core import Hub

__all__ = [
    "evaluation_ids",
    "federated_info",
    "item_lineage",
    "lineage_changes",
    "manifest_ids",
    "model_lineage",
    "prove_item",
]

# How a caller reads a version's checked ids: ``manifest_ids`` itself, or a cache of it.
IdsOf = Callable[[int], list[str]]


def manifest_ids(hub: Hub, version: int) -> list[str]:
    """The sorted ids behind ``version``, checked against the root in the log."""
    mv = hub.state.models.get(version)
    if mv is None:
        raise NotFound(f"there is no model version {version}; see `commonweal models`")
    with hub.read() as conn:
        ids = artifacts.version_items(conn, version)
    if manifest_root(ids) != mv.manifest_root or len(ids) != mv.items:
        raise VerificationFailed(
            f"the stored item list of version {version} does not match the manifest root "
            f"logged at entry {mv.entry}",
            index=mv.entry,
        )
    return ids


def evaluation_ids(hub: Hub, version: int) -> list[str]:
    """The sorted ids of ``version``'s evaluation set, checked against the logged root.

    Versions trained since part 4 store them beside the training items; for older ones
    they are what the rules implied at the version's entry, found by replaying the log up
    to it."""
    mv = hub.state.models.get(version)
    if mv is None:
        raise NotFound(f"there is no model version {version}; see `commonweal models`")
    with hub.read() as conn:
        ids = artifacts.version_items(conn, version, evaluation=True)
    if not ids:
        leaves = hub.log.iter_leaf_bytes(0, mv.entry)
        with gc_paused():
            then = replay(decode_leaf(b, strict=False) for b in leaves)
        ids = list(pool(then).evaluation)
    if manifest_root(ids) != mv.eval_root or len(ids) != mv.eval_items:
        raise VerificationFailed(
            f"the evaluation set of version {version} does not match the root logged at "
            f"entry {mv.entry}",
            index=mv.entry,
        )
    return ids


def item_lineage(hub: Hub, item: str) -> dict[str, Any]:
    """The versions that trained on ``item`` (and in which shard)."""
    state = hub.state
    c = state.contributions.get(item)
    if c is None:
        raise NotFound(f"there is no item {item}")
    with hub.read() as conn:
        used = artifacts.item_versions(conn, item)
    return {
        "item": item,
        "member": c.member,
        "status": c.status,
        "versions": [
            {"version": v, "shard": used[v], "entry": state.models[v].entry}
            for v in sorted(used)
            if v in state.models
        ],
        "not_in": [v for v in sorted(state.models) if v not in used],
    }


def model_lineage(hub: Hub, version: int, ids_of: IdsOf | None = None) -> dict[str, Any]:
    """The items behind ``version`` and how many each member gave."""
    state = hub.state
    ids = ids_of(version) if ids_of else manifest_ids(hub, version)
    mv = state.models[version]
    per_member = Counter(state.contributions[i].member for i in ids)
    members = [
        {
            "member": key,
            "name": state.members[key].name if key in state.members else "",
            "items": n,
        }
        for key, n in sorted(per_member.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return {
        "version": version,
        "entry": mv.entry,
        "manifest_root": mv.manifest_root,
        "items": ids,
        "members": members,
        "verified": True,
    }


def lineage_changes(hub: Hub, version: int, ids_of: IdsOf) -> dict[str, Any]:
    """What changed in the items behind ``version`` since the version before it: per
    member, the items in it, added and removed; and which removed items were withdrawn
    (the rest left the pool otherwise: rejected on re-review, or moved to evaluation)."""
    state = hub.state
    mv = state.models[version]
    ids = ids_of(version)
    before = ids_of(mv.previous) if mv.previous is not None else []
    now, then = set(ids), set(before)
    added = now - then
    removed = sorted(then - now)

    def owner(i: str) -> str:
        return state.contributions[i].member

    have = Counter(owner(i) for i in ids)
    plus = Counter(owner(i) for i in added)
    minus = Counter(owner(i) for i in removed)
    members = [
        {
            "member": key,
            "name": state.members[key].name if key in state.members else "",
            "items": have[key],
            "added": plus[key],
            "removed": minus[key],
        }
        for key in sorted(have.keys() | minus.keys(), key=lambda k: (-have[k], -minus[k], k))
    ]
    gone = [
        {"item": i, "member": owner(i), "status": state.contributions[i].status} for i in removed
    ]
    return {
        "version": version,
        "previous": mv.previous,
        "items": len(ids),
        "members": members,
        "added": len(added),
        "removed": gone,
        "withdrawn": sum(1 for g in gone if g["status"] == "withdrawn"),
    }


def prove_item(hub: Hub, item: str, version: int) -> dict[str, Any]:
    """Proof that ``item`` is, or is not, in the manifest of ``version``."""
    ids = manifest_ids(hub, version)
    mv = hub.state.models[version]
    tree = MemoryTree(bytes.fromhex(i) for i in ids)

    def leaf(n: int) -> dict[str, Any]:
        return {
            "index": n,
            "item": ids[n],
            "leaf_hash": leaf_hash(bytes.fromhex(ids[n])).hex(),
            "proof": [h.hex() for h in inclusion_proof(n, len(ids), tree)],
        }

    at = bisect.bisect_left(ids, item)
    out: dict[str, Any] = {
        "item": item,
        "version": version,
        "entry": mv.entry,
        "root": mv.manifest_root,
        "size": len(ids),
    }
    if at < len(ids) and ids[at] == item:
        out["included"] = True
        out["leaf"] = leaf(at)
    else:
        # Adjacent leaves of a sorted tree around where the item would be: it is absent.
        out["included"] = False
        out["neighbours"] = [leaf(n) for n in (at - 1, at) if 0 <= n < len(ids)]
    return out


def manifest_file(version: int, ids: list[str]) -> bytes:
    """The manifest as a file (what ``lineage --model V --json`` lists): canonical JSON."""
    return canonical({"version": version, "items": ids})


def manifest_file_sha256(version: int, ids: list[str]) -> str:
    return hashlib.sha256(manifest_file(version, ids)).hexdigest()


def card_info(hub: Hub, version: int, ids_of: IdsOf | None = None) -> dict[str, Any]:
    """Everything a model card and datasheet say about ``version``, from the log."""
    state = hub.state
    charter = state.charter
    assert charter is not None and charter.task is not None
    ids_of = ids_of or (lambda v: manifest_ids(hub, v))
    lineage = model_lineage(hub, version, ids_of)
    mv = state.models[version]
    body = hub.log.entries(mv.entry, mv.entry + 1)[0].body
    used = [state.contributions[i] for i in lineage["items"]]
    licenses = Counter(c.license for c in used)
    consent = Counter(scope for c in used for scope in c.consent.split(",") if scope)
    previous = body.get("previous")
    withdrawn = 0
    if previous is not None:
        before = set(ids_of(previous))
        withdrawn = sum(
            1
            for i in before - set(lineage["items"])
            if state.contributions[i].status == "withdrawn"
        )
    return {
        "community": {
            "name": charter.name,
            "description": charter.description,
            "origin": state.origin,
        },
        "version": version,
        "index": mv.entry,
        "log_time": mv.log_time,
        "log_size": hub.log.size(),
        "task": charter.task.model_dump(mode="json"),
        "trainer": body["trainer"],
        "params": body["params"],
        "seed": body["seed"],
        "shards": len(body["shards"]),
        "libraries": body["libraries"],
        "manifest": {**body["manifest"], "sha256": manifest_file_sha256(version, lineage["items"])},
        "evaluation": {
            **body["evaluation"],
            "holdout_pct": charter.training.evaluation.holdout_pct,
        },
        "metrics": parse(mv.metrics),
        "artifact": {k: body["artifact"][k] for k in ("format", "sha256", "bytes")},
        "contributors": lineage["members"],
        "licenses": dict(sorted(licenses.items())),
        "consent": dict(sorted(consent.items())),
        "previous": previous,
        "reused": [
            {"shard": n, "from_version": s["from_version"]}
            for n, s in enumerate(body["shards"])
            if "from_version" in s
        ],
        "withdrawn_since_previous": withdrawn,
        "release": release_of(state, version),
        "federated": federated_info(hub, version),
    }


def federated_info(hub: Hub, version: int) -> dict[str, Any] | None:
    """What a card says about a version trained on members' nodes (None for a central
    one): each round's counts and aggregate hash from its logged entry, and each node's
    enrollment, accepted rounds and (under DP) the epsilon its last round logged."""
    state = hub.state
    fv = state.fl_versions.get(version)
    if fv is None:
        return None
    rounds = []
    epsilon: dict[str, str] = {}
    for entry in fv.rounds:
        body = hub.log.entries(entry, entry + 1)[0].body
        rows = body["participants"]
        accepted = sum(1 for p in rows if p["status"] == "accepted")
        rounds.append(
            {
                "round": body["round"],
                "entry": entry,
                "accepted": accepted,
                "rejected": len(rows) - accepted,
                "central": (body.get("central") or {}).get("examples", 0),
                "aggregate": body["aggregate"],
            }
        )
        # Each round logs a member's total epsilon after it: the last one is what they
        # had spent when this version was made.
        epsilon.update({p["member"]: p["epsilon"] for p in rows if "epsilon" in p})
    return {
        "run": fv.run,
        "start": fv.start,
        "rounds": rounds,
        "participants": [
            {
                "member": member,
                "name": state.members[member].name if member in state.members else "",
                "root": root,
                "items": items,
                "rounds": accepted,
                "epsilon": epsilon.get(member, ""),
            }
            for member, root, items, accepted in fv.participants
        ],
    }
