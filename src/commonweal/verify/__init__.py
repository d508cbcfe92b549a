"""What an outsider runs: verify a log from its bytes and the hub's key, or a hub's own
database, and remember each log's last checkpoint so a rewritten history is caught."""

from commonweal.verify.export import ExportReader
from commonweal.verify.hub import verify_hub
from commonweal.verify.log import VerifyReport, verify_chunk, verify_log
from commonweal.verify.witness import Witness

__all__ = ["ExportReader", "VerifyReport", "Witness", "verify_chunk", "verify_hub", "verify_log"]
