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
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.serverapp import Grid, ServerApp
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
    coalition_utilities,
    distances_to_median,
    screen,
    update_sha256,
)

__all__ = ["FederatedRun", "app", "decimal_text", "strategy_body"]

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
            member = self.nodes.get(node)
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
        # A plan without valuation (the benchmark's switch, never the hub's) values nothing.
        if self.plan.get("valuation") is not None:
            self.valuation[server_round] = self._value(kept)
        return [g[0] for g in kept]

    def _epsilon(self, member: str, rounds: int) -> str:
        assert self.dp is not None
        return epsilon_spent(rounds, str(self.dp["noise_multiplier"]), str(self.dp["delta"]))

    def _value(self, kept: list[tuple[Message, str, Params, int]]) -> dict[str, Any]:
        """Round Shapley of the accepted members: coalition utilities on the hub's
        evaluation set (all 0 without one: nothing to measure on)."""
        players = [g[1] for g in kept]
        cfg = self.plan["valuation"]
        n = len(players)
        permutations = 0 if n <= int(cfg["max_exact_players"]) else int(cfg["permutations"])
        seed = int(cfg["seed"])
        masks = needed_coalitions(n, permutations, seed)
        if self.eval is None:
            utilities = dict.fromkeys(masks, 0.0)
        else:
            utilities = coalition_utilities(
                self.plan["aggregation"],
                [g[2] for g in kept],
                [g[3] for g in kept],
                self.current,
                self.eval[0],
                self.eval[1],
                masks,
                trim_pct=int(self.plan["trim_pct"]),
                malicious=int(self.plan["malicious"]),
            )
        table = {str(m): decimal_text(u, 12) for m, u in sorted(utilities.items())}
        return {
            "method": "round-shapley",
            "players": players,
            "utilities": table,
            "permutations": permutations,
            "seed": seed,
            "values": round_shapley(players, table, permutations, seed),
        }

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

    def node_evaluations(self, server_round: int, replies: list[Message]) -> None:
        members = {r["member"] for r in self.rows.get(server_round, [])}
        out: dict[str, Any] = {}
        for msg in replies:
            member = self.nodes.get(msg.metadata.src_node_id)
            if msg.has_error() or member is None or member not in members:
                continue
            m = msg.content.metric_records["metrics"]
            out[member] = {
                "accuracy": decimal_text(_float(m["accuracy"])),
                "examples": _int(m["num-examples"]),
            }
        self.node_metrics[server_round] = dict(sorted(out.items()))

    def record_round(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        """Write ``round-<r>.json`` (called after the round's evaluations)."""
        params = _params(arrays)
        metrics: dict[str, str] = {}
        if self.eval is not None:
            metrics["accuracy"] = decimal_text(accuracy(params, *self.eval))
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

    def strategy(self) -> Strategy:
        plan = self.plan
        name = plan["aggregation"]
        if name not in _BASES:
            raise InvalidInput(f"aggregation {name!r} is unknown")
        kw: dict[str, Any] = {
            "fraction_train": 1.0,
            "fraction_evaluate": 1.0,
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
                    return fallback, None
            return super().aggregate_train(server_round, kept)  # type: ignore[no-any-return]

        def aggregate_evaluate(
            self, server_round: int, replies: Iterable[Message]
        ) -> MetricRecord | None:
            listed = list(replies)
            run.node_evaluations(server_round, listed)
            ok = [m for m in listed if not m.has_error()]
            if not ok:
                return None
            return super().aggregate_evaluate(server_round, ok)  # type: ignore[no-any-return]

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
