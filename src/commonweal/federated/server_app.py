"""The ServerApp the hub's SuperLink runs for one federated training run.

It reads the run directory the hub prepared (``plan.json``, ``start.npz``, ``eval.npz``;
named by the run config ``run-dir``) and writes, after each round, ``round-<r>.json`` —
the body of that round's ``federated.round`` event without ``run`` — and at the end
``result.npz`` and ``done.json``. Aggregation is Flower's own strategy classes, subclassed
so that before Flower aggregates, every reply is copied and hashed as the node sent it
(Flower's trimmed mean pops the arrays out of the messages), mapped to its member (a node
the plan does not list is refused), screened (``ml.federated.screen``), and the accepted
updates valued (round Shapley over coalition utilities on the hub's evaluation set). The
rejected replies are dropped, then the strategy aggregates the rest. Nodes that fail (an
error reply: a crash, the node's gate refusing the bundle, a node gone) are left out and
noted in ``failures-<r>.json``; the round goes on while ``min_clients`` replied.

Without ``eval.npz`` (a community with no central evaluation set) the nodes evaluate
instead: the round's federated evaluate step sends, beside the aggregate, every coalition
model the valuation needs (:data:`CANDIDATES`), each node returns how many of its held-out
rows each one labels right (:data:`CORRECT`), and the pooled counts are the coalition
utilities and the round's ``metrics``. Flower runs the evaluate step after aggregation and
before ``evaluate_fn``, so ``round-<r>.json`` is still written once, complete, by
:meth:`FederatedRun.record_round`.

What a node reports about its held-out part is its own claim: a node can lie about its
counts (inflating the coalitions it is in, or deflating others), and robust aggregation,
which screens *updates*, does nothing for this path. Only accepted participants' counts are
pooled, so a node screened out this round has no say. And every node receives every
coalition's aggregate, single members' updates included: fine for the linear models of
image/tabular tasks among members who trust each other that far, but it is a disclosure the
hub's own evaluation set avoids.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.exception import InconsistentMessageReplies
from flwr.serverapp.strategy import (
    Bulyan,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    FedMedian,
    FedTrimmedAvg,
    Krum,
    MultiKrum,
    Strategy,
)

from commonweal.community.federated_math import epsilon_spent, needed_coalitions, round_shapley
from commonweal.errors import InvalidInput
from commonweal.ml.federated import (
    Params,
    accuracy,
    aggregate,
    coalition_models,
    coalition_utilities,
    distances_to_median,
    mix,
    pooled_accuracies,
    screen,
    softmax_train,
    update_sha256,
)

__all__ = [
    "CANDIDATES",
    "CORRECT",
    "FederatedRun",
    "app",
    "decimal_text",
    "fraction_text",
    "strategy_body",
]

# Record keys of the node-evaluation exchange (the ClientApp uses the same names): the
# coalition models sent with an evaluate message, as [W stack, b stack]; and the reply's one
# int array: correct held-out rows of the sent aggregate, then of each candidate in order.
CANDIDATES = "candidates"
CORRECT = "correct"

_BASES: dict[str, type[FedAvg]] = {
    "fedavg": FedAvg,
    "trimmed-mean": FedTrimmedAvg,
    "median": FedMedian,
    "krum": Krum,
    "multi-krum": MultiKrum,
    "bulyan": Bulyan,
}


def decimal_text(x: float, places: int = 6) -> str:
    """``x`` as a decimal string without exponent (the log holds no floats)."""
    q = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = format(q, "f")
    return "0" if text.lstrip("-").strip("0.") == "" else text


def fraction_text(x: Fraction, places: int = 6) -> str:
    """``x`` rounded half-even to ``places`` decimals, exactly (no float on the way), in
    :func:`decimal_text`'s format."""
    q = round(x * 10**places)  # Fraction rounding is exact and half-even
    if q == 0:
        return "0"
    return format(Decimal(q).scaleb(-places), "f")


def strategy_body(plan: dict[str, Any]) -> dict[str, Any]:
    """The ``strategy`` a round logs (the rules' ``community.federated.strategy_body``)."""
    params: dict[str, Any] = {"outlier_factor": plan["outlier_factor"]}
    if plan["aggregation"] == "trimmed-mean":
        params["trim_pct"] = plan["trim_pct"]
    elif plan["aggregation"] in ("krum", "multi-krum", "bulyan"):
        params["malicious"] = plan["malicious"]
    return {"aggregation": plan["aggregation"], "params": params}


