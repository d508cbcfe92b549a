"""The checked facts a model version's card and datasheet are built from.

The hub gathers what its log says about a ``model.version`` entry into one ``info`` dict;
``parse_info`` checks it once and returns a :class:`VersionFacts`, so both renderers
(``cards.model_card`` and ``cards.croissant``) can trust every field they print.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from commonweal.community.charter import TaskKind
from commonweal.errors import HubError

__all__ = [
    "SPDX_ID",
    "TASK_KINDS",
    "ColumnFacts",
    "ContributorFacts",
    "FederatedFacts",
    "NodeFacts",
    "RoundFacts",
    "VersionFacts",
    "parse_info",
    "plural",
]

TASK_KINDS: tuple[str, ...] = get_args(TaskKind)  # the charter's, so the two never drift
SPDX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,63}")

_HEX64 = re.compile(r"[0-9a-f]{64}")
_ORIGIN = re.compile(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*")
_LOG_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")


def plural(n: int, one: str, many: str | None = None) -> str:
    """``n`` and the noun that agrees with it: ``1 item``, ``3 items``, ``2 shards``."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


@dataclass(frozen=True)
class ColumnFacts:
    """One column of a tabular task: its name, type, and categories if categorical."""

    name: str
    type: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class ContributorFacts:
    """One member whose items the version trained on, and how many."""

    member: str
    name: str
    items: int


@dataclass(frozen=True)
class NodeFacts:
    """One member whose node took part in a federated version: what their enrollment
    logged (items, the Merkle root over their salted item commitments), the run's rounds
    that accepted their update, and (under DP) their privacy loss so far, as the log has
    it ("" without DP)."""

    member: str
    name: str
    items: int
    root: str
    rounds: int
    epsilon: str


@dataclass(frozen=True)
class RoundFacts:
    """One ``federated.round`` of the run: its log entry, how many updates were accepted
    and rejected, the hub's central share (examples; 0 when none) and the aggregate's
    SHA-256."""

    round: int
    entry: int
    accepted: int
    rejected: int
    central: int
    aggregate: str


@dataclass(frozen=True)
class FederatedFacts:
    """How a federated version trained: its Flower run, the version it started from (0 =
    zeros), the aggregation and its parameters, DP settings (empty mode "off" when none),
    the rounds and the members' nodes."""

    run: str
    start: int
    aggregation: str
    aggregation_params: tuple[tuple[str, str], ...]
    local_epochs: int
    learning_rate: str
    l2: str
    dp_mode: str
    noise_multiplier: str
    clipping_norm: str
    delta: str
    rounds: tuple[RoundFacts, ...]
    nodes: tuple[NodeFacts, ...]


@dataclass(frozen=True)
class VersionFacts:
    """``info`` checked once, so both renderers can trust every field they print."""

    community: str
    description: str
    origin: str
    version: int
    index: int
    log_time: str
    log_size: int
    kind: str
    labels: tuple[str, ...]
    columns: tuple[ColumnFacts, ...]
    target: str
    image_width: int
    image_height: int
    trainer: str
    params: dict[str, Any]
    seed: int
    shards: int
    libraries: tuple[tuple[str, str], ...]
    manifest_root: str
    manifest_count: int
    manifest_sha256: str | None
    evaluation_root: str
    evaluation_count: int
    holdout_pct: int
    metrics: tuple[tuple[str, str], ...]
    artifact_format: str
    artifact_sha256: str
    artifact_bytes: int
    contributors: tuple[ContributorFacts, ...]
    licenses: tuple[tuple[str, int], ...]
    consent: tuple[tuple[str, int], ...]
    previous: int | None
    reused: tuple[tuple[int, int], ...]
    withdrawn: int
    release_license: str = ""  # set by a model.release vote
    release_weights: str = "private"
    release_proposal: int | None = None
    federated: FederatedFacts | None = None  # set for a version trained on members' nodes


def _bad(where: str, what: str) -> HubError:
    return HubError(f"model card: {where} must be {what}")


def _obj(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        raise _bad(f"{where}{key}", "an object")
    return value


def _str(
    parent: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str] | None = None
) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
        raise _bad(f"{where}{key}", "a string" if pattern is None else f"like {pattern.pattern}")
    return value


def _int(parent: Mapping[str, Any], key: str, where: str) -> int:
    value = parent.get(key)
    # bool is an int to Python but never a count or an index to us.
    if type(value) is not int or value < 0:
        raise _bad(f"{where}{key}", "a non-negative integer")
    return value


def _optional_str(parent: Mapping[str, Any], key: str, where: str) -> str:
    """A string that may be missing or empty: "" then."""
    return _str({key: parent.get(key) or ""}, key, where)


