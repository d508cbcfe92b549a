"""``commonweal value``: what each contribution to a model version was worth.

The hub values every item a version trained on against that version's own evaluation set,
with the method the charter names:

- ``knn-shapley`` (the default for classification): exact Shapley values of each item to a
  K-nearest-neighbour classifier in the model's feature space (hashed text, pixels, or the
  standardised tabular columns). Deterministic — anyone with the data gets the same
  numbers — and split-invariant: an item's value does not depend on who gave it, so a
  member who spreads their data over fake identities earns nothing extra.
- ``round-shapley`` (a federated version, part 10): each node's Shapley value in every
  round, from the coalition utilities the round's entry logs; the rules recompute them, so
  the values are the log's and the hub stores none of its own.
- ``tmc-shapley``: members valued on the real trainer. Each coalition's model is fitted
  with the charter's recipe (trainer, SISA shards, seed) on the coalition's items and
  scored on the evaluation set; truncated Monte Carlo permutations (exact enumeration for
  small communities), seeded by the charter. An item's value is its member's value shared
  equally among the member's items.

Items with a negative value are flagged ``negative-value`` for reviewers: that is where
mislabels and poison hide. The values go into the hub's store (``item_values``); the log
gets a ``valuation.record`` with their Merkle root and each member's total.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from commonweal.community.charter import Charter
from commonweal.community.federated import valuation_body
from commonweal.community.state import Contribution, State, ValuationRecord
from commonweal.community.valuations import method_name, method_params, values_root
from commonweal.community.views import resolve_version, valuation_report
from commonweal.errors import Conflict, NotFound, VerificationFailed
from commonweal.hub.lineage import evaluation_ids, manifest_ids
from commonweal.hub.training import item_arrays
from commonweal.store import values as stored

if TYPE_CHECKING:
    from commonweal.hub.core import Computing, Hub

__all__ = [
    "NEGATIVE_FLAG",
    "check_valuation",
    "credit_of",
    "stored_values",
    "value",
    "values_summary",
]

NEGATIVE_FLAG = "negative-value"

# (what, done, total), as training reports it.
Progress = Callable[[str, int, int], None]


def _quiet(what: str, done: int, total: int) -> None:
    pass


def value(
    hub: Hub, *, version: str | int = "latest", progress: Progress | None = None
) -> dict[str, Any]:
    """Value every item of ``version``, log the valuation, and return the report."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):  # as in training: one BLAS pool, not two
        return _value(hub, version, progress or _quiet)


def _no_longer_accepted(state: State, ids: Sequence[str]) -> list[str]:
    # Erased content cannot be valued; an item a re-review has since rejected (or is
    # reviewing) still has its content, and the version did train on it.
    return [i for i in ids if state.contributions[i].status in ("withdrawn", "removed")]


def _check_still_accepted(
    state: State, version: int, ids: Sequence[str], evaluation: Sequence[str]
) -> None:
    gone = _no_longer_accepted(state, ids)
    gone_eval = _no_longer_accepted(state, evaluation)
    if gone or gone_eval:
        what = []
        if gone:
            what.append(f"{len(gone)} of its training items (first {gone[0]})")
        if gone_eval:
            what.append(f"{len(gone_eval)} of its evaluation items (first {gone_eval[0]})")
        raise Conflict(
            f"version {version} cannot be valued: {' and '.join(what)} were withdrawn since it "
            "was trained, and their content is erased. Train a version without them "
            "(`commonweal train --incremental`) and value that one"
        )


def _value(hub: Hub, version: str | int, say: Progress) -> dict[str, Any]:
    hub.refresh()
    state = hub.state
    charter = state.charter
    if charter is None or charter.task is None:
        raise Conflict("this community has no task in its charter, so it has no model to value")
    v = resolve_version(state, version)
    if v in state.fl_versions:
        return _value_federated(hub, v, say)
    mv = state.models[v]
    ids = manifest_ids(hub, v)
    evaluation = evaluation_ids(hub, v)
    _check_still_accepted(state, v, ids, evaluation)
    rows, details = _item_values(hub, state, charter, v, ids, evaluation, say, shards=mv.shards)
    negative = [i for i, _, val in rows if float(val) < 0]
    method = method_name(charter)
    body: dict[str, Any] = {
        "model": v,
        "method": method,
        "params": method_params(charter),
        "evaluation": {"root": mv.eval_root, "count": mv.eval_items},
        "values": {"root": values_root(rows), "count": len(rows)},
        **values_summary(rows),
    }
    if details:
        body["details"] = details

    def register(ctx: Computing) -> dict[str, Any]:
        # Under the append lock: a withdrawal while we computed makes the values moot.
        st = ctx.state
        _check_still_accepted(st, v, ids, evaluation)
        number = len(st.valuations) + 1
        stored.add_values(ctx.conn, number, rows)
        fresh = [i for i in negative if NEGATIVE_FLAG not in st.contributions[i].flags.split(",")]
        if fresh:
            ctx.also("contribution.flag", {"items": fresh, "flag": NEGATIVE_FLAG, "method": method})
        return {"valuation": number, **body}

    say("recording", 0, 1)
    done = hub.record("valuation.record", register)
    say("recording", 1, 1)
    return valuation_report(hub.state, done.body, done.entry, rows)


