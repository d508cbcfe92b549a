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

import numpy as np
from sqlalchemy import Connection, insert, select

from commonweal import vault
from commonweal.community.charter import Charter
from commonweal.community.models import Pool, manifest_root, pool, trainer_name
from commonweal.community.state import State
from commonweal.errors import Conflict, InvalidInput
from commonweal.features import featurize, targets
from commonweal.ledger.canonical import canonical
from commonweal.ledger.event import SignedEvent
from commonweal.ml.sisa import ShardedModel, dump_shard, fit_shard, load_shard
from commonweal.ml.trainers import Trainer, get_trainer
from commonweal.store.schema import model_blobs, model_items

if TYPE_CHECKING:
    from commonweal.hub import Hub

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
EVALUATION_SHARD = -1  # model_items rows of the version's evaluation set
_CHUNK = 500


def _quiet(what: str, done: int, total: int) -> None:
    pass


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("commonweal", "numpy", "scipy", "scikit-learn", "skops"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


@dataclass
class _Shard:
    index: int
    ids: tuple[str, ...]
    model: Any = None
    blob: bytes | None = None
    sha256: str = ""
    size: int = 0
    from_version: int | None = None

    def summary(self) -> dict[str, Any]:
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
class _Job:
    hub: Hub
    charter: Charter
    trainer: Trainer
    seed: int
    progress: Progress
    content: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> Any:
        assert self.charter.task is not None
        return self.charter.task

    def load(self, conn: Connection, ids: Sequence[str]) -> None:
        need = [i for i in ids if i not in self.content]
        for n in range(0, len(need), _CHUNK):
            self.content.update(vault.load_items(conn, need[n : n + _CHUNK]))

    def arrays(self, state: State, ids: Sequence[str]) -> tuple[Any, Any]:
        return _arrays(self.task, state, self.content, ids)

    def fit(self, state: State, shard: _Shard) -> None:
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
            shards=self.charter.training.shards,
        )
        shard.blob = dump_shard(shard.model)
        shard.sha256 = hashlib.sha256(shard.blob).hexdigest()
        shard.size = len(shard.blob)
        shard.from_version = None

    def metrics(self, state: State, shards: Sequence[_Shard], ids: Sequence[str]) -> dict[str, str]:
        model = ShardedModel([s.model for s in shards], self.task.labels or None)
        X, y = self.arrays(state, ids)
        return _metrics(self.task.kind, y, model, X)


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
            content.update(vault.load_items(conn, ids[n : n + _CHUNK]))
    return _arrays(state.charter.task, state, content, ids)


def _metrics(kind: str, y: Any, model: ShardedModel, X: Any) -> dict[str, str]:
    from sklearn import metrics as m

    if kind.endswith("regression"):
        pred = model.predict(X)
        return {
            "mae": f"{m.mean_absolute_error(y, pred):.6f}",
            "rmse": f"{float(np.sqrt(m.mean_squared_error(y, pred))):.6f}",
            "r2": f"{m.r2_score(y, pred):.6f}",
        }
    pred = model.predict(X).astype(str)
    return {
        "accuracy": f"{m.accuracy_score(y, pred):.6f}",
        "macro_f1": f"{m.f1_score(y, pred, average='macro', zero_division=0):.6f}",
    }


def _previous_shards(
    hub: Hub, state: State, recipe: dict[str, Any]
) -> dict[tuple[int, str], _Shard]:
    """The latest version's shard models, by (shard, items root), if its recipe is ours."""
    latest = state.latest_model
    if latest is None:
        return {}
    body = hub.entries(latest.entry, latest.entry + 1)[0].body
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
        return _train(hub, incremental=incremental, progress=progress)


