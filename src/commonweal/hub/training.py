"""``commonweal train``: a new model version from the pool the log implies.

The work happens outside the append lock — reading and decrypting the pool, fitting the
SISA shards, scoring on the evaluation set — so members keep contributing meanwhile. Then,
under the lock, the hub looks at the pool again: if items were accepted or withdrawn during
training, the shards they fall in are retrained there (a withdrawn item never reaches a
registered version). Shard artifacts, the version's item list and the ``model.version``
event commit together; a crash before that commit leaves no trace of the version.

``incremental`` reuses a previous version's shard model wherever the shard's items and the
recipe (trainer, parameters, seed) are unchanged, so unlearning retrains one shard in S.
"""

from __future__ import annotations

import hashlib
import io
import platform
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from commonweal.community.charter import Charter
from commonweal.community.models import Pool, manifest_root, pool, trainer_name
from commonweal.community.state import State
from commonweal.community.views import resolve_version
from commonweal.errors import Conflict, InvalidInput, NotFound, VerificationFailed
from commonweal.hub import scoring
from commonweal.hub.features import featurize, targets
from commonweal.ledger.canonical import canonical
from commonweal.ml.sisa import ShardedModel, dump_shard, fit_shard, load_shard
from commonweal.ml.trainers import Trainer, get_trainer
from commonweal.store import artifacts, vault
from commonweal.store.artifacts import EVALUATION_SHARD

if TYPE_CHECKING:
    from commonweal.hub.core import Computing, Hub

__all__ = [
    "EVALUATION_SHARD",
    "Progress",
    "artifact_bundle",
    "item_arrays",
    "library_versions",
    "load_model",
    "train",
]

# (what, done, total): shards fitted, say. The CLI draws a bar from it.
Progress = Callable[[str, int, int], None]
ARTIFACT_FORMAT = "commonweal-sisa-skops/1"
_CHUNK = 500


def _quiet(what: str, done: int, total: int) -> None:
    pass