def _params(record: ArrayRecord) -> Params:
    arrays = record.to_numpy_ndarrays()
    if len(arrays) != 2:
        raise InvalidInput(f"an update has {len(arrays)} arrays, not 2 (W, b)")
    return np.array(arrays[0], dtype=np.float64), np.array(arrays[1], dtype=np.float64)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{value!r} is not a count")
    return int(value)


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{value!r} is not a number")
    return float(value)


def _fits(aggregation: str, n: int, malicious: int, trim_pct: int) -> bool:
    """Whether Flower's rule is defined for ``n`` updates (else the numerics' fallback)."""
    if aggregation in ("krum", "multi-krum"):
        return n > 2 * malicious + 2
    if aggregation == "bulyan":
        return n >= 4 * malicious + 3
    if aggregation == "trimmed-mean":
        return int(trim_pct / 100 * n) > 0
    return True


class RoundFailed(RuntimeError):
    """A round cannot go on (too few replies); ``done.json`` says why."""


@dataclass(frozen=True)
class _Pending:
    """A round's valuation waiting for the nodes' held-out counts (no ``eval.npz``)."""

    players: list[str]
    permutations: int
    seed: int
    masks: list[int]
    models: Params


class FederatedRun:
    """One run: the plan, the evaluation set, and what each round saw."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.plan: dict[str, Any] = json.loads((run_dir / "plan.json").read_text())
        with np.load(run_dir / "start.npz") as z:
            self.start: Params = (np.array(z["W"], np.float64), np.array(z["b"], np.float64))
        self.eval: tuple[Any, Any] | None = None
        if (run_dir / "eval.npz").exists():
            with np.load(run_dir / "eval.npz") as z:
                self.eval = (np.array(z["X"], np.float64), np.array(z["y"], np.intp))
        # The central items the start version trained on (features, label indices):
        # the hub's own share of every round, so central and federated members make one
        # model. Absent for a run from zeros.
        self.central: tuple[Any, Any] | None = None
        if (run_dir / "central.npz").exists():
            with np.load(run_dir / "central.npz") as z:
                self.central = (np.array(z["X"], np.float64), np.array(z["y"], np.intp))
        self.central_update: dict[int, Params] = {}
        self.nodes: dict[int, str] = {int(k): v for k, v in self.plan["nodes"].items()}
        dp = self.plan.get("dp")
        self.dp: dict[str, Any] | None = dp if dp and dp.get("mode", "off") != "off" else None
        # DP rounds each member spent before this run (the hub's state), then this run's.
        self.dp_rounds: dict[str, int] = dict(self.plan.get("dp_rounds") or {})
        self.current: Params = self.start
        self.rows: dict[int, list[dict[str, Any]]] = {}
        self.valuation: dict[int, dict[str, Any]] = {}
        self.node_metrics: dict[int, dict[str, Any]] = {}
        self.failures: dict[int, dict[str, str]] = {}
        self.aggregates: dict[int, str] = {}
        self.pending: dict[int, _Pending] = {}
        self.pooled_metrics: dict[int, dict[str, str]] = {}

    # -- training replies -----------------------------------------------------------

    def audit(self, server_round: int, replies: Iterable[Message]) -> list[Message]:
        """Hash, attribute, screen and value one round's replies; the accepted ones."""
        failures: dict[str, str] = {}
        got: list[tuple[Message, str, Params, int]] = []
        for msg in replies:
            node = msg.metadata.src_node_id
            if msg.has_error():
                failures[str(node)] = str(msg.error.reason)
                continue
            member = self.member_of(node)
            if member is None:
                failures[str(node)] = "not an enrolled node of this community"
                continue
            try:
                params = _params(msg.content.array_records["arrays"])
                examples = _int(msg.content.metric_records["metrics"]["num-examples"])
            except (KeyError, ValueError, TypeError, InvalidInput) as exc:
                failures[str(node)] = f"malformed reply: {exc}"
                continue
            budget = Decimal(str(self.plan.get("epsilon_budget", "0")))
            if self.dp is not None and budget:
                spent = Decimal(self._epsilon(member, self.dp_rounds.get(member, 0) + 1))
                if spent > budget:
                    failures[str(node)] = f"epsilon {spent} would pass the budget {budget}"
                    continue
            if examples < 1:
                failures[str(node)] = "trained on no examples"
                continue
            got.append((msg, member, params, examples))
        self.failures[server_round] = failures
        (self.dir / f"failures-{server_round}.json").write_text(
            json.dumps(failures, indent=1, sort_keys=True)
        )
        if len(got) < self.plan["min_clients"]:
            raise RoundFailed(
                f"round {server_round}: {len(got)} node(s) replied, fewer than min_clients "
                f"{self.plan['min_clients']}"
                + (f"; failures: {'; '.join(failures.values())[:300]}" if failures else "")
            )
        got.sort(key=lambda g: g[1])
        updates = [g[2] for g in got]
        reasons = screen(updates, float(self.plan["outlier_factor"]))
        distances = distances_to_median(updates)
        rows: list[dict[str, Any]] = []
        for (msg, member, params, examples), reason, dist in zip(
            got, reasons, distances, strict=True
        ):
            row: dict[str, Any] = {
                "member": member,
                "node": str(msg.metadata.src_node_id),
                "update": update_sha256(params),
                "examples": examples,
                "status": "accepted" if reason is None else "rejected",
            }
            if reason is not None:
                row["reason"] = reason
            # A non-finite update has no distance; its reason says why it was rejected.
            row["distance"] = decimal_text(dist) if np.isfinite(dist) else "0"
            if self.dp is not None:
                n = self.dp_rounds.get(member, 0) + 1
                self.dp_rounds[member] = n
                row["epsilon"] = self._epsilon(member, n)
            rows.append(row)
        if len({r["member"] for r in rows}) != len(rows):
            raise RoundFailed(f"round {server_round}: one member answered from two nodes")
        kept = [g for g, reason in zip(got, reasons, strict=True) if reason is None]
        if not kept:
            raise RoundFailed(f"round {server_round}: every update was rejected")
        self.rows[server_round] = rows
        if self.central is not None:
            # The hub trains on its central items exactly as a node trains on its own.
            self.central_update[server_round] = softmax_train(
                self.current,
                self.central[0],
                self.central[1],
                epochs=int(self.plan["local_epochs"]),
                lr=float(self.plan["learning_rate"]),
                l2=float(self.plan["l2"]),
            )
        # A plan without valuation (the benchmark's switch, never the hub's) values nothing.
        if self.plan.get("valuation") is not None:
            self.valuation[server_round] = self._value(server_round, kept)
        return [g[0] for g in kept]

    def member_of(self, node: int) -> str | None:
        """The member whose node this is: from the plan, or — for a node registered after
        the run started (a member who enrolled meanwhile) — from the hub's registry of
        the nodes it registered, which follows the log (``plan.registry``)."""
        member = self.nodes.get(node)
        registry = self.plan.get("registry")
        if member is None and registry:
            try:
                doc = json.loads(Path(registry).read_text())
            except (OSError, ValueError):
                return None
            self.nodes.update({int(e["node"]): m for m, e in doc.items()})
            member = self.nodes.get(node)
        return member

    def _epsilon(self, member: str, rounds: int) -> str:
        assert self.dp is not None
        return epsilon_spent(rounds, str(self.dp["noise_multiplier"]), str(self.dp["delta"]))

    def with_central(
        self, server_round: int, arrays: ArrayRecord, kept: list[Message]
    ) -> ArrayRecord:
        """The nodes' aggregate mixed with the hub's central update, by example counts."""
        central = self.central_update.get(server_round)
        if central is None or self.central is None:
            return arrays
        examples = sum(_int(m.content.metric_records["metrics"]["num-examples"]) for m in kept)
        W, b = mix(_params(arrays), examples, central, len(self.central[1]))
        return ArrayRecord([W, b])

    def central_row(self, server_round: int) -> dict[str, Any] | None:
        central = self.central_update.get(server_round)
        if central is None or self.central is None:
            return None
        return {"examples": len(self.central[1]), "update": update_sha256(central)}

    def _value(
        self, server_round: int, kept: list[tuple[Message, str, Params, int]]
    ) -> dict[str, Any]:
        """Round Shapley of the accepted members: coalition utilities on the hub's
        evaluation set. Without one, the coalition models wait in :attr:`pending` for the
        nodes to score them (:meth:`node_evaluations`); until then, and for good if no node
        scores them, every utility is 0."""
        players = [g[1] for g in kept]
        cfg = self.plan["valuation"]
        n = len(players)
        permutations = 0 if n <= int(cfg["max_exact_players"]) else int(cfg["permutations"])
        seed = int(cfg["seed"])
        masks = needed_coalitions(n, permutations, seed)
        updates, examples = [g[2] for g in kept], [g[3] for g in kept]
        rule = {"trim_pct": int(self.plan["trim_pct"]), "malicious": int(self.plan["malicious"])}
        central = self._central_share(server_round)
        if self.eval is None:
            table = {str(m): "0" for m in sorted(masks)}
            if self.dp is not None:
                # The coalition models would show every node the others' updates (one
                # member's coalition is their raw, un-noised update): under differential
                # privacy nothing is sent, and these rounds value no one.
                return self._shapley(players, table, permutations, seed)
            models = coalition_models(
                self.plan["aggregation"],
                updates,
                examples,
                self.current,
                masks,
                **rule,
                central=central,
            )
            self.pending[server_round] = _Pending(players, permutations, seed, masks, models)
        else:
            utilities = coalition_utilities(
                self.plan["aggregation"],
                updates,
                examples,
                self.current,
                self.eval[0],
                self.eval[1],
                masks,
                **rule,
                central=central,
            )
            table = {str(m): decimal_text(u, 12) for m, u in sorted(utilities.items())}
        return self._shapley(players, table, permutations, seed)

    @staticmethod
    def _shapley(
        players: list[str], table: dict[str, str], permutations: int, seed: int
    ) -> dict[str, Any]:
        return {
            "method": "round-shapley",
            "players": players,
            "utilities": table,
            "permutations": permutations,
            "seed": seed,
            "values": round_shapley(players, table, permutations, seed),
        }

    def _central_share(self, server_round: int) -> tuple[Params, int] | None:
        central = self.central_update.get(server_round)
        if central is None or self.central is None:
            return None
        return central, len(self.central[1])

    def fallback(self, replies: list[Message]) -> ArrayRecord | None:
        """The numerics' aggregate when Flower's rule is undefined for so few updates."""
        n = len(replies)
        plan = self.plan
        if _fits(plan["aggregation"], n, int(plan["malicious"]), int(plan["trim_pct"])):
            return None
        params = aggregate(
            plan["aggregation"],
            [_params(m.content.array_records["arrays"]) for m in replies],
            [_int(m.content.metric_records["metrics"]["num-examples"]) for m in replies],
            trim_pct=int(plan["trim_pct"]),
            malicious=int(plan["malicious"]),
        )
        return ArrayRecord([params[0], params[1]])

    # -- evaluation and the round's record --------------------------------------------

    def candidates(self, server_round: int) -> ArrayRecord | None:
        """The coalition models the nodes score this round (None: the hub scores them)."""
        pending = self.pending.get(server_round)
        if pending is None:
            return None
        return ArrayRecord([pending.models[0], pending.models[1]])

    def node_evaluations(self, server_round: int, replies: list[Message]) -> None:
        """Each participant's own held-out accuracy; without ``eval.npz``, also the pooled
        coalition utilities and the round's metrics (see the module docstring: these are
        the nodes' claims)."""
        rows = self.rows.get(server_round, [])
        members = {r["member"] for r in rows}
        accepted = {r["member"] for r in rows if r["status"] == "accepted"}
        # Popped: the stacked coalition models are not needed past this round's evaluation.
        pending = self.pending.pop(server_round, None)
        out: dict[str, Any] = {}
        pooled: list[tuple[Any, int]] = []
        for msg in replies:
            member = self.member_of(msg.metadata.src_node_id)
            if msg.has_error() or member is None or member not in members:
                continue
            try:
                m = msg.content.metric_records["metrics"]
                examples = _int(m["num-examples"])
                metrics = {"accuracy": decimal_text(_float(m["accuracy"])), "examples": examples}
            except (KeyError, ValueError, TypeError, InvalidInput):
                continue  # a malformed reply says nothing about the node's data
            out[member] = metrics
            if pending is not None and member in accepted:
                counts = self._counts(msg, 1 + len(pending.masks))
                if counts is not None:
                    pooled.append((counts, examples))
        self.node_metrics[server_round] = dict(sorted(out.items()))
        if pending is not None:
            self._pool(server_round, pending, pooled)

    @staticmethod
    def _counts(msg: Message, width: int) -> Any:
        """The reply's correct counts, or None when it has none of the right shape."""
        try:
            arrays = msg.content.array_records[CORRECT].to_numpy_ndarrays()
        except (KeyError, ValueError, TypeError):
            return None
        if len(arrays) != 1 or arrays[0].shape != (width,):
            return None
        return arrays[0]

    def _pool(self, server_round: int, pending: _Pending, pooled: list[tuple[Any, int]]) -> None:
        """Coalition utilities from the accepted nodes' pooled held-out counts."""
        # Nodes whose evaluation failed (an error reply, a timeout, counts of the wrong
        # shape or out of range) are simply not counted: the utilities are over the rows of
        # the nodes that did answer. A reply that pooling refuses is dropped the same way.
        usable: list[tuple[Any, int]] = []
        for reply in pooled:
            try:
                pooled_accuracies([reply])
            except InvalidInput:
                continue
            usable.append(reply)
        shares = pooled_accuracies(usable)
        if shares is None:
            return  # nobody scored anything: the utilities stay "0", the metrics {}
        scored = zip(pending.masks, shares[1:], strict=True)
        table = {str(m): fraction_text(u, 12) for m, u in scored}
        self.valuation[server_round] = self._shapley(
            pending.players, table, pending.permutations, pending.seed
        )
        self.pooled_metrics[server_round] = {
            "accuracy": fraction_text(shares[0]),
            "examples": str(sum(e for _, e in usable)),
        }

    def record_round(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        """Write ``round-<r>.json`` (called after the round's evaluations)."""
        params = _params(arrays)
        metrics: dict[str, str] = {}
        if self.eval is not None:
            metrics["accuracy"] = decimal_text(accuracy(params, *self.eval))
        else:
            metrics = dict(self.pooled_metrics.get(server_round, {}))
        if server_round == 0:
            return MetricRecord({k: float(v) for k, v in metrics.items()})
        body: dict[str, Any] = {
            "round": server_round,
            "start": int(self.plan["start"]),
            "strategy": strategy_body(self.plan),
        }
        if self.dp is not None:
            body["dp"] = {
                k: self.dp[k] for k in ("mode", "noise_multiplier", "clipping_norm", "delta")
            }
        central = self.central_row(server_round)
        if central is not None:
            body["central"] = central
        body |= {
            "participants": self.rows[server_round],
            "aggregate": update_sha256(params),
            "metrics": metrics,
            "node_metrics": self.node_metrics.get(server_round, {}),
        }
        if server_round in self.valuation:
            body["valuation"] = self.valuation[server_round]
        (self.dir / f"round-{server_round}.json").write_text(json.dumps(body, indent=1))
        self.current = params
        return MetricRecord({k: float(v) for k, v in metrics.items()})

    # -- the run ------------------------------------------------------------------------

    def holdout_pct(self) -> int:
        """The part of its rows a node holds out: none when the hub scores every round on
        its own evaluation set, else the charter's ``local_holdout_pct``."""
        return 0 if self.eval is not None else int(self.plan.get("local_holdout_pct", 20))

    def strategy(self) -> Strategy:
        plan = self.plan
        name = plan["aggregation"]
        if name not in _BASES:
            raise InvalidInput(f"aggregation {name!r} is unknown")
        kw: dict[str, Any] = {
            "fraction_train": 1.0,
            # With the hub's own evaluation set, nodes need not score anything: each round
            # is then one process per node, not two, and nodes train on all their rows.
            "fraction_evaluate": 1.0 if self.eval is None else 0.0,
            "min_train_nodes": int(plan["min_clients"]),
            "min_evaluate_nodes": int(plan["min_clients"]),
            "min_available_nodes": int(plan["min_clients"]),
        }
        if name == "trimmed-mean":
            kw["beta"] = int(plan["trim_pct"]) / 100
        elif name in ("krum", "multi-krum", "bulyan"):
            kw["num_malicious_nodes"] = int(plan["malicious"])
        base = _BASES[name]
        if self.dp is None:
            plain: Strategy = _audited(base, self)(**kw)
            return plain
        wrapper: type[Strategy] = (
            DifferentialPrivacyServerSideFixedClipping
            if self.dp["mode"] == "server-fixed"
            else DifferentialPrivacyClientSideFixedClipping
        )
        sampled = int(plan["clients_per_round"]) or len(self.nodes)
        private: Strategy = _audited(wrapper, self)(
            base(**kw),
            noise_multiplier=float(self.dp["noise_multiplier"]),
            clipping_norm=float(self.dp["clipping_norm"]),
            num_sampled_clients=sampled,
        )
        return private

    def execute(self, grid: Grid) -> int:
        plan = self.plan
        features, labels = int(plan["features"]), len(plan["labels"])
        if self.start[0].shape != (labels, features) or self.start[1].shape != (labels,):
            raise InvalidInput(
                f"start.npz has W {self.start[0].shape}, b {self.start[1].shape}; the plan "
                f"says {labels} labels x {features} features"
            )
        strategy = self.strategy()
        config = ConfigRecord(
            {
                "local-epochs": int(plan["local_epochs"]),
                "learning-rate": float(plan["learning_rate"]),
                "l2": float(plan["l2"]),
                "holdout-pct": self.holdout_pct(),
            }
        )
        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord([self.start[0], self.start[1]]),
            num_rounds=int(plan["rounds"]),
            timeout=float(plan.get("round_timeout", 600)),
            train_config=config,
            evaluate_fn=self.record_round,
        )
        W, b = _params(result.arrays)
        np.savez(self.dir / "result.npz", W=W, b=b)
        return int(plan["rounds"])