def _train(hub: Hub, *, incremental: bool, progress: Progress | None) -> dict[str, Any]:
    say = progress or _quiet
    hub.refresh()  # another process may have appended (a withdrawal, say) since
    state = hub.state
    charter = state.charter
    if charter is None or charter.task is None:
        raise Conflict("this community has no task in its charter, so it has no model to train")
    cfg = charter.training
    try:
        trainer = get_trainer(trainer_name(charter), charter.task.kind)
    except ValueError as exc:
        raise InvalidInput(f"the charter's training.trainer: {exc}") from None
    job = _Job(hub, charter, trainer, cfg.seed, say)
    first = pool(state)
    _check_pool(charter, first)
    recipe = {
        "trainer": trainer.name,
        "params": trainer.logged_params(),
        "seed": cfg.seed,
    }
    reusable = _previous_shards(hub, state, recipe) if incremental else {}

    def build(
        conn: Connection, st: State, p: Pool, shards: dict[int, _Shard]
    ) -> tuple[list[_Shard], list[_Shard]]:
        """Shards for pool ``p``: kept from ``shards`` if unchanged, else reused or (the
        second list) still to be fitted; their content is loaded."""
        out: list[_Shard] = []
        todo: list[_Shard] = []
        for n, ids in enumerate(p.shards):
            have = shards.get(n)
            if have is not None and have.ids == ids:
                out.append(have)
                continue
            shard = _Shard(n, ids)
            old = reusable.get((n, manifest_root(ids))) if ids else None
            if old is not None:
                shard.sha256, shard.size, shard.from_version = (
                    old.sha256,
                    old.size,
                    old.from_version,
                )
                # Kept in memory too: the artifact bundle needs the bytes again.
                shard.blob = _blob(conn, old.sha256)
                shard.model = load_shard(shard.blob)
            else:
                todo.append(shard)
            out.append(shard)
        job.load(conn, [i for s in todo for i in s.ids])
        return out, todo

    def fit(st: State, todo: list[_Shard]) -> None:
        for k, shard in enumerate(todo):
            say("training shards", k, len(todo))
            job.fit(st, shard)
        say("training shards", len(todo), len(todo))

    with hub.read() as conn:
        built, todo = build(conn, state, first, {})
        job.load(conn, first.evaluation)
    fit(state, todo)  # no transaction open while fitting
    shards = {s.index: s for s in built}
    say("scoring", 0, 1)
    scored = (first, job.metrics(state, list(shards.values()), first.evaluation))
    say("scoring", 1, 1)
    logged: dict[str, Any] = {}

    def register(conn: Connection, st: State, index: int) -> list[SignedEvent]:
        # Under the append lock: the pool as it is now is the one the rules will check.
        p = pool(st)
        _check_pool(charter, p)
        final, todo = build(conn, st, p, shards)
        fit(st, todo)
        if p != scored[0]:
            job.load(conn, p.evaluation)
            metrics = job.metrics(st, final, p.evaluation)
        else:
            metrics = scored[1]
        for s in final:
            if s.blob is not None:
                _put_blob(conn, s.sha256, s.blob)
        rows = [
            {"version": len(st.models) + 1, "item": i, "shard": s.index}
            for s in final
            for i in s.ids
        ]
        # The evaluation set too (shard -1): valuing this version later needs it, and the
        # pool will have moved on by then.
        rows += [
            {"version": len(st.models) + 1, "item": i, "shard": EVALUATION_SHARD}
            for i in p.evaluation
        ]
        for n in range(0, len(rows), 5000):
            conn.execute(insert(model_items), rows[n : n + 5000])
        fresh = {s.sha256: s.blob for s in final if s.blob is not None}
        bundle = artifact_bundle(
            charter, [s.sha256 for s in final], lambda h: fresh.get(h) or _blob(conn, h)
        )
        latest = st.latest_model
        body: dict[str, Any] = {
            "version": len(st.models) + 1,
            **recipe,
            "manifest": {"root": manifest_root(p.training), "count": len(p.training)},
            "evaluation": {"root": manifest_root(p.evaluation), "count": len(p.evaluation)},
            "shards": [s.summary() for s in final],
            "artifact": {
                "format": ARTIFACT_FORMAT,
                "sha256": hashlib.sha256(bundle).hexdigest(),
                "bytes": len(bundle),
            },
            "metrics": metrics,
            "libraries": library_versions(),
        }
        if latest is not None:
            body["previous"] = latest.version
        logged.update(body)
        return [hub.sign("model.version", body)]

    done = hub.append([], after=register)
    retrained = [
        n for n, s in enumerate(logged["shards"]) if "from_version" not in s and s["count"]
    ]
    return {
        **logged,
        "entry": done.entries[-1]["index"],
        "size": done.size,
        "retrained": retrained,
        "reused": [n for n, s in enumerate(logged["shards"]) if "from_version" in s],
    }


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


def _put_blob(conn: Connection, sha256: str, data: bytes) -> None:
    if conn.execute(select(model_blobs.c.sha256).where(model_blobs.c.sha256 == sha256)).first():
        return
    conn.execute(insert(model_blobs).values(sha256=sha256, data=data))


def _blob(conn: Connection, sha256: str) -> bytes:
    row = conn.execute(select(model_blobs.c.data).where(model_blobs.c.sha256 == sha256)).first()
    if row is None:
        raise Conflict(f"the model artifact {sha256[:16]}… is missing from the store")
    data = bytes(row[0])
    if hashlib.sha256(data).hexdigest() != sha256:
        raise Conflict(f"the model artifact {sha256[:16]}… does not match its hash")
    return data


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
        _add(zf, "model.json", canonical(descriptor))
        for n, h in enumerate(shard_hashes):
            if h:
                _add(zf, f"shards/{n:03d}.skops", get(h))
    return buf.getvalue()


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def load_model(hub: Hub, version: int) -> tuple[ShardedModel, dict[str, Any]]:
    """A registered version's model, each shard checked against the hash the log holds."""
    state = hub.state
    mv = state.models.get(version)
    if mv is None:
        from commonweal.errors import NotFound

        raise NotFound(f"there is no model version {version}; see `commonweal models`")
    body = hub.entries(mv.entry, mv.entry + 1)[0].body
    assert state.charter is not None and state.charter.task is not None
    with hub.read() as conn:
        shards = [
            load_shard(_blob(conn, s["sha256"])) if s["count"] else None for s in body["shards"]
        ]
    return ShardedModel(shards, state.charter.task.labels or None), body


def export_artifact(hub: Hub, version: str | int) -> tuple[int, bytes]:
    """The artifact bundle of a version, rebuilt from the stored shard blobs: the same
    bytes whose SHA-256 the ``model.version`` event records."""
    from commonweal.serving import resolve_version

    v = resolve_version(hub, version)
    state = hub.state
    assert state.charter is not None
    mv = state.models[v]
    body = hub.entries(mv.entry, mv.entry + 1)[0].body
    with hub.read() as conn:
        data = artifact_bundle(
            state.charter, [s["sha256"] for s in body["shards"]], lambda h: _blob(conn, h)
        )
    return v, data