def _value_federated(hub: Hub, version: int, say: Progress) -> dict[str, Any]:
    """Log the valuation of a federated version: each participant's per-round values
    summed, as the rules compute them from the round entries."""
    say("recording", 0, 1)
    done = hub.record("valuation.record", lambda ctx: valuation_body(ctx.state, version))
    say("recording", 1, 1)
    return federated_report(hub.state, done.body, done.entry)


def federated_rows(state: State, record: ValuationRecord) -> list[tuple[str, str, str]]:
    """A federated valuation's ``(enroll root, member, value)`` rows, from the log."""
    body = valuation_body(state, record.model)
    roots = {m: root for m, root, *_ in state.fl_versions[record.model].participants}
    return sorted((roots[m["member"]], m["member"], m["value"]) for m in body["members"])


def federated_report(state: State, body: dict[str, Any], entry: int) -> dict[str, Any]:
    """What ``commonweal value`` shows of a federated version: each node's value, items
    and accepted rounds."""
    fv = state.fl_versions[body["model"]]
    rounds = {m: r for m, _, _, r in fv.participants}
    positive = sum(max(0.0, float(m["value"])) for m in body["members"])
    members = [
        {
            **m,
            "name": state.members[m["member"]].name if m["member"] in state.members else "",
            "rounds": rounds.get(m["member"], 0),
            "value_pct": round(100.0 * max(0.0, float(m["value"])) / positive, 2)
            if positive
            else 0.0,
        }
        for m in body["members"]
    ]
    members.sort(key=lambda m: -float(m["value"]))
    return {
        **{k: v for k, v in body.items() if k != "members"},
        "entry": entry,
        "members": members,
        "flagged": [],
    }


def _item_values(
    hub: Hub,
    state: State,
    charter: Charter,
    v: int,
    ids: list[str],
    evaluation: list[str],
    say: Progress,
    *,
    shards: int,
) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    """``(item, credited member, value)`` per training item of version ``v``, sorted as
    ``ids``, and details worth logging (copies skipped, the estimator's figures)."""
    say("loading data", 0, 1)
    X, y = item_arrays(hub, state, ids)
    Xe, ye = item_arrays(hub, state, evaluation)
    say("loading data", 1, 1)
    details: dict[str, Any] = {}
    # A copy adds nothing the first one did not: only the first contributed copy of an
    # item (same features and label) is valued, later copies are worth 0 — so sending an
    # item three times, or re-sending someone else's, earns nothing.
    first = _first_copies(state, ids, X, y)
    if not first.all():
        details["training_copies_valued_zero"] = int((~first).sum())
    rows_kept = np.flatnonzero(first)
    X, y = X[rows_kept], y[first]
    # An evaluation item that is a copy of a training item measures memory, not learning:
    # it would pay the copy's owner for the duplicate. Such points are left out.
    keep = _not_copies(X, Xe)
    if not keep.all():
        details["evaluation_copies_left_out"] = int((~keep).sum())
        Xe, ye = Xe[np.flatnonzero(keep)], ye[keep]
    if not len(ye):
        raise Conflict(f"every evaluation item of version {v} is a copy of a training item")
    if method_name(charter) == "knn-shapley":
        kept = _knn_values(charter, X, y, Xe, ye, say)
    else:
        kept_ids = [ids[i] for i in rows_kept]
        owners = [state.contributions[i].member for i in kept_ids]
        kept, more = _member_values(charter, kept_ids, owners, X, y, Xe, ye, say, shards)
        details.update(more)
    raw = np.zeros(len(ids), dtype=np.float64)
    raw[rows_kept] = kept
    credited = [credit_of(state.contributions[i], state) for i in ids]
    return list(zip(ids, credited, [repr(float(x)) for x in raw], strict=True)), details


