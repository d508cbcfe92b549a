"""The rules for model versions: which items a version may be trained and scored on.

A version's data is not the hub's choice. The pool is a pure function of the replayed
state: accepted items whose consent includes ``train``, minus the community's held-out
evaluation set (a deterministic draw by hash that the log fixes, see ``in_evaluation``),
split into SISA
shards by another hash. The ``model.version`` event carries the Merkle root and size of
the whole manifest, of each shard's part and of the evaluation set; the rule recomputes all
of them from the state, so ``ledger verify`` proves exactly which items trained each
version — and, after a withdrawal, that the item is gone.

What the rules cannot check (the metrics, the artifact's hash) needs the data; anyone who
holds it can retrain the manifest with the logged seed and compare.

Event kinds:

- ``model.version`` — by the hub: a new version, its manifests, trainer, seed, libraries,
  metrics on the evaluation set and the SHA-256 of its saved artifact. A version trained
  by federated members carries a ``federated`` field (``community.federated.check_version``).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from commonweal.community.charter import Charter, Training
from commonweal.community.kinds import Changes, Touched, fields, need_hub
from commonweal.community.state import Contribution, ModelVersion, State
from commonweal.errors import Conflict, InvalidInput
from commonweal.ledger.canonical import canonical_str
from commonweal.ledger.event import Leaf
from commonweal.ledger.merkle import tree_root

__all__ = [
    "KINDS",
    "Pool",
    "check_metrics_and_artifact",
    "evaluation_beacon",
    "in_evaluation",
    "manifest_root",
    "pool",
    "shard_of",
    "summary",
    "trainer_name",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_METRIC = re.compile(r"-?[0-9]+(\.[0-9]+)?")

# The trainer "auto" stands for, per task kind (see commonweal.ml.trainers).
DEFAULT_TRAINERS = {
    "text-classification": "hashing-logreg",
    "image-classification": "pixels-logreg",
    "tabular-classification": "gradient-boosting",
    "tabular-regression": "gradient-boosting",
}


def trainer_name(charter: Charter) -> str:
    assert charter.task is not None
    name = charter.training.trainer
    return DEFAULT_TRAINERS[charter.task.kind] if name == "auto" else name


def _bucket(tag: str, item: str, modulus: int) -> int:
    digest = hashlib.sha256(f"{tag}:{item}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % modulus


def in_evaluation(item: str, holdout_pct: int, beacon: str) -> bool:
    """Whether an accepted item belongs to the held-out evaluation set.

    The draw hashes the item id with ``beacon``, the hash of the hub's screening entry for
    the item's batch. A member chooses an item's salt, and so its id, but cannot know the
    screening entry (it holds the hub's random nonce and signature) when they do: they
    cannot grind their items into the evaluation set or out of it."""
    return _bucket(f"evaluation:{beacon}", item, 100) < holdout_pct


def evaluation_beacon(state: State, c: Contribution) -> str:
    """What an item's evaluation draw hashes beside its id: the hash of the screening entry
    for its batch (see ``in_evaluation``). One function for the holdout and the top-up, so
    a replay, the hub and an experiment that must hold the draw fixed agree on it."""
    return state.beacons.get(c.batch_index, "")


def shard_of(item: str, shards: int) -> int:
    """The SISA shard an item trains in: stable, so a withdrawal touches one shard."""
    return _bucket("shard", item, shards)


def manifest_root(ids: Iterable[str]) -> str:
    """RFC 9162 Merkle root over the sorted item ids (16 bytes each), as hex. Sorting makes
    the root a function of the set, and lets a proof show an item is absent (its two
    neighbours are adjacent leaves)."""
    return _sorted_root(tuple(sorted(ids)))


@lru_cache(maxsize=64)
def _sorted_root(ids: tuple[str, ...]) -> str:
    # Cached: training, the hub's register step and the rule each ask for the same
    # shards' roots, and a shard is tens of thousands of hashes.
    return tree_root([bytes.fromhex(i) for i in ids]).hex()


class Pool(NamedTuple):
    """What a version trained on at some point of the log: ids sorted, per shard."""

    shards: tuple[tuple[str, ...], ...]
    evaluation: tuple[str, ...]

    @property
    def training(self) -> list[str]:
        return sorted(i for shard in self.shards for i in shard)


_POOL_CACHE: list[tuple[Any, Any, Any, Any, Pool]] = []


def pool(state: State) -> Pool:
    """The training shards and evaluation set the charter implies for ``state``."""
    # The maps are immutable: the same objects mean the same pool. Training, the hub's
    # register step and the rule ask for the pool of one state in turn. The entry keeps
    # the maps alive, so their ids cannot be reused while it is cached.
    for contributions, beacons, charter, evaluated, p in _POOL_CACHE:
        if (
            contributions is state.contributions
            and beacons is state.beacons
            and charter is state.charter
            and evaluated is state.evaluated
        ):
            return p
    p = _pool(state)
    _POOL_CACHE[:] = [(state.contributions, state.beacons, state.charter, state.evaluated, p)]
    return p


def shard_count(training: Training, labels: Sequence[str | None]) -> int:
    """How many SISA shards a pool of training items with these labels is split into: as
    many as the charter allows while each shard keeps ``min_rows_per_shard`` items and, on
    average, ``min_rows_per_class_per_shard`` of each label — one for a small community,
    whose model would otherwise be eight models too small to learn anything."""
    by_rows = len(labels) // training.min_rows_per_shard
    per_class = training.min_rows_per_class_per_shard
    # A label too rare to reach every shard anyway (a handful of items) does not hold the
    # whole pool to one shard: only labels with at least the per-shard minimum count.
    counts = [n for n in Counter(x for x in labels if x is not None).values() if n >= per_class]
    by_class = min(counts, default=len(labels)) // per_class
    return max(1, min(training.shards, by_rows, by_class))


def _fill_small_labels(
    state: State, training: list[tuple[str, str | None]], evaluation: list[str]
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Each label gets ``evaluation.min_per_class`` evaluation items while it has twice
    that many: short labels take their training items with the lowest draw (the same
    hash as the holdout, so anyone can recompute it). Once evaluated, always evaluated."""
    assert state.charter is not None
    need = state.charter.training.evaluation.min_per_class
    if not need:
        return training, evaluation
    label_of = {
        c: state.contributions[c].decided_label or state.contributions[c].label for c in evaluation
    }
    have = Counter(label_of.values())
    candidates: dict[str | None, list[tuple[int, str]]] = {}
    for iid, label in training:
        beacon = evaluation_beacon(state, state.contributions[iid])
        draw = _bucket(f"evaluation:{beacon}", iid, 2**32)
        candidates.setdefault(label, []).append((draw, iid))
    moved: set[str] = set()
    for label, items in candidates.items():
        short = need - have.get(label, 0)
        if label is None or short <= 0 or len(items) + have.get(label, 0) < 2 * need:
            continue
        moved.update(iid for _, iid in sorted(items)[:short])
    # A small community's holdout can fall under the charter's minimum by the luck of the
    # draw (17 of 150 iris items): top it up the same way, while the pool has four times
    # the minimum, rather than refuse to train.
    least = state.charter.training.evaluation.min_items
    short = least - len(evaluation) - len(moved)
    if short > 0 and len(training) + len(evaluation) >= 4 * least:
        rest = sorted(d for items in candidates.values() for d in items if d[1] not in moved)
        moved.update(iid for _, iid in rest[:short])
    if not moved:
        return training, evaluation
    return [t for t in training if t[0] not in moved], [*evaluation, *sorted(moved)]


def _pool(state: State) -> Pool:
    charter = state.charter
    assert charter is not None
    cfg = charter.training
    training: list[tuple[str, str | None]] = []
    evaluation: list[str] = []
    for c in state.contributions.values():
        if c.status != "accepted":
            continue
        scopes = c.consent.split(",")
        beacon = evaluation_beacon(state, c)
        drawn = in_evaluation(c.id, cfg.evaluation.holdout_pct, beacon)
        if drawn or c.id in state.evaluated:
            # Scoring a model is a lesser use than training it: either consent will do.
            if "evaluate" in scopes or "train" in scopes:
                evaluation.append(c.id)
        elif "train" in scopes:
            training.append((c.id, c.decided_label or c.label))
    training, evaluation = _fill_small_labels(state, training, evaluation)
    n = shard_count(cfg, [label for _, label in training])
    shards: list[list[str]] = [[] for _ in range(n)]
    for iid, _ in training:
        shards[shard_of(iid, n)].append(iid)
    return Pool(tuple(tuple(sorted(s)) for s in shards), tuple(sorted(evaluation)))


def summary(ids: Sequence[str]) -> dict[str, Any]:
    return {"root": manifest_root(ids), "count": len(ids)}


_BODY: dict[str, type] = {
    "version": int,
    "trainer": str,
    "params": dict,
    "seed": int,
    "manifest": dict,
    "evaluation": dict,
    "shards": list,
    "artifact": dict,
    "metrics": dict,
    "libraries": dict,
}


def _version_charter(state: State, body: dict[str, Any], kind: str) -> Charter:
    """The charter, once the version is the next one, with the charter's trainer and seed,
    and any previous version it names exists."""
    charter = state.charter
    if charter is None or charter.task is None:
        raise Conflict(f"{kind}: this community has no task, so it has no model")
    cfg = charter.training
    expected = len(state.models) + 1
    if body["version"] != expected:
        raise Conflict(f"{kind}: the next version is {expected}, not {body['version']}")
    if body["trainer"] != trainer_name(charter):
        raise InvalidInput(f"{kind}: the charter's trainer is {trainer_name(charter)!r}")
    if body["seed"] != cfg.seed:
        raise InvalidInput(f"{kind}: the charter's seed is {cfg.seed}, not {body['seed']}")
    previous = body.get("previous")
    if previous is not None and previous not in state.models:
        raise InvalidInput(f"{kind}: previous version {previous} does not exist")
    return charter


def check_metrics_and_artifact(body: dict[str, Any], kind: str) -> None:
    for name, value in body["metrics"].items():
        if not isinstance(value, str) or not _METRIC.fullmatch(value):
            raise InvalidInput(f"{kind}: metric {name!r} must be a decimal string")
    art = body["artifact"]
    if set(art) != {"format", "sha256", "bytes"} or not _HEX64.fullmatch(str(art["sha256"])):
        raise InvalidInput(f"{kind}: artifact must be {{format, sha256, bytes}}")


def _check_shard(state: State, n: int, got: Any, ids: tuple[str, ...], kind: str) -> None:
    """Shard ``n``'s logged part is the pool's ``ids``: stored (sha256 and bytes) unless
    empty, and reused only from a version that exists."""
    if not isinstance(got, dict) or {k: got.get(k) for k in ("root", "count")} != summary(ids):
        raise InvalidInput(f"{kind}: shard {n}'s manifest is not the one the log implies")
    sha, size, reused = got.get("sha256"), got.get("bytes"), got.get("from_version")
    stored = _HEX64.fullmatch(str(sha)) and type(size) is int and size > 0
    if set(got) - {"root", "count", "sha256", "bytes", "from_version"} or not (
        stored if ids else (sha == "" and size == 0 and reused is None)
    ):
        raise InvalidInput(f"{kind}: shard {n} must be {{root, count, sha256, bytes}}")
    if reused is not None and (type(reused) is not int or reused not in state.models):
        raise InvalidInput(f"{kind}: shard {n}: version {reused!r} does not exist")


def _check_data(state: State, body: dict[str, Any], charter: Charter, kind: str) -> None:
    """The logged evaluation set, manifest and shards are the ones the state implies."""
    # Recomputed from the state, so the hub cannot claim a version left out a withdrawn
    # item (or trained on an unaccepted one) without the replay catching it.
    cfg = charter.training
    p = pool(state)
    if len(p.evaluation) < cfg.evaluation.min_items:
        raise Conflict(
            f"{kind}: the evaluation set holds {len(p.evaluation)} items; the charter needs "
            f"{cfg.evaluation.min_items}"
        )
    if body["evaluation"] != summary(p.evaluation):
        raise InvalidInput(f"{kind}: the evaluation set is not the one the log implies")
    if body["manifest"] != summary(p.training):
        raise InvalidInput(f"{kind}: the manifest is not the training pool the log implies")
    shards = body["shards"]
    if len(shards) != len(p.shards):
        raise InvalidInput(
            f"{kind}: the charter splits this pool into {len(p.shards)} shards, not {len(shards)}"
        )
    for n, (got, ids) in enumerate(zip(shards, p.shards, strict=True)):
        _check_shard(state, n, got, ids, kind)
    if not p.training:
        raise Conflict(f"{kind}: there is no accepted data to train on")


def _version(state: State, leaf: Leaf) -> Changes:
    kind = leaf.kind
    body = fields(leaf, _BODY, {"previous": int, "federated": dict})
    need_hub(state, leaf)
    if "federated" in body:
        # Trained on members' machines (Flower): its own rules, in community.federated.
        from commonweal.community.federated import check_version

        return check_version(state, leaf, body)
    charter = _version_charter(state, body, kind)
    check_metrics_and_artifact(body, kind)
    _check_data(state, body, charter, kind)
    model = ModelVersion(
        body["version"],
        leaf.index,
        leaf.log_time,
        body["trainer"],
        len(body["shards"]),
        body["seed"],
        body["manifest"]["count"],
        body["manifest"]["root"],
        body["evaluation"]["count"],
        body["evaluation"]["root"],
        canonical_str(body["metrics"]),
        body["artifact"]["sha256"],
        body.get("previous"),
    )
    return {
        "models": state.models.set(model.version, model),
        "evaluated": state.evaluated | frozenset(pool(state).evaluation),
    }


KINDS: dict[str, tuple[Any, Any]] = {
    "model.version": (_version, lambda lf: Touched(models=(lf.body["version"],))),
}