def _audited(base: type[Any], run: FederatedRun) -> type[Any]:
    """``base`` (a Flower strategy or DP wrapper) with the run's audit before aggregation."""

    class Audited(base):  # type: ignore[misc]
        def configure_train(
            self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
        ) -> Iterable[Message]:
            # clients_per_round: Flower samples int(available x fraction), at least the
            # minimum; the fraction is set for this round's availability.
            want = int(run.plan["clients_per_round"])
            target: Any = getattr(self, "strategy", self)
            if want:
                online = len(list(grid.get_node_ids())) or 1
                target.fraction_train = min(1.0, (want + 0.5) / online)
            run.current = _params(arrays)
            return super().configure_train(server_round, arrays, config, grid)  # type: ignore[no-any-return]

        def aggregate_train(
            self, server_round: int, replies: Iterable[Message]
        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
            kept = run.audit(server_round, replies)
            target: Any = getattr(self, "strategy", self)
            if isinstance(target, MultiKrum):
                target.num_nodes_to_select = max(1, len(kept) - int(run.plan["malicious"]))
            if run.dp is None:
                fallback = run.fallback(kept)
                if fallback is not None:
                    return run.with_central(server_round, fallback, kept), None
            arrays, metrics = super().aggregate_train(server_round, kept)
            if arrays is not None:
                arrays = run.with_central(server_round, arrays, kept)
            return arrays, metrics

        def configure_evaluate(
            self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
        ) -> Iterable[Message]:
            messages = list(super().configure_evaluate(server_round, arrays, config, grid))
            candidates = run.candidates(server_round)
            if candidates is not None:
                # Flower's messages share one RecordDict; setting it on each is harmless.
                for msg in messages:
                    msg.content[CANDIDATES] = candidates
            return messages

        def aggregate_evaluate(
            self, server_round: int, replies: Iterable[Message]
        ) -> MetricRecord | None:
            listed = list(replies)
            run.node_evaluations(server_round, listed)
            ok = [m for m in listed if not m.has_error()]
            if not ok:
                return None
            try:
                return super().aggregate_evaluate(server_round, ok)  # type: ignore[no-any-return]
            except (InconsistentMessageReplies, ZeroDivisionError):
                # Flower's own average of the nodes' metrics is only logged; one odd reply,
                # or held-out parts all empty (local_holdout_pct = 0: a zero total weight),
                # must not end the run (the round's record comes from node_evaluations).
                return None

    Audited.__name__ = f"Audited{base.__name__}"
    return Audited


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the plan in the run config's ``run-dir``; ``done.json`` says how it ended."""
    run_dir = Path(str(context.run_config["run-dir"]))
    done = run_dir / "done.json"
    try:
        rounds = FederatedRun(run_dir).execute(grid)
    except Exception as exc:  # the run's end, whatever it was, is written for the hub
        message = (
            " ".join(f"{type(exc).__name__}: {exc}".split())
            if not isinstance(exc, RoundFailed | InvalidInput)
            else str(exc)
        )
        (run_dir / "error.txt").write_text(traceback.format_exc())
        done.write_text(json.dumps({"ok": False, "error": message}))
        return
    done.write_text(json.dumps({"rounds": rounds, "ok": True}))