def credit_of(c: Contribution, state: State | None = None) -> str:
    """Who an item's value is credited to: its contributor — unless review relabelled it.
    Then the label that made it useful was the reviewers' work, paid from the review pool,
    and the item's value is credited to no one ("").

    A copy of an earlier item (screening logged which one it resembles) earns its
    contributor nothing: as the charter's ``duplicates.copy_credit`` says, its value goes
    to whoever contributed the original (``original``: log order decides which that is),
    to no one (``nobody``), or — version-1 charters — to the copier (``copier``)."""
    if c.label is not None and c.decided_label is not None and c.decided_label != c.label:
        return ""
    if c.resembles is None or state is None or state.charter is None:
        return c.member
    policy = state.charter.duplicates.copy_credit
    original = _original(state, c)
    if policy == "copier" or original.member == c.member:
        return c.member  # the charter says so, or a member re-sent their own item
    if policy == "nobody" or original.status not in _STILL_HELD:
        return ""  # the original was withdrawn, removed or rejected: the copy earns no one
    return original.member


# An original whose contributor still holds it: accepted, or (back) in review — a flag
# that sends the original to re-review does not move its copies' credit elsewhere.
_STILL_HELD = ("accepted", "in_review")


def _original(state: State, c: Contribution) -> Contribution:
    """The first item of the chain of copies ``c`` is the end of (the rules let an item
    resemble only one logged before it, so the chain ends)."""
    while c.resembles is not None:
        c = state.contributions[c.resembles]
    return c


def _row_keys(X: Any) -> list[bytes]:
    from scipy import sparse

    if sparse.issparse(X):
        X = X.tocsr()
        X.sort_indices()
        return [
            X.indices[X.indptr[i] : X.indptr[i + 1]].tobytes()
            + X.data[X.indptr[i] : X.indptr[i + 1]].tobytes()
            for i in range(X.shape[0])
        ]
    X = np.ascontiguousarray(X, dtype=np.float64)
    return [row.tobytes() for row in X]


def _first_copies(state: State, ids: Sequence[str], X: Any, y: Any) -> Any:
    """Which training rows are the first contributed copy (earliest batch, then id) of
    their features and label."""
    keys = _row_keys(X)
    order = sorted(range(len(ids)), key=lambda i: (state.contributions[ids[i]].batch_index, ids[i]))
    seen: set[bytes] = set()
    first = np.zeros(len(ids), dtype=bool)
    for i in order:
        key = keys[i] + b"\x00label:" + str(y[i]).encode()
        if key not in seen:
            seen.add(key)
            first[i] = True
    return first


def _not_copies(X: Any, Xe: Any) -> Any:
    """Which evaluation rows are not exact copies (in feature space) of a training row."""
    seen = set(_row_keys(X))
    return np.array([k not in seen for k in _row_keys(Xe)], dtype=bool)


def _knn_values(charter: Charter, X: Any, y: Any, Xe: Any, ye: Any, say: Progress) -> Any:
    from scipy import sparse

    from commonweal.ml.knn_shapley import knn_shapley

    assert charter.task is not None
    if charter.task.kind.endswith("regression"):  # the charter refuses this; belt and braces
        raise Conflict("knn-shapley values classifiers; set valuation.method to tmc-shapley")
    if charter.task.kind.startswith("tabular") and not sparse.issparse(X):
        # Columns on their own scales would let the widest decide who is "near": scale by
        # the training items' spread (a pure function of the data, so still reproducible).
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        std[std == 0] = 1.0
        X, Xe = (X - mean) / std, (Xe - mean) / std
    n = Xe.shape[0]
    say("valuing", 0, n)
    return knn_shapley(
        X,
        y,
        Xe,
        ye,
        k=charter.valuation.k,
        progress=lambda done, total: say("valuing", done, total),
    )


def _member_values(
    charter: Charter,
    ids: Sequence[str],
    owners: Sequence[str],
    X: Any,
    y: Any,
    Xe: Any,
    ye: Any,
    say: Progress,
    shards: int,
) -> tuple[Any, dict[str, Any]]:
    """tmc-shapley: each member's Shapley value over coalitions of members, each fitted with
    the charter's recipe; an item gets its member's value over their item count."""
    from commonweal.ml.member_shapley import tmc_shapley

    players = sorted(set(owners))
    index = {m: n for n, m in enumerate(players)}
    owner_of = np.array([index[m] for m in owners])
    utility = _coalition_score(charter, ids, owner_of, X, y, Xe, ye, shards)
    v = charter.valuation
    est = tmc_shapley(
        len(players),
        utility,
        permutations=v.permutations,
        seed=charter.training.seed,
        truncation=v.truncation_pct / 100.0,
        progress=lambda done, total: say("valuing members", done, total),
    )
    counts = np.bincount(owner_of, minlength=len(players))
    per_item = np.asarray(est.values, dtype=np.float64)[owner_of] / counts[owner_of]
    details = {
        "exact": bool(est.exact),
        "permutations_used": int(est.permutations),
        "coalitions_fitted": int(est.utility_calls),
        "full_score": repr(float(est.full_utility)),
        "empty_score": repr(float(est.empty_utility)),
    }
    return per_item, details


