"""The hub: the community's application object and the one path by which anything is
written (``Hub``, in ``hub.core``), with one namespace per area of the community —
``hub.log``, ``hub.data``, ``hub.models``, ``hub.ownership``, ``hub.governance`` — and the
services behind them (training, serving, valuation, rewards, proposals, lineage,
screening) beside it in this package."""

from commonweal.hub.core import (
    CONFIG_FILE,
    FOUNDER_KEY_FILE,
    HUB_KEY_FILE,
    MAX_BATCH,
    Appended,
    Computing,
    Hub,
    Recorded,
    default_origin,
)

__all__ = [
    "CONFIG_FILE",
    "FOUNDER_KEY_FILE",
    "HUB_KEY_FILE",
    "MAX_BATCH",
    "Appended",
    "Computing",
    "Hub",
    "Recorded",
    "default_origin",
]