def _optional_int(parent: Mapping[str, Any], key: str, where: str) -> int:
    """A count that may be missing: 0 then."""
    return 0 if parent.get(key) is None else _int(parent, key, where)


def _counts(value: Any, where: str) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _bad(where, "an object of counts")
    return tuple((k, _int(value, k, f"{where}.")) for k in sorted(value))


def _strings(value: Any, where: str, what: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(x, str) for k, x in value.items()
    ):
        raise _bad(where, f"an object of {what}")
    return tuple((k, value[k]) for k in sorted(value))


def parse_info(info: Mapping[str, Any]) -> VersionFacts:
    """Check the ``info`` dict the hub gathers about a ``model.version`` entry.

    Raises :class:`~commonweal.errors.HubError` naming the first field that is not the
    shape the hub builds: a card must not print a wrong hash or index as if the log said so.
    """
    community = _obj(info, "community", "")
    task = _obj(info, "task", "")
    manifest = _obj(info, "manifest", "")
    evaluation = _obj(info, "evaluation", "")
    artifact = _obj(info, "artifact", "")
    kind = _task_kind(task)
    columns = _columns(task)
    labels = _labels(task)
    params = _params(info)
    contributors = _contributors(info)
    reused = _reused(info)
    previous = None if info.get("previous") is None else _int(info, "previous", "")
    sha = manifest.get("sha256")
    image = kind == "image-classification"
    return VersionFacts(
        community=_str(community, "name", "community."),
        description=_optional_str(community, "description", "community."),
        origin=_str(community, "origin", "community.", _ORIGIN),
        version=_int(info, "version", ""),
        index=_int(info, "index", ""),
        log_time=_str(info, "log_time", "", _LOG_TIME),
        log_size=_int(info, "log_size", ""),
        kind=kind,
        labels=labels,
        columns=columns,
        target=str(task.get("target") or "target"),
        image_width=_int(task, "image_width", "task.") if image else 0,
        image_height=_int(task, "image_height", "task.") if image else 0,
        trainer=_str(info, "trainer", ""),
        params=params,
        seed=_int(info, "seed", ""),
        shards=_int(info, "shards", ""),
        libraries=_strings(info.get("libraries") or {}, "libraries", "version strings"),
        manifest_root=_str(manifest, "root", "manifest.", _HEX64),
        manifest_count=_int(manifest, "count", "manifest."),
        manifest_sha256=None if sha is None else _str(manifest, "sha256", "manifest.", _HEX64),
        evaluation_root=_str(evaluation, "root", "evaluation.", _HEX64),
        evaluation_count=_int(evaluation, "count", "evaluation."),
        holdout_pct=_int(evaluation, "holdout_pct", "evaluation."),
        metrics=_strings(info.get("metrics") or {}, "metrics", "decimal strings"),
        artifact_format=_str(artifact, "format", "artifact."),
        artifact_sha256=_str(artifact, "sha256", "artifact.", _HEX64),
        artifact_bytes=_int(artifact, "bytes", "artifact."),
        contributors=contributors,
        licenses=_counts(info.get("licenses") or {}, "licenses"),
        consent=_counts(info.get("consent") or {}, "consent"),
        previous=previous,
        reused=reused,
        withdrawn=_optional_int(info, "withdrawn_since_previous", ""),
        federated=_federated(info, params),
        **_release_facts(info.get("release")),
    )


def _task_kind(task: Mapping[str, Any]) -> str:
    kind = _str(task, "kind", "task.")
    if kind not in TASK_KINDS:
        raise _bad("task.kind", f"one of {', '.join(TASK_KINDS)}")
    return kind


def _columns(task: Mapping[str, Any]) -> tuple[ColumnFacts, ...]:
    columns = []
    for i, col in enumerate(task.get("columns") or ()):
        if not isinstance(col, Mapping):
            raise _bad(f"task.columns[{i}]", "an object")
        cats = col.get("categories") or []
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise _bad(f"task.columns[{i}].categories", "a list of strings")
        columns.append(
            ColumnFacts(
                _str(col, "name", f"task.columns[{i}]."),
                str(col.get("type", "numeric")),
                tuple(cats),
            )
        )
    if len({c.name for c in columns}) != len(columns):
        raise _bad("task.columns", "distinct names")
    return tuple(columns)


def _labels(task: Mapping[str, Any]) -> tuple[str, ...]:
    labels = task.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise _bad("task.labels", "a list of strings")
    return tuple(labels)


