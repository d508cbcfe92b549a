"""The rules for valuations: what each contribution to a model version was worth.

The hub values a version's items against the version's own evaluation set, with the method
and parameters the charter names, and logs the result: the method and parameters, the
evaluation set's root (it must be the version's), a Merkle root over every item's value
(the values themselves stay in the hub's store, and anyone can export them), and each
member's total. Reward epochs (``community.ownership``) pay the data pool on those totals.

What the rules cannot check is the values themselves — that needs the data. Anyone who
holds it recomputes them: knn-shapley is exact and deterministic; tmc-shapley is seeded.
``ledger verify`` on a hub checks the stored values against the logged root and totals.

Event kinds:

- ``valuation.record`` — by the hub: the valuation of one model version.
"""

from __future__ import annotations

import re
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from commonweal.community.charter import Charter
from commonweal.community.kinds import Changes, Touched, fields, need_hub
from commonweal.community.state import ModelVersion, State, ValuationRecord
from commonweal.errors import Conflict, InvalidInput, NotFound
from commonweal.ledger.canonical import canonical, canonical_str
from commonweal.ledger.merkle import tree_root

__all__ = [
    "KINDS",
    "VALUE_SCALE",
    "method_name",
    "method_params",
    "parse_value",
    "value_leaf",
    "values_root",
    "weight",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_VALUE = re.compile(r"-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?")

VALUE_SCALE = 10**12
"""Values become integer weights in units of 1e-12 of the utility (floored): the split of
a pool is integer arithmetic that every replay repeats exactly."""


def method_name(charter: Charter) -> str:
    """The valuation method the charter names ("auto" resolved for its task)."""
    method = charter.valuation.method
    if method != "auto":
        return method
    assert charter.task is not None
    return "tmc-shapley" if charter.task.kind.endswith("regression") else "knn-shapley"


def method_params(charter: Charter) -> dict[str, Any]:
    """The parameters a valuation under ``charter`` must log (and use)."""
    cfg = charter.valuation
    # How copies are treated is part of the method: the first contributed copy of an item
    # (same features and label; earliest batch, then id) is valued and later copies are
    # worth 0; evaluation items that copy a training item are left out of the scoring.
    copies = "first copy valued, later copies 0; evaluation copies of training items left out"
    if method_name(charter) == "knn-shapley":
        return {"k": cfg.k, "distance": "euclidean", "ties": "training order", "copies": copies}
    return {
        "players": "members",
        "permutations": cfg.permutations,
        "truncation_pct": cfg.truncation_pct,
        "seed": charter.training.seed,
        "copies": copies,
    }


def parse_value(text: str) -> Decimal:
    """A logged value (Python's shortest float repr, which the log keeps as a string)."""
    if not isinstance(text, str) or not _VALUE.fullmatch(text):
        raise ValueError(f"{text!r} is not a decimal value")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{text!r} is not a decimal value") from None


def weight(text: str) -> int:
    """A member's value as a data-pool weight: positive values in units of 1e-12, floored;
    zero for a value of zero or less (harm earns nothing, and takes nothing from others)."""
    v = parse_value(text)
    return int((v * VALUE_SCALE).to_integral_value(rounding=ROUND_FLOOR)) if v > 0 else 0


def value_leaf(item: str, member: str, value: str) -> bytes:
    """One leaf of a valuation's values tree: the canonical JSON of the item's value."""
    return canonical({"item": item, "member": member, "value": value})


def values_root(rows: list[tuple[str, str, str]]) -> str:
    """RFC 9162 root over ``(item, member, value)`` leaves sorted by item id, as hex."""
    return tree_root([value_leaf(*r) for r in sorted(rows)]).hex()


_BODY: dict[str, type] = {
    "valuation": int,
    "model": int,
    "method": str,
    "params": dict,
    "evaluation": dict,
    "values": dict,
    "total": str,
    "negative": int,
    "uncredited": int,
    "members": list,
}


def _valued_model(state: State, body: dict[str, Any], kind: str) -> tuple[ModelVersion, str]:
    """The model version being valued and the charter's method, once the valuation is the
    next one and logs the charter's method, parameters and the version's evaluation set."""
    charter = state.charter
    if charter is None or charter.task is None:
        raise Conflict(f"{kind}: this community has no task, so nothing to value")
    expected = len(state.valuations) + 1
    if body["valuation"] != expected:
        raise Conflict(f"{kind}: the next valuation is {expected}, not {body['valuation']}")
    model = state.models.get(body["model"])
    if model is None:
        raise NotFound(f"{kind}: there is no model version {body['model']}")
    method = method_name(charter)
    if body["method"] != method:
        raise InvalidInput(f"{kind}: the charter's valuation method is {method!r}")
    if body["params"] != method_params(charter):
        raise InvalidInput(
            f"{kind}: the parameters must be the charter's, {method_params(charter)}"
        )
    if body["evaluation"] != {"root": model.eval_root, "count": model.eval_items}:
        raise InvalidInput(
            f"{kind}: values are measured on version {model.version}'s evaluation set"
        )
    return model, method


def _check_values(body: dict[str, Any], model: ModelVersion, kind: str) -> None:
    """The values tree covers the version's items, and the total is a decimal value."""
    values = body["values"]
    if (
        set(values) != {"root", "count"}
        or not _HEX64.fullmatch(str(values["root"]))
        or values["count"] != model.items
    ):
        raise InvalidInput(
            f"{kind}: values must be {{root, count}} over the version's {model.items} items"
        )
    try:
        parse_value(body["total"])
    except ValueError as exc:
        raise InvalidInput(f"{kind}: total: {exc}") from None


def _check_member_row(state: State, m: Any, where: str, last: str) -> None:
    """One row of ``members``: a member after ``last``, its item counts and its value."""
    if not isinstance(m, dict) or set(m) != {"member", "items", "value", "negative"}:
        raise InvalidInput(f"{where} must be {{member, items, value, negative}}")
    key = m["member"]
    if not isinstance(key, str) or key not in state.members:
        raise InvalidInput(f"{where}: {key!r} is not a member")
    if key <= last:
        raise InvalidInput(f"{where}: members must be sorted and distinct")
    if type(m["items"]) is not int or m["items"] < 1:
        raise InvalidInput(f"{where}: items must be a positive integer")
    if type(m["negative"]) is not int or not 0 <= m["negative"] <= m["items"]:
        raise InvalidInput(f"{where}: negative must be an integer from 0 to items")
    try:
        parse_value(m["value"])
    except ValueError as exc:
        raise InvalidInput(f"{where}: value: {exc}") from None


def _member_totals(state: State, rows: list[Any], kind: str) -> tuple[dict[str, str], int, int]:
    """Each member's value, and the items and negative items the rows count in all."""
    totals: dict[str, str] = {}
    items = negative = 0
    last = ""
    for n, m in enumerate(rows):
        _check_member_row(state, m, f"{kind}: members[{n}]", last)
        last = m["member"]
        totals[last] = m["value"]
        items += m["items"]
        negative += m["negative"]
    return totals, items, negative


def _check_counts(
    body: dict[str, Any], model: ModelVersion, items: int, negative: int, kind: str
) -> None:
    """Credited and uncredited items make up the version; the negative count fits."""
    uncredited = body["uncredited"]
    if uncredited < 0 or items + uncredited != model.items:
        raise InvalidInput(
            f"{kind}: members' items and the uncredited ones add up to {items + uncredited}, "
            f"not the version's {model.items}"
        )
    if not negative <= body["negative"] <= negative + uncredited:
        raise InvalidInput(
            f"{kind}: negative must count the members' {negative} and no more "
            "than the uncredited items besides"
        )


def _record(state: State, leaf: Any) -> Changes:
    kind = leaf.kind
    body = fields(leaf, _BODY, {"details": dict})
    need_hub(state, leaf)
    if body.get("model") in state.fl_versions:
        return _federated_record(state, leaf, body)
    model, method = _valued_model(state, body, kind)
    _check_values(body, model, kind)
    totals, items, negative = _member_totals(state, body["members"], kind)
    _check_counts(body, model, items, negative, kind)
    record = ValuationRecord(
        body["valuation"],
        leaf.index,
        model.version,
        method,
        canonical_str(body["params"]),
        model.eval_root,
        body["values"]["root"],
        body["values"]["count"],
        body["negative"],
        body["total"],
        canonical_str(totals),
    )
    return {"valuations": state.valuations.set(record.valuation, record)}


def _federated_record(state: State, leaf: Any, body: dict[str, Any]) -> Changes:
    """A federated version's valuation: the members' per-round Shapley values summed,
    exactly as the rules recompute them from the logged rounds."""
    from commonweal.community.federated import valuation_body

    kind = leaf.kind
    expected = len(state.valuations) + 1
    if body["valuation"] != expected:
        raise Conflict(f"{kind}: the next valuation is {expected}, not {body['valuation']}")
    want = valuation_body(state, body["model"])
    got = {k: v for k, v in body.items() if k != "details"}
    if got != want:
        wrong = sorted(k for k in want if got.get(k) != want[k])
        raise InvalidInput(
            f"{kind}: a federated version's valuation differs from the rules' in {wrong} "
            "(community.federated.valuation_body)"
        )
    record = ValuationRecord(
        want["valuation"],
        leaf.index,
        want["model"],
        want["method"],
        canonical_str(want["params"]),
        want["evaluation"]["root"],
        want["values"]["root"],
        want["values"]["count"],
        want["negative"],
        want["total"],
        canonical_str({r["member"]: r["value"] for r in want["members"]}),
    )
    return {"valuations": state.valuations.set(record.valuation, record)}


KINDS: dict[str, tuple[Any, Any]] = {
    "valuation.record": (_record, lambda lf: Touched(valuations=(lf.body["valuation"],))),
}
