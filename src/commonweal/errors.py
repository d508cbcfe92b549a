"""Every error Commonweal raises, in one tree.

The HTTP API turns each into one JSON shape, ``{"error": {"code", "message", "detail"}}``
with the class's status; the SDK turns that shape back into the same class; the CLI prints
the message on one line and exits non-zero. So a caller handles the same exception whether
the hub is in-process or across the network.

    CommonwealError
    ├── InvalidInput            400  malformed JSON, a missing or wrong field, a bad value
    │   └── CharterInvalid      400  a charter field is missing or out of range
    ├── Unauthorized            401  no credentials, or credentials the hub does not know
    │   └── BadSignature        401  the signature does not match the event and its actor
    ├── Forbidden               403  the rules refuse this actor this act
    │   └── UnknownMember       403  the actor is not a member of the community
    ├── NotFound                404  no such entry, proof range, member or hub
    ├── Conflict                409  the act contradicts what the log already holds
    │   └── Replay              409  this actor already used this nonce
    ├── TooLarge                413  a body or batch over the hub's limits
    ├── VerificationFailed      422  a log, proof or checkpoint does not verify
    ├── QuotaExceeded           429  a consumer's API key has used its calls for the day
    │   └── RateLimited         429  too many requests or events a minute: retry later
    └── HubError                500  the hub's own state is broken (storage, configuration)
        └── ConfigError         500  a hub directory or setting is missing or wrong
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadSignature",
    "CharterInvalid",
    "CommonwealError",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "HubError",
    "InvalidInput",
    "NotFound",
    "QuotaExceeded",
    "RateLimited",
    "Replay",
    "TooLarge",
    "Unauthorized",
    "UnknownMember",
    "VerificationFailed",
    "error_class",
]


class CommonwealError(Exception):
    """Base class. ``code`` is stable and machine-readable; ``message`` is for people."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        """The error as the API sends it: ``{"error": {"code", "message", "detail"}}``."""
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}


class InvalidInput(CommonwealError):
    """Malformed JSON, a missing or wrong field, a bad value."""

    code = "invalid_input"
    status = 400


class CharterInvalid(InvalidInput):
    """A charter field is missing or out of range."""

    code = "charter_invalid"


class Unauthorized(CommonwealError):
    """No credentials, or credentials the hub does not know."""

    code = "unauthorized"
    status = 401


class BadSignature(Unauthorized):
    """The signature does not match the event and its actor.

    A 401 like a request signature that does not verify: an event's signature is its
    actor's credential for the act, and the hub cannot tell a forged act from a garbled one.
    """

    code = "bad_signature"


class Forbidden(CommonwealError):
    """The rules refuse this actor this act."""

    code = "forbidden"
    status = 403


class UnknownMember(Forbidden):
    """The actor is not a member of the community."""

    code = "unknown_member"


class NotFound(CommonwealError):
    """No such entry, proof range, member or hub."""

    code = "not_found"
    status = 404


class Conflict(CommonwealError):
    """The act contradicts what the log already holds."""

    code = "conflict"
    status = 409


class Replay(Conflict):
    """This actor already used this nonce."""

    code = "replay"


class TooLarge(CommonwealError):
    """A body or batch over the hub's limits."""

    code = "too_large"
    status = 413


class QuotaExceeded(CommonwealError):
    """A consumer's API key has used its calls for the day (or a member their tries).

    ``retry_after`` is how many seconds until the limit resets: the API sends it as the
    ``Retry-After`` header and in ``detail``."""

    code = "quota_exceeded"
    status = 429

    def __init__(self, message: str, *, retry_after: int | None = None, detail: Any = None) -> None:
        if detail is None and retry_after is not None:
            detail = {"retry_after": retry_after}
        super().__init__(message, detail=detail)
        if retry_after is None and isinstance(detail, dict):
            given = detail.get("retry_after")
            retry_after = given if isinstance(given, int) else None
        self.retry_after = retry_after


class RateLimited(QuotaExceeded):
    """Too many requests from one address, or events from one member, in a minute: the
    same request succeeds after ``retry_after`` seconds."""

    code = "rate_limited"


class HubError(CommonwealError):
    """The hub's own state is broken (storage, configuration)."""

    code = "hub_error"
    status = 500


class ConfigError(HubError):
    """A hub directory or setting is missing or wrong."""

    code = "config_error"


class VerificationFailed(CommonwealError):
    """A log, proof or checkpoint does not verify. ``index`` names the first bad entry."""

    code = "verification_failed"
    status = 422

    def __init__(self, message: str, *, index: int | None = None, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.index = index


def _all_subclasses(cls: type[CommonwealError]) -> list[type[CommonwealError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


_BY_CODE: dict[str, type[CommonwealError]] = {c.code: c for c in _all_subclasses(CommonwealError)}


def error_class(code: str) -> type[CommonwealError]:
    """The class for a wire ``code``; unknown codes map to the base class."""
    return _BY_CODE.get(code, CommonwealError)