def _params(info: Mapping[str, Any]) -> dict[str, Any]:
    params = info.get("params") or {}
    try:
        json.dumps(params, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _bad("params", "a JSON object") from e
    if not isinstance(params, dict):
        raise _bad("params", "a JSON object")
    return params


def _contributors(info: Mapping[str, Any]) -> tuple[ContributorFacts, ...]:
    contributors = []
    for i, c in enumerate(info.get("contributors") or ()):
        if not isinstance(c, Mapping):
            raise _bad(f"contributors[{i}]", "an object")
        where = f"contributors[{i}]."
        contributors.append(
            ContributorFacts(
                _str(c, "member", where, _HEX64), _str(c, "name", where), _int(c, "items", where)
            )
        )
    # The hub's query order is an accident of storage; the biggest contributors first, ties
    # by key, is an order a reader can check and that never changes between renderings.
    contributors.sort(key=lambda c: (-c.items, c.member))
    return tuple(contributors)


def _reused(info: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
    reused = []
    for i, r in enumerate(info.get("reused") or ()):
        if not isinstance(r, Mapping):
            raise _bad(f"reused[{i}]", "an object")
        reused.append((_int(r, "shard", f"reused[{i}]."), _int(r, "from_version", f"reused[{i}].")))
    return tuple(sorted(reused))


def _release_facts(release: Any) -> dict[str, Any]:
    if release is None:
        return {}
    if not isinstance(release, Mapping):
        raise _bad("release", "an object")
    weights = _str(release, "weights", "release.")
    if weights not in ("public", "private"):
        raise _bad("release.weights", "public or private")
    lic = release.get("license") or ""
    if lic and not SPDX_ID.fullmatch(lic):
        raise _bad("release.license", "an SPDX identifier")
    proposal = release.get("proposal")
    if proposal is not None and (type(proposal) is not int or proposal < 0):
        raise _bad("release.proposal", "a log entry")
    return {"release_license": lic, "release_weights": weights, "release_proposal": proposal}


def _federated(info: Mapping[str, Any], params: Mapping[str, Any]) -> FederatedFacts | None:
    """The ``federated`` facts of a version trained on members' nodes (None otherwise);
    the aggregation, local training and DP settings are the version's logged ``params``
    (the charter's federated recipe)."""
    if info.get("federated") is None:
        return None
    fed = _obj(info, "federated", "")
    run = _str(fed, "run", "federated.", re.compile(r"[0-9]{1,20}"))
    agg = params.get("params") or {}
    if not isinstance(agg, Mapping) or not all(
        type(x) is int or isinstance(x, str) for x in agg.values()
    ):
        raise _bad("params.params", "an object of aggregation parameters")
    dp = params.get("dp") or {"mode": "off"}
    if not isinstance(dp, Mapping):
        raise _bad("params.dp", "an object")
    dp_mode = _str(dp, "mode", "params.dp.")
    on = dp_mode != "off"
    rounds = []
    for i, r in enumerate(fed.get("rounds") or ()):
        if not isinstance(r, Mapping):
            raise _bad(f"federated.rounds[{i}]", "an object")
        where = f"federated.rounds[{i}]."
        rounds.append(
            RoundFacts(
                _int(r, "round", where),
                _int(r, "entry", where),
                _int(r, "accepted", where),
                _int(r, "rejected", where),
                _optional_int(r, "central", where),
                _str(r, "aggregate", where, _HEX64),
            )
        )
    nodes = []
    for i, n in enumerate(fed.get("participants") or ()):
        if not isinstance(n, Mapping):
            raise _bad(f"federated.participants[{i}]", "an object")
        where = f"federated.participants[{i}]."
        nodes.append(
            NodeFacts(
                _str(n, "member", where, _HEX64),
                _str(n, "name", where),
                _int(n, "items", where),
                _str(n, "root", where, _HEX64),
                _int(n, "rounds", where),
                _optional_str(n, "epsilon", where),
            )
        )
    # The card's order, like the contributors': most items first, ties by key.
    nodes.sort(key=lambda n: (-n.items, n.member))
    return FederatedFacts(
        run=run,
        start=_int(fed, "start", "federated."),
        aggregation=_str(params, "aggregation", "params."),
        aggregation_params=tuple((k, str(agg[k])) for k in sorted(agg)),
        local_epochs=_int(params, "local_epochs", "params."),
        learning_rate=_str(params, "learning_rate", "params."),
        l2=_str(params, "l2", "params."),
        dp_mode=dp_mode,
        noise_multiplier=_str(dp, "noise_multiplier", "params.dp.") if on else "",
        clipping_norm=_str(dp, "clipping_norm", "params.dp.") if on else "",
        delta=_str(dp, "delta", "params.dp.") if on else "",
        rounds=tuple(sorted(rounds, key=lambda r: r.round)),
        nodes=tuple(nodes),
    )
