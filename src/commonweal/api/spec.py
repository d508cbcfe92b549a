"""The OpenAPI document, made to tell the truth about what the API sends and takes.

FastAPI derives most of the document from the routes; this module adds what it cannot see:

- one error schema (``Error``, the ``{"error": {"code", "message", "detail"}}`` every error
  leaves as) and :func:`errors`, which routes use to document each 4xx/5xx they can send;
- the request bodies, which routes read raw (``deps.read_json``) because a signature
  covers the exact bytes: each is declared with ``openapi_extra`` from a pydantic model here,
  as strict as the checks the hub runs before it verifies the signature;
- the security schemes: a member's signed request (``X-Commonweal-Auth``) and an API key;
- a prediction input's shape, which depends on the community's task (text, image or
  table), so it is filled in from the charter each time the document is asked for.

FastAPI's 422 "Validation Error" is removed: request validation errors leave as 400
(``api.errors``), and 422 is documented only where it is sent.

A new 4xx path: add its status to the route's ``errors(...)``. Every operation documents
429 with a required ``Retry-After`` (a served hub limits every address, and every 429 the
hub raises carries ``retry_after``); ``BODY`` adds 400 and 413.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from commonweal import errors as e
from commonweal.hub import Hub
from commonweal.wire import AUTH_HEADER, AUTH_WINDOW_SECONDS

if TYPE_CHECKING:  # the API reads the charter through the hub, not the rules' modules
    from commonweal.community.charter import Task

__all__ = [
    "BODY",
    "LIMITED",
    "SIGNED",
    "TRY_INPUTS",
    "VERSION",
    "Error",
    "api_key",
    "body",
    "errors",
    "install",
    "member_signature",
]

# -- errors -----------------------------------------------------------------------------


class ErrorFields(BaseModel):
    code: str = Field(description="Stable and machine-readable, e.g. `bad_signature`.")
    message: str = Field(description="One line for people: the bad value and what to do.")
    detail: Any = Field(default=None, description="More about the error, or null.")


class Error(BaseModel):
    """Every error the API sends: the status says the class, ``code`` the kind."""

    error: ErrorFields


# What each status means here, from the exception tree (``commonweal.errors``).
_MEANING: dict[int, str] = {
    400: "Malformed JSON, a missing or wrong field or parameter, a bad value.",
    401: "No credentials, credentials the hub does not know, or a signature (on the "
    "request or on a signed event) that does not verify.",
    403: "The rules refuse this actor this act (or the actor is not a member).",
    404: "No such entry, item, model version, proposal, member or range.",
    409: "The act contradicts what the log already holds (a replayed nonce, a second vote).",
    413: "A body, batch, image or input list over the hub's limits.",
    422: "A stored log, proof or checkpoint does not verify.",
    429: "Too many requests: a quota or rate limit. Retry after the time it names.",
    500: "The hub's own state is broken (storage, configuration).",
}
_CLASSES: dict[int, type[e.CommonwealError]] = {
    400: e.InvalidInput,
    401: e.Unauthorized,
    403: e.Forbidden,
    404: e.NotFound,
    409: e.Conflict,
    413: e.TooLarge,
    422: e.VerificationFailed,
    429: e.QuotaExceeded,
    500: e.HubError,
}
assert all(_CLASSES[s].status == s for s in _CLASSES), "errors.py and the spec disagree"

# Every operation may fail in the hub itself; any parameter may be refused (a NUL in any
# path or query parameter is 400 everywhere); and a served hub limits every address's
# requests (``limits.requests_per_ip_per_minute``).
ALWAYS = (400, 429, 500)
# An operation that takes a body: it may be too large, and writes are rate-limited.
BODY = (400, 413, 429)
# An operation with a rate limit or quota.
LIMITED = (429,)
# An operation that needs a member's signed request or an API key.
SIGNED = (401, 403)

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again (every 429 says).",
        "schema": {"type": "integer", "minimum": 1},
        "required": True,
    }
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def errors(*groups: int | tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can send the given error statuses (and 500):
    each with the ``Error`` schema, 429 with its ``Retry-After`` header."""
    statuses: set[int] = set(ALWAYS)
    for g in groups:
        statuses.update((g,) if isinstance(g, int) else g)
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(statuses):
        # Spelled out, not ``"model": Error``: a route with another response class (a zip,
        # a text) would otherwise give its errors that media type.
        out[status] = {
            "description": _MEANING[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        if status == 429:
            out[status]["headers"] = RETRY_AFTER
    return out


# -- security ---------------------------------------------------------------------------

member_signature = APIKeyHeader(
    name=AUTH_HEADER,
    scheme_name="memberSignature",
    description=(
        "An active member's signature of this very request: "
        "`v2.KEYID.UNIXMS.NONCE.SIGNATURE`, where SIGNATURE is base64 Ed25519 by the key "
        "KEYID over the lines `commonweal-request v2`, METHOD, TARGET (the path and query "
        "as sent), UNIXMS (the time in milliseconds), NONCE (16 random bytes, base64url) "
        "and the hex SHA-256 of the body bytes (of nothing, for none), joined by `\\n`. "
        f"Good for {AUTH_WINDOW_SECONDS} seconds either side of the hub's clock, and once: "
        "a signature the hub has seen is refused. The SDK, CLI and web app sign for you."
    ),
    auto_error=False,
)
api_key = HTTPBearer(
    scheme_name="apiKey",
    bearerFormat="cw_…",
    description="An API key the community issued (an `apikey.create` event); metered.",
    auto_error=False,
)

# -- request bodies ---------------------------------------------------------------------

KEY_ID = r"^[0-9a-f]{64}$"
ITEM_ID = r"^[0-9a-f]{32}$"
# 64 bytes of Ed25519 signature in standard base64.
SIGNATURE = r"^[A-Za-z0-9+/]{86}==$"
# RFC 3339 UTC as events carry it, and only real instants (the rules refuse any other): a
# year 0001-9999, a day its month has (29 February in leap years only), no leap second.
_YEAR = r"([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
_MONTH_DAY = (
    r"((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
)
_LEAP_DAY = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)-02-29"
TIME = (
    rf"^({_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z$"
)
NONCE = r"^[A-Za-z0-9_-]{16,64}$"
KIND = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
# A log origin (``ledger.event.ORIGIN``): what an event names as the hub it is signed for.
ORIGIN = r"^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$"
DECIMAL = r"^-?[0-9]{1,15}(\.[0-9]{1,15})?$"
# A model version: its number, or ``latest``.
VERSION = r"^(latest|[0-9]{1,18})$"
# The hub's limits (``hub.core.MAX_BATCH``, ``hub.models.TRY_INPUTS``), which the API may not
# import from behind the hub; a test pins them equal.
MAX_BATCH = 1000
TRY_INPUTS = 10

_Closed = ConfigDict(extra="forbid")

# What an event body's values are described as: strings, booleans and null. Bodies also hold
# integers (|n| < 2**53, written without a fraction or exponent: the hub refuses any JSON
# number with one, as canonical JSON here holds no floats) and nest lists and objects; a
# JSON Schema "integer" also admits 1.0, which the hub refuses, so this describes the
# bodies a schema can state exactly.
Scalar = str | bool | None


class Envelope(BaseModel):
    """An event as its actor signed it (RFC 8785 canonical bytes)."""

    model_config = _Closed
    v: Literal[2]
    hub: str = Field(
        pattern=ORIGIN,
        max_length=200,
        description="The origin line of the hub's log (`GET /api/v1/community`): the "
        "event is valid on this hub only. Events without it (version 1) are refused.",
    )
    kind: str = Field(pattern=KIND, description="What the event does, e.g. `vote.cast`.")
    actor: str = Field(pattern=KEY_ID, description="The signer's Ed25519 public key, hex.")
    time: str = Field(pattern=TIME, description="When the actor signed it, RFC 3339 UTC.")
    nonce: str = Field(pattern=NONCE, description="Unique per actor: stops replays.")
    body: dict[str, Scalar] = Field(description="The act; its fields depend on `kind`.")


class SignedEvent(BaseModel):
    """One signed event: ``sig`` is Ed25519 over the event's canonical bytes by ``actor``.
    An event whose signature does not verify is refused with 401."""

    model_config = _Closed
    event: Envelope
    sig: str = Field(pattern=SIGNATURE, description="Base64 Ed25519 signature (64 bytes).")


class EventBatch(BaseModel):
    """Signed events appended all or nothing."""

    model_config = _Closed
    events: list[SignedEvent] = Field(min_length=1, max_length=MAX_BATCH)


class ReviewEnvelope(Envelope):
    kind: Literal["review.submit"]


class SignedReview(SignedEvent):
    """A signed ``review.submit`` event."""

    event: ReviewEnvelope


class ReviewBatch(BaseModel):
    model_config = _Closed
    events: list[SignedReview] = Field(min_length=1, max_length=MAX_BATCH)


class ContributionEnvelope(Envelope):
    kind: Literal["contribution.submit"]


class ContentPart(BaseModel):
    """One item's content, sent beside the event that commits to it."""

    model_config = _Closed
    id: str = Field(pattern=ITEM_ID, description="The item id the event names.")
    salt: str = Field(description="Base64 salt of the commitment.")
    item: dict[str, Scalar] = Field(description="The item, as the community's task has it.")


class ContributionBatch(BaseModel):
    """A signed ``contribution.submit`` event and the content of the items it describes."""

    model_config = _Closed
    event: ContributionEnvelope
    sig: str = Field(pattern=SIGNATURE)
    content: list[ContentPart] = Field(max_length=MAX_BATCH)


class PredictionInput(BaseModel):
    """An item without its label; its fields depend on the community's task (filled in
    from the charter when the document is served)."""


class Predictions(BaseModel):
    """Inputs to predict."""

    model_config = _Closed
    inputs: list[PredictionInput] = Field(min_length=1)


class Webhook(BaseModel):
    """Where the hub POSTs news for the member."""

    model_config = _Closed
    url: str = Field(
        max_length=2000,
        # http(s), a host, no user or password, no spaces or control characters.
        pattern=r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[!-~]*)?$",
    )