def _coalition_score(
    charter: Charter,
    ids: Sequence[str],
    owner_of: Any,
    X: Any,
    y: Any,
    Xe: Any,
    ye: Any,
    shards: int,
) -> Callable[[tuple[int, ...]], float]:
    """The score of a coalition of members (numbered as in ``owner_of``): the charter's
    recipe (trainer, SISA shards, seed) fitted on their items, scored on the evaluation
    set — accuracy for a classifier, R² for a regressor."""
    from commonweal.community.models import shard_of, trainer_name
    from commonweal.ml.sisa import ShardedModel, fit_shard
    from commonweal.ml.trainers import get_trainer

    task = charter.task
    assert task is not None
    cfg = charter.training
    trainer = get_trainer(trainer_name(charter), task.kind)
    shard = np.array([shard_of(i, shards) for i in ids])
    regression = task.kind.endswith("regression")
    labels = task.labels or None

    def utility(coalition: tuple[int, ...]) -> float:
        if not coalition:
            # No data: a classifier can only guess (chance); a regressor predicts a
            # constant, which scores R² <= 0 — taken as 0.
            return 0.0 if regression else 1.0 / len(task.labels)
        rows = np.isin(owner_of, coalition)
        models = []
        for s in range(shards):
            sel = np.flatnonzero(rows & (shard == s))
            if len(sel):
                models.append(
                    fit_shard(
                        trainer,
                        task.kind,
                        X[sel],
                        y[sel],
                        seed=cfg.seed,
                        shard=s,
                        shards=shards,
                    )
                )
        pred = ShardedModel(models, labels).predict(Xe)
        if regression:
            from sklearn.metrics import r2_score

            return float(r2_score(ye, pred))
        return float(np.mean(pred.astype(str) == ye))

    return utility


def stored_values(
    hub: Hub, valuation: int, record: ValuationRecord | None = None
) -> list[tuple[str, str, str]]:
    """``(item, member, value)`` rows of a logged valuation, sorted by item and checked
    against the Merkle root in the log."""
    record = record or hub.state.valuations.get(valuation)
    if record is None:
        raise NotFound(f"there is no valuation {valuation}; see `commonweal values`")
    if record.model in hub.state.fl_versions:
        rows = federated_rows(hub.state, record)
        if values_root(rows) != record.values_root:  # pragma: no cover - the rules check it
            raise VerificationFailed(
                f"valuation {valuation} does not match its rounds (entry {record.entry})",
                index=record.entry,
            )
        return rows
    with hub.read() as conn:
        rows = stored.values_of(conn, valuation)
    if values_root(rows) != record.values_root or len(rows) != record.items:
        raise VerificationFailed(
            f"the stored values of valuation {valuation} do not match the root logged at "
            f"entry {record.entry}",
            index=record.entry,
        )
    return rows


def values_summary(rows: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    """The logged summary of ``(item, credited member, value)`` rows sorted by item: the
    total, the negative and uncredited counts, and each credited member's items, value and
    negative items. Sums are ``math.fsum`` (exactly rounded, so order-free)."""
    per_member: dict[str, list[float]] = defaultdict(list)
    for _, member, val in rows:
        if member:
            per_member[member].append(float(val))
    return {
        "total": repr(math.fsum(float(r[2]) for r in rows)),
        "negative": sum(1 for r in rows if float(r[2]) < 0),
        "uncredited": sum(1 for r in rows if not r[1]),
        "members": [
            {
                "member": m,
                "items": len(vals),
                "value": repr(math.fsum(vals)),
                "negative": sum(1 for x in vals if x < 0),
            }
            for m, vals in sorted(per_member.items())
        ],
    }


def check_valuation(hub: Hub, record: ValuationRecord) -> None:
    """What ``ledger verify`` checks of a stored valuation: its values hash to the logged
    root, they cover exactly the version's items, and the logged total, counts and members'
    totals are what they add up to."""
    rows = stored_values(hub, record.valuation, record)
    if record.model in hub.state.fl_versions:
        return  # recomputed from the round entries: replay already checked every number
    fail = None
    if [r[0] for r in rows] != manifest_ids(hub, record.model):
        fail = f"do not cover exactly the items of version {record.model}"
    else:
        body = hub.log.entries(record.entry, record.entry + 1)[0].body
        want = values_summary(rows)
        if {k: body[k] for k in want} != want:
            fail = "do not add up to the logged total, members' totals and counts"
    if fail:
        raise VerificationFailed(
            f"the stored values of valuation {record.valuation} {fail} (entry {record.entry})",
            index=record.entry,
        )
