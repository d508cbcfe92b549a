"""``hub.ownership``: what contributions were worth and who owns the community —
valuations, reward epochs, the cap table, payouts, statements and on-chain claims."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from commonweal.community import views
from commonweal.hub import rewards
from commonweal.store import values as stored

if TYPE_CHECKING:
    from commonweal.community.state import ValuationRecord
    from commonweal.hub.core import Hub
    from commonweal.hub.valuation import Progress

__all__ = ["OwnershipArea"]


class OwnershipArea:
    """Valuations, shares and payouts (``hub.ownership``)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def value(
        self, *, version: str | int = "latest", progress: Progress | None = None
    ) -> dict[str, Any]:
        """Value every item of a version, log the valuation, and return the report."""
        from commonweal.hub.valuation import value  # scikit-learn: loads on first use

        return value(self._hub, version=version, progress=progress)

    def stored_values(
        self, valuation: int, record: ValuationRecord | None = None
    ) -> list[tuple[str, str, str]]:
        """A logged valuation's ``(item, member, value)`` rows, checked against its root."""
        from commonweal.hub.valuation import stored_values

        return stored_values(self._hub, valuation, record)

    def latest_valuation(self) -> int | None:
        """The number of the newest logged valuation, or None before the first."""
        valuations = self._hub.state.valuations
        return max(valuations) if valuations else None

    def item_values(self, items: Sequence[str], valuation: int | None = None) -> dict[str, float]:
        """``items``' values in a valuation (default: the newest); items it did not value
        are absent. For showing a page of items: the rows are read by key, not checked
        against the logged root (``stored_values`` does that for a whole valuation)."""
        valuation = valuation or self.latest_valuation()
        if valuation is None or not items:
            return {}
        with self._hub.read() as conn:
            found = stored.item_values_of(conn, valuation, items)
        return {i: float(v) for i, v in found.items()}

    def member_values(self, member: str, valuation: int | None = None) -> list[float]:
        """Every value a valuation (default: the newest) credited to ``member``."""
        valuation = valuation or self.latest_valuation()
        if valuation is None:
            return []
        with self._hub.read() as conn:
            return [float(v) for v in stored.member_values_of(conn, valuation, member)]

    def check_valuation(self, record: ValuationRecord) -> None:
        """What ``ledger verify`` checks of a stored valuation (VerificationFailed if not)."""
        from commonweal.hub.valuation import check_valuation

        check_valuation(self._hub, record)

    def close_epoch(self) -> dict[str, Any]:
        """Close the next reward epoch on the newest valuation; return what was minted."""
        return rewards.close_epoch(self._hub)

    def pay_out(self, amount: int | None = None) -> dict[str, Any]:
        """Pay ``amount`` treasury credits (default: all of it) to shareholders pro rata."""
        return rewards.pay_out(self._hub, amount)

    def export_claims(self, epoch: int) -> dict[str, Any]:
        """An epoch's shares as MerkleDistributor claims; the root is logged once."""
        return rewards.export_claims(self._hub, epoch)

    def cap_table(self) -> dict[str, Any]:
        """Who owns the community: shares held, percent, and how they were earned."""
        return views.cap_table(self._hub.state)

    def statement(self, member: str) -> dict[str, Any]:
        """One member's account: holdings, each epoch's awards, each payout to them."""
        return views.statement(self._hub.state, member)