def library_versions() -> dict[str, str]:
    """The versions of Python and of the libraries a model depends on, as the log records them."""
    out = {"python": platform.python_version()}
    for dist in ("commonweal", "numpy", "scipy", "scikit-learn", "skops"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


@dataclass
class _Shard:
    """One SISA shard of a version: its items, and its model once fitted or reused."""

    index: int
    ids: tuple[str, ...]
    model: Any = None
    blob: bytes | None = None
    sha256: str = ""
    size: int = 0
    from_version: int | None = None

    def logged(self) -> dict[str, Any]:
        """The shard as the ``model.version`` event lists it."""
        out: dict[str, Any] = {
            "root": manifest_root(self.ids),
            "count": len(self.ids),
            "sha256": self.sha256,
            "bytes": self.size,
        }
        if self.from_version is not None:
            out["from_version"] = self.from_version
        return out


@dataclass
class _ShardFitter:
    """Fits shards with the charter's recipe, on item content loaded once and kept."""

    hub: Hub
    charter: Charter
    trainer: Trainer
    seed: int
    progress: Progress
    content: dict[str, Any] = field(default_factory=dict)
    shard_count: int = 1  # of the pool being fitted (it adapts to the pool's size)

    @property
    def task(self) -> Any:
        """The charter's task (a trained community always has one)."""
        assert self.charter.task is not None
        return self.charter.task

    def load(self, conn: Connection, ids: Sequence[str]) -> None:
        """Decrypt the content of ``ids`` not loaded yet."""
        need = [i for i in ids if i not in self.content]
        for n in range(0, len(need), _CHUNK):
            self.content.update(vault.load_items(conn, self.hub.keyring, need[n : n + _CHUNK]))

    def arrays(self, state: State, ids: Sequence[str]) -> tuple[Any, Any]:
        """Features and targets of loaded items, with the labels review decided."""
        return _arrays(self.task, state, self.content, ids)

    def fit(self, state: State, shard: _Shard) -> None:
        """Fit one shard's model on its items and serialize it (an empty shard has none)."""
        if not shard.ids:
            shard.model, shard.blob, shard.sha256, shard.size = None, None, "", 0
            return
        X, y = self.arrays(state, shard.ids)
        shard.model = fit_shard(
            self.trainer,
            self.task.kind,
            X,
            y,
            seed=self.seed,
            shard=shard.index,
            shards=self.shard_count,
        )
        shard.blob = dump_shard(shard.model)
        shard.sha256 = hashlib.sha256(shard.blob).hexdigest()
        shard.size = len(shard.blob)
        shard.from_version = None

    def metrics(self, state: State, shards: Sequence[_Shard], p: Pool) -> dict[str, str]:
        """The held-out metrics of the model these shards make on the pool's evaluation
        set, beside one unsharded model's (the same when there is one shard)."""
        model = ShardedModel([s.model for s in shards], self.task.labels or None)
        X, y = self.arrays(state, p.evaluation)
        got = scoring.metrics(self.task.kind, self.task.labels, y, model, X)
        if len(p.shards) > 1:
            got.update(scoring.unsharded_metrics(self, state, p.training, p.evaluation))
        else:
            got.update({f"unsharded.{k}": v for k, v in got.items() if "." not in k})
        return got


def _arrays(
    task: Any, state: State, content: dict[str, Any], ids: Sequence[str]
) -> tuple[Any, Any]:
    missing = [i for i in ids if i not in content]
    if missing:
        raise Conflict(
            f"item {missing[0]} has no content although the log lists it as accepted; "
            "run `commonweal ledger verify` on this hub"
        )
    items = [content[i] for i in ids]
    labels = []
    for i in ids:
        c = state.contributions[i]
        labels.append(c.decided_label or c.label)
    return featurize(task, items), targets(task, items, labels)


def item_arrays(hub: Hub, state: State, ids: Sequence[str]) -> tuple[Any, Any]:
    """Features and targets of accepted items, as training sees them: decrypted from the
    vault, with the label review decided."""
    assert state.charter is not None and state.charter.task is not None
    content: dict[str, Any] = {}
    with hub.read() as conn:
        for n in range(0, len(ids), _CHUNK):
            content.update(vault.load_items(conn, hub.keyring, ids[n : n + _CHUNK]))
    return _arrays(state.charter.task, state, content, ids)


def _previous_shards(
    hub: Hub, state: State, recipe: dict[str, Any]
) -> dict[tuple[int, str], _Shard]:
    """The latest version's shard models, by (shard, items root), if its recipe is ours."""
    latest = state.latest_model
    if latest is None:
        return {}
    body = hub.log.entries(latest.entry, latest.entry + 1)[0].body
    if {k: body[k] for k in recipe} != recipe:
        return {}
    out = {}
    for n, s in enumerate(body["shards"]):
        if s["count"]:
            out[(n, s["root"])] = _Shard(
                n,
                (),
                sha256=s["sha256"],
                size=s["bytes"],
                from_version=s.get("from_version", latest.version),
            )
    return out


def train(
    hub: Hub, *, incremental: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    """Train, score and register a new model version; return what was logged."""
    from threadpoolctl import threadpool_limits

    # numpy and scipy each bring an OpenBLAS thread pool; on a small machine the two
    # fight over the cores and a fit runs many times slower. One BLAS thread is fastest
    # for these models (SISA's parallelism is across shards, not inside one).
    with threadpool_limits(1, user_api="blas"):
        return _Training.start(hub, incremental=incremental, progress=progress).run()


@dataclass
class _Training:
    """One training run: fit outside the lock, then register under it (see the module)."""

    hub: Hub
    job: _ShardFitter
    recipe: dict[str, Any]
    reusable: dict[tuple[int, str], _Shard]
    say: Progress
    shards: dict[int, _Shard] = field(default_factory=dict)
    scored: tuple[Pool, dict[str, str]] | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, hub: Hub, *, incremental: bool, progress: Progress | None) -> _Training:
        """Prepare a run: the charter's trainer and recipe, and the shards it may reuse."""
        say = progress or _quiet
        hub.refresh()  # another process may have appended (a withdrawal, say) since
        state = hub.state
        charter = state.charter
        if charter is None or charter.task is None:
            raise Conflict("this community has no task in its charter, so it has no model to train")
        try:
            trainer = get_trainer(trainer_name(charter), charter.task.kind)
        except ValueError as exc:
            raise InvalidInput(f"the charter's training.trainer: {exc}") from None
        job = _ShardFitter(hub, charter, trainer, charter.training.seed, say)
        recipe = {
            "trainer": trainer.name,
            "params": trainer.logged_params(),
            "seed": charter.training.seed,
        }
        reusable = _previous_shards(hub, state, recipe) if incremental else {}
        return cls(hub, job, recipe, reusable, say)

    def run(self) -> dict[str, Any]:
        """Fit, score, and register the version; return what was logged."""
        state = self.hub.state
        first = pool(state)
        _check_pool(self.job.charter, first)
        self.check_changed(state, first)
        with self.hub.read() as conn:
            built, todo = self.shards_for(conn, first, {})
            self.job.load(conn, first.evaluation)
            if len(first.shards) > 1:
                self.job.load(conn, first.training)  # for the unsharded model
        self.fit(state, todo)  # no transaction open while fitting
        self.shards = {s.index: s for s in built}
        self.say("scoring", 0, 1)
        self.scored = (first, self.job.metrics(state, built, first))
        self.say("scoring", 1, 1)
        done = self.hub.record("model.version", self.register)
        shards = done.body["shards"]
        return {
            **done.body,
            "entry": done.entry,
            "size": done.size,
            "retrained": [
                n for n, s in enumerate(shards) if "from_version" not in s and s["count"]
            ],
            "reused": [n for n, s in enumerate(shards) if "from_version" in s],
            "warnings": self.warnings,
        }

    def check_changed(self, state: State, p: Pool) -> None:
        """Refuse to make a version identical to the newest one: same items, same
        evaluation set, same recipe."""
        latest = state.latest_model
        if latest is None:
            return
        body = self.hub.log.entries(latest.entry, latest.entry + 1)[0].body
        same = (
            latest.manifest_root == manifest_root(p.training)
            and latest.eval_root == manifest_root(p.evaluation)
            and {k: body.get(k) for k in self.recipe} == self.recipe
        )
        if same:
            raise Conflict(
                f"nothing changed since version {latest.version}: the same items, evaluation "
                "set and recipe would make the same model"
            )

    def shards_for(
        self, conn: Connection, p: Pool, shards: dict[int, _Shard]
    ) -> tuple[list[_Shard], list[_Shard]]:
        """Shards for pool ``p``: kept from ``shards`` if unchanged, else reused or (the
        second list) still to be fitted; their content is loaded."""
        self.job.shard_count = len(p.shards)
        out: list[_Shard] = []
        todo: list[_Shard] = []
        for n, ids in enumerate(p.shards):
            have = shards.get(n)
            if have is not None and have.ids == ids:
                out.append(have)
                continue
            shard = _Shard(n, ids)
            old = self.reusable.get((n, manifest_root(ids))) if ids else None
            if old is not None:
                shard.sha256, shard.size = old.sha256, old.size
                shard.from_version = old.from_version
                # Kept in memory too: the artifact bundle needs the bytes again.
                shard.blob = artifacts.blob(conn, old.sha256)
                shard.model = load_shard(shard.blob)
            else:
                todo.append(shard)
            out.append(shard)
        self.job.load(conn, [i for s in todo for i in s.ids])
        return out, todo

    def fit(self, st: State, todo: list[_Shard]) -> None:
        """Fit the shards still to be fitted, reporting progress."""
        for k, shard in enumerate(todo):
            self.say("training shards", k, len(todo))
            self.job.fit(st, shard)
        self.say("training shards", len(todo), len(todo))

    def register(self, ctx: Computing) -> dict[str, Any]:
        """Under the append lock: the pool as it is now is the one the rules will check."""
        conn, st = ctx.conn, ctx.state
        p = pool(st)
        _check_pool(self.job.charter, p)
        final, todo = self.shards_for(conn, p, self.shards)
        self.fit(st, todo)
        assert self.scored is not None
        if p != self.scored[0]:
            self.job.load(conn, p.evaluation)
            if len(p.shards) > 1:
                self.job.load(conn, p.training)
            metrics = self.job.metrics(st, final, p)
        else:
            metrics = self.scored[1]
        metrics = {**metrics, **self.compared(conn, st, final, p)}
        self.check_behind(metrics)
        version = len(st.models) + 1
        bundle = self.write_version(conn, version, p, final)
        body: dict[str, Any] = {
            "version": version,
            **self.recipe,
            "manifest": {"root": manifest_root(p.training), "count": len(p.training)},
            "evaluation": {"root": manifest_root(p.evaluation), "count": len(p.evaluation)},
            "shards": [s.logged() for s in final],
            "artifact": {
                "format": ARTIFACT_FORMAT,
                "sha256": hashlib.sha256(bundle).hexdigest(),
                "bytes": len(bundle),
            },
            "metrics": metrics,
            "libraries": library_versions(),
        }
        if st.latest_model is not None:
            body["previous"] = st.latest_model.version
        return body

    def compared(self, conn: Connection, st: State, final: list[_Shard], p: Pool) -> dict[str, str]:
        """This and the previous version scored on the evaluation items both were."""
        latest = st.latest_model
        if latest is None:
            return {}
        before = set(artifacts.version_items(conn, latest.version, evaluation=True))
        common = [i for i in p.evaluation if i in before]
        # Under the append lock: read through this transaction, not through the hub (whose
        # state and reads would wait for the lock this run holds).
        body = self.hub.store.leaves(conn, latest.entry, latest.entry + 1)[0].body
        old = _model_of(conn, st, body)
        new = ShardedModel([s.model for s in final], self.job.task.labels or None)
        return scoring.compared_metrics(self.job, st, new, old, common)

    def check_behind(self, metrics: dict[str, str]) -> None:
        """Warn (in the result) or refuse when SISA costs more than the charter allows."""
        cfg = self.job.charter.training
        behind = scoring.behind_unsharded(metrics)
        if behind is None or behind <= cfg.behind_unsharded_pct:
            return
        why = (
            f"the sharded model is {behind:.1f} points behind one unsharded model on the same "
            f"rows (the charter allows {cfg.behind_unsharded_pct}): fewer shards "
            "(training.shards, training.min_rows_per_shard) would close the gap"
        )
        if cfg.when_behind == "refuse":
            raise Conflict(why)
        self.warnings.append(why)

    def write_version(self, conn: Connection, version: int, p: Pool, final: list[_Shard]) -> bytes:
        """Write the shard blobs and the version's item lists; return the artifact."""
        for s in final:
            if s.blob is not None:
                artifacts.put_blob(conn, s.sha256, s.blob)
        rows = [{"version": version, "item": i, "shard": s.index} for s in final for i in s.ids]
        # The evaluation set too: valuing this version later needs it, and the pool will
        # have moved on by then.
        rows += [{"version": version, "item": i, "shard": EVALUATION_SHARD} for i in p.evaluation]
        artifacts.add_version_items(conn, rows)
        fresh = {s.sha256: s.blob for s in final if s.blob is not None}
        return artifact_bundle(
            self.job.charter,
            [s.sha256 for s in final],
            lambda h: fresh.get(h) or artifacts.blob(conn, h),
        )


def _check_pool(charter: Charter, p: Pool) -> None:
    need = charter.training.evaluation.min_items
    if not p.training:
        raise Conflict(
            "there is no accepted data to train on: items must be accepted by review, with "
            "consent to train, and not in the evaluation set"
        )
    if len(p.evaluation) < need:
        raise Conflict(
            f"the evaluation set holds {len(p.evaluation)} items and the charter needs "
            f"{need} (training.evaluation.min_items); accept more data, or raise "
            "training.evaluation.holdout_pct"
        )


def artifact_bundle(
    charter: Charter, shard_hashes: Sequence[str], get: Callable[[str], bytes]
) -> bytes:
    """The version's artifact as one file: a zip, byte-for-byte deterministic, holding
    ``model.json`` (format, task, labels, shard hashes) and one skops file per shard. Its
    SHA-256 is what the log records; ``commonweal model export`` writes the same bytes."""
    assert charter.task is not None
    descriptor = {
        "format": ARTIFACT_FORMAT,
        "task": charter.task.kind,
        "labels": charter.task.labels,
        "shards": list(shard_hashes),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        _add_to_zip(zf, "model.json", canonical(descriptor))
        for n, h in enumerate(shard_hashes):
            if h:
                _add_to_zip(zf, f"shards/{n:03d}.skops", get(h))
    return buf.getvalue()


def _add_to_zip(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def load_model(hub: Hub, version: int) -> tuple[ShardedModel, dict[str, Any]]:
    """A registered version's model, each shard checked against the hash the log holds."""
    state = hub.state
    mv = state.models.get(version)
    if mv is None:
        raise NotFound(f"there is no model version {version}; see `commonweal models`")
    body = hub.log.entries(mv.entry, mv.entry + 1)[0].body
    with hub.read() as conn:
        return _model_of(conn, state, body), body


def _model_of(conn: Connection, state: State, body: dict[str, Any]) -> ShardedModel:
    """The model a ``model.version`` body names, from the stored shard blobs."""
    assert state.charter is not None and state.charter.task is not None
    shards = [
        load_shard(artifacts.blob(conn, s["sha256"])) if s["sha256"] else None
        for s in body["shards"]
    ]
    return ShardedModel(shards, state.charter.task.labels or None)


def check_artifact(hub: Hub, conn: Connection, state: State, version: int) -> None:
    """Recompute the SHA-256 of each stored shard of ``version`` and of the artifact they
    make, against what its ``model.version`` entry records (VerificationFailed naming the
    version and shard when a stored byte changed): what ``ledger verify`` runs, so an
    altered model is caught before anyone exports or serves it."""
    assert state.charter is not None
    mv = state.models[version]
    body = hub.store.leaves(conn, mv.entry, mv.entry + 1)[0].body
    for n, shard in enumerate(body["shards"]):
        # An empty central shard stores nothing (sha256 ""); a federated version's one
        # shard is stored even when it started from zeros (count 0 central items).
        if not shard["sha256"]:
            continue
        try:
            artifacts.blob(conn, shard["sha256"])
        except Conflict as exc:
            raise VerificationFailed(
                f"model version {version}, shard {n}: {exc.message} logged at entry "
                f"{mv.entry}; the stored model was altered",
                index=mv.entry,
            ) from None
    data = artifact_bundle(
        state.charter, [s["sha256"] for s in body["shards"]], lambda h: artifacts.blob(conn, h)
    )
    if hashlib.sha256(data).hexdigest() != mv.artifact_sha256:
        raise VerificationFailed(
            f"model version {version}: the artifact rebuilt from the stored shards does not "
            f"hash to the SHA-256 logged at entry {mv.entry}; the stored model was altered",
            index=mv.entry,
        )


def export_artifact(hub: Hub, version: str | int) -> tuple[int, bytes]:
    """The artifact bundle of a version, rebuilt from the stored shard blobs: the same
    bytes whose SHA-256 the ``model.version`` event records."""
    v = resolve_version(hub.state, version)
    state = hub.state
    assert state.charter is not None
    mv = state.models[v]
    body = hub.log.entries(mv.entry, mv.entry + 1)[0].body
    with hub.read() as conn:
        data = artifact_bundle(
            state.charter, [s["sha256"] for s in body["shards"]], lambda h: artifacts.blob(conn, h)
        )
    return v, data
