"""``hub.ownership``: what contributions were worth and who owns the community —
valuations, reward epochs, the cap table, payouts, statements and on-chain claims."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from commonweal.community import views
from commonweal.hub import rewards

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
