"""``hub.models``: the community's model — training, versions, lineage, cards, serving.

Training, valuation-grade array loading and prediction need scikit-learn, which takes about
a second to import; the services that use it load on first use, so commands that only read
the log stay quick.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from commonweal.community.state import ModelVersion, State
from commonweal.community.views import resolve_version
from commonweal.errors import Forbidden
from commonweal.hub import lineage
from commonweal.ledger.canonical import parse

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from commonweal.hub.core import Hub
    from commonweal.hub.serving import Biller, Meter, ModelCache, TryLimits
    from commonweal.hub.training import Progress

__all__ = ["TRY_INPUTS", "TRY_PER_DAY", "TRY_PER_MINUTE", "ModelsArea"]

# Members try their model for free (``try_predict``): enough to get a feel for it from a
# page, not enough to run an application on instead of the metered API keys, whose
# revenue the owners share. Inputs per call, and per member a minute and a day (UTC).
TRY_INPUTS = 10
TRY_PER_MINUTE = 30
TRY_PER_DAY = 500

# Versions whose checked item lists the pages keep (a version's list never changes).
KEPT_MANIFESTS = 8


class ModelsArea:
    """Model versions and everything about them (``hub.models``)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._meter: Meter | None = None
        self._cache: ModelCache | None = None
        self._tries: TryLimits | None = None
        # version -> (manifest root, ids): lists checked once against the log, for pages.
        self._manifests: OrderedDict[int, tuple[str, list[str]]] = OrderedDict()
        self._manifests_lock = threading.Lock()

    # -- training ------------------------------------------------------------------------

    @property
    def try_limits(self) -> dict[str, int]:
        """What a member may try for free: inputs per call, calls per minute and per day."""
        return {"inputs": TRY_INPUTS, "per_minute": TRY_PER_MINUTE, "per_day": TRY_PER_DAY}

    def train(
        self, *, incremental: bool = False, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Train and register a new model version (see ``hub.training``)."""
        from commonweal.hub.training import train

        return train(self._hub, incremental=incremental, progress=progress)

    # -- versions ------------------------------------------------------------------------

    def versions(self) -> list[dict[str, Any]]:
        """Every model version, oldest first, metrics as numbers."""
        return [_model_row(m) for m in sorted(self._hub.state.models.values())]

    def resolve(self, version: str | int) -> int:
        """A version number from a number or ``latest`` (NotFound if there is none)."""
        return resolve_version(self._hub.state, version)

    def version(self, version: str | int) -> dict[str, Any]:
        """A version's projection row and the whole ``model.version`` event body."""
        mv = self._hub.state.models[self.resolve(version)]
        body = self._hub.log.entries(mv.entry, mv.entry + 1)[0].body
        return {**_model_row(mv), "event": body}

    def check_artifact(self, conn: Connection, state: State, version: int) -> None:
        """What ``ledger verify`` checks of a stored model: each shard's bytes and the
        artifact they make hash to what the log recorded (VerificationFailed if not)."""
        from commonweal.hub.training import check_artifact

        check_artifact(self._hub, conn, state, version)

    # -- lineage -------------------------------------------------------------------------

    def manifest_ids(self, version: int) -> list[str]:
        """The sorted ids behind ``version``, checked against the root in the log."""
        return lineage.manifest_ids(self._hub, version)

    def evaluation_ids(self, version: int) -> list[str]:
        """The sorted ids of ``version``'s evaluation set, checked against the log."""
        return lineage.evaluation_ids(self._hub, version)

    def kept_manifest_ids(self, version: int) -> list[str]:
        """``manifest_ids``, checked against the log once and then kept (for the few most
        recent versions asked): a version's item list never changes, and pages and the
        lineage route should not rehash tens of thousands of ids on every view. ``verify``
        uses ``manifest_ids``, which always reads and checks the store."""
        root = (
            self._hub.state.models[version].manifest_root
            if version in self._hub.state.models
            else None
        )
        with self._manifests_lock:
            kept = self._manifests.get(version)
            if kept is not None and kept[0] == root:
                self._manifests.move_to_end(version)
                return list(kept[1])  # a copy: the kept list must not change
        ids = self.manifest_ids(version)
        assert root is not None  # manifest_ids raised NotFound otherwise
        with self._manifests_lock:
            self._manifests[version] = (root, ids)
            while len(self._manifests) > KEPT_MANIFESTS:
                self._manifests.popitem(last=False)
        return list(ids)

    def manifest_file(self, version: str | int) -> bytes:
        """The version's manifest as a file (canonical JSON of its sorted item ids)."""
        v = self.resolve(version)
        return lineage.manifest_file(v, self.manifest_ids(v))

    def lineage(self, version: str | int) -> dict[str, Any]:
        """The items behind a version and how many each member gave."""
        return lineage.model_lineage(self._hub, self.resolve(version), self.kept_manifest_ids)

    def lineage_changes(self, version: str | int) -> dict[str, Any]:
        """Per member, the items behind a version and those added and removed since the
        previous one; and which removed items were withdrawn."""
        return lineage.lineage_changes(self._hub, self.resolve(version), self.kept_manifest_ids)

    def item_lineage(self, item: str) -> dict[str, Any]:
        """The versions that trained on ``item`` (and in which shard)."""
        return lineage.item_lineage(self._hub, item)

    def prove_item(self, item: str, version: str | int) -> dict[str, Any]:
        """Proof that ``item`` is, or is not, in a version's manifest."""
        return lineage.prove_item(self._hub, item, self.resolve(version))

    def card_info(self, version: str | int) -> dict[str, Any]:
        """Everything a model card and datasheet say about a version, from the log."""
        return lineage.card_info(self._hub, self.resolve(version), self.kept_manifest_ids)

    def federated(self, version: str | int) -> dict[str, Any] | None:
        """How a version trained on members' nodes: its run, start, rounds and nodes (None
        for a version the hub trained centrally)."""
        return lineage.federated_info(self._hub, self.resolve(version))

    # -- artifacts -----------------------------------------------------------------------

    def export_artifact(self, version: str | int) -> tuple[int, bytes]:
        """A version's artifact (the zip whose SHA-256 the log records), for the hub's
        operator; the public route serves it only once a vote released the weights."""
        from commonweal.hub.training import export_artifact

        return export_artifact(self._hub, version)

    def released_artifact(self, version: str | int) -> tuple[ModelVersion, bytes]:
        """A version's artifact if members voted to publish its weights, else Forbidden."""
        v = self.resolve(version)
        mv = self._hub.state.models[v]
        if mv.weights != "public":
            raise Forbidden(
                f"version {v}'s weights are not published; members can vote to release them "
                "(a model.release proposal)"
            )
        return mv, self.export_artifact(v)[1]

    # -- serving -------------------------------------------------------------------------

    @property
    def meter(self) -> Meter:
        """Calls per API key and day, counted in the database within each key's quota."""
        if self._meter is None:
            from commonweal.hub.serving import Meter

            self._meter = Meter(self._hub)
        return self._meter

    @property
    def cache(self) -> ModelCache:
        """Loaded versions, most recently used kept."""
        if self._cache is None:
            from commonweal.hub.serving import ModelCache

            self._cache = ModelCache(self._hub)
        return self._cache

    def predict(
        self, version: str | int, inputs: Any, *, api_key: str | None, metered: bool = True
    ) -> dict[str, Any]:
        """Predict with a version, one metered call per input (see ``hub.serving``)."""
        from commonweal.hub.serving import predict

        return predict(self._hub, version, inputs, api_key=api_key, metered=metered)

    @property
    def tries(self) -> TryLimits:
        """How many unbilled predictions each member has made lately."""
        if self._tries is None:
            from commonweal.hub.serving import TryLimits

            self._tries = TryLimits(self._hub)
        return self._tries

    def try_predict(self, member: str, version: str | int, inputs: Any) -> dict[str, Any]:
        """A member trying the community's model: not metered or billed (members own it),
        but limited per member (``TRY_*``) so that it is no free API."""
        from commonweal.hub.serving import try_predict

        return try_predict(self._hub, member, version, inputs)

    def close_revenue(self) -> dict[str, Any] | None:
        """Bill every unbilled call in one ``revenue.record``; None if there were none."""
        from commonweal.hub.serving import close_revenue

        return close_revenue(self._hub)

    def biller(self) -> Biller:
        """The serving hub's billing thread (not started): logs revenue every
        ``serving.revenue_period_seconds``."""
        from commonweal.hub.serving import Biller

        return Biller(self._hub)

    def close(self) -> None:
        """Nothing to flush: calls are counted in the database as they are served."""


def _model_row(m: ModelVersion) -> dict[str, Any]:
    return {**m.to_json(), "metrics": {k: float(v) for k, v in parse(m.metrics).items()}}