# The models the document's components hold (FastAPI sees none of them in a route).
_COMPONENTS: tuple[type[BaseModel], ...] = (
    Error,
    SignedEvent,
    EventBatch,
    SignedReview,
    ReviewBatch,
    ContributionBatch,
    Predictions,
    Webhook,
)


def body(*models: type[BaseModel], max_items: int | None = None) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body of one of ``models`` (read raw by
    the route: the bytes a signature covers stay as sent)."""
    refs = [_ref(m.__name__) for m in models]
    schema: dict[str, Any] = refs[0] if len(refs) == 1 else {"oneOf": refs}
    if max_items is not None:  # a route with a lower limit than the model's
        schema = {
            "allOf": [
                schema,
                {"properties": {"inputs": {"type": "array", "maxItems": max_items}}},
            ]
        }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


# -- prediction inputs from the charter -------------------------------------------------


def input_schema(task: Task | None) -> dict[str, Any]:
    """What a prediction input is for ``task``: the fields ``items.check_input`` takes."""
    if task is None:
        return {"type": "object", "description": "This community has no task yet."}
    if task.kind == "text-classification":
        fields: dict[str, Any] = {"text": {"type": "string", "pattern": r"\S"}}
    elif task.kind == "image-classification":
        fields = {
            "image": {
                "type": "string",
                "contentEncoding": "base64",
                "contentMediaType": "image/png",
                "description": f"A PNG of {task.image_width}x{task.image_height} pixels, base64.",
            }
        }
    else:
        columns: dict[str, Any] = {}
        for col in task.columns:
            if col.type == "numeric":
                # A decimal string (a JSON number of the integer kind is taken too, but
                # "integer" in JSON Schema also admits 1.0, which the hub refuses).
                columns[col.name] = {
                    "type": "string",
                    "pattern": r"^-?[0-9]{1,15}(\.[0-9]{1,15})?$",
                }
            elif col.categories:
                columns[col.name] = {"type": "string", "enum": col.categories}
            else:
                columns[col.name] = {"type": "string"}
        fields = {
            "features": {
                "type": "object",
                "properties": columns,
                "required": list(columns),
                "additionalProperties": False,
            }
        }
    return {
        "type": "object",
        "description": f"A {task.kind} input: an item without its label.",
        "properties": fields,
        "required": list(fields),
        "additionalProperties": False,
    }


# -- the document -----------------------------------------------------------------------


def _strip_422(doc: dict[str, Any]) -> None:
    """FastAPI documents a 422 on every operation with parameters; ours send 400."""
    for item in doc.get("paths", {}).values():
        for op in item.values():
            responses = op.get("responses", {})
            if responses.get("422", {}).get("description") == "Validation Error":
                del responses["422"]
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _base(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    _strip_422(doc)
    _no_nul_parameters(doc)
    _, defs = models_json_schema(
        [(m, "validation") for m in _COMPONENTS], ref_template="#/components/schemas/{model}"
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(defs.get("$defs", {}))
    return doc


# What ``deps.hub_of`` refuses everywhere (PostgreSQL cannot hold a NUL in text), said in
# the document: a free-text parameter is any text without one.
_NO_NUL = "^[^\\u0000]*$"


def _no_nul_parameters(doc: dict[str, Any]) -> None:
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            for param in operation.get("parameters", ()):
                for schema in _string_schemas(param.get("schema", {})):
                    schema.setdefault("pattern", _NO_NUL)


def _string_schemas(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The string schemas in a parameter's schema (itself, or its ``anyOf`` branches)."""
    if schema.get("type") == "string":
        return [schema]
    return [s for branch in schema.get("anyOf", ()) for s in _string_schemas(branch)]


def install(app: FastAPI, hub: Hub) -> None:
    """Serve the document above as ``/openapi.json``, its prediction input from the
    charter the hub holds when asked."""
    base: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not base:
            base.update(_base(app))
        schemas = dict(base["components"]["schemas"])
        charter = hub.state.charter
        schemas["PredictionInput"] = input_schema(charter.task if charter else None)
        return {**base, "components": {**base["components"], "schemas": schemas}}

    app.openapi = openapi  # type: ignore[method-assign]
