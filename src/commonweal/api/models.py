"""Routes for the community's model: versions, lineage, cards, predictions, treasury."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Security
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from commonweal.api.deps import CurrentMember, HubDep, read_json
from commonweal.api.spec import (
    BODY,
    ITEM_ID,
    SIGNED,
    TRY_INPUTS,
    VERSION,
    Predictions,
    api_key,
    body,
    errors,
)
from commonweal.cards import croissant, render_model_card
from commonweal.errors import InvalidInput

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

# Checked where the request arrives (400 otherwise), so the document states it.
Version = Annotated[str, Path(pattern=VERSION, description="A version number, or `latest`.")]


@router.get("/models", tags=["models"], responses=errors())
def list_models(hub: HubDep) -> dict[str, Any]:
    """Every model version with its metrics on the community's evaluation set."""
    return {"models": hub.models.versions()}


@router.get("/models/{version}", tags=["models"], responses=errors(400, 404))
def get_model(version: Version, hub: HubDep) -> dict[str, Any]:
    """A version (a number or ``latest``) and its whole ``model.version`` event."""
    return hub.models.version(version)


@router.get("/models/{version}/lineage", tags=["models"], responses=errors(400, 404, 422))
def get_model_lineage(version: Version, hub: HubDep) -> dict[str, Any]:
    """The items behind a version and how many each member gave, checked against the
    manifest root in the log."""
    return hub.models.lineage(version)


@router.get(
    "/models/{version}/manifest",
    tags=["models"],
    response_class=Response,
    responses={
        200: {"content": {"application/json": {"schema": {"type": "object"}}}},
        **errors(400, 404, 422),
    },
)
def get_manifest(version: Version, hub: HubDep) -> Response:
    """The version's manifest file: canonical JSON ``{"version", "items"}`` with the sorted
    item ids; its SHA-256 is the one the Croissant datasheet gives, and the Merkle root of
    its ids is the one in the log."""
    return Response(hub.models.manifest_file(version), media_type="application/json")


@router.get("/models/{version}/proof", tags=["models"], responses=errors(400, 404, 422))
def get_item_proof(
    version: Version, hub: HubDep, item: Annotated[str, Query(pattern=ITEM_ID)]
) -> dict[str, Any]:
    """Proof that an item is, or is not, in a version's manifest."""
    return hub.models.prove_item(item, version)


@router.get("/contributions/{item_id}/lineage", tags=["models"], responses=errors(404))
def get_item_lineage(item_id: str, hub: HubDep) -> dict[str, Any]:
    """The model versions that trained on an item."""
    return hub.models.item_lineage(item_id)


@router.get(
    "/models/{version}/card",
    tags=["models"],
    response_model=None,
    responses={
        200: {
            "description": "The card (`markdown`) or the Croissant JSON-LD (`croissant`).",
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
        **errors(400, 404, 422),
    },
)
def get_card(
    version: Version, hub: HubDep, format: Literal["markdown", "croissant"] = "markdown"
) -> PlainTextResponse | dict[str, Any]:
    """The version's model card (Markdown) or its Croissant dataset description."""
    info = hub.models.card_info(version)
    if format == "markdown":
        return PlainTextResponse(render_model_card(info), media_type="text/markdown")
    return croissant(info)


@router.post(
    "/models/{version}/predict",
    tags=["models"],
    responses=errors(BODY, 401, 404),
    openapi_extra=body(Predictions),
)
async def post_predict(
    version: Version,
    request: Request,
    hub: HubDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(api_key)] = None,
) -> dict[str, Any]:
    """Predict with a version (a number or ``latest``): ``{"inputs": [item, ...]}`` where an
    item is what members contribute, without its label. Needs ``Authorization: Bearer
    <API key>``; each input is one metered call at the charter's price."""
    key = bearer.credentials.strip() if bearer is not None else None
    doc = await read_json(request)
    if not isinstance(doc, dict) or set(doc) != {"inputs"}:
        raise InvalidInput('send {"inputs": [...]}: a list of items without their labels')
    # Prediction is a few hundred microseconds of numpy: cheaper inline than a thread hop.
    return hub.models.predict(version, doc["inputs"], api_key=key)


@router.post(
    "/models/{version}/try",
    tags=["models"],
    responses=errors(BODY, SIGNED, 404),
    openapi_extra=body(Predictions, max_items=TRY_INPUTS),
)
async def post_try(
    version: Version, request: Request, hub: HubDep, member: CurrentMember
) -> dict[str, Any]:
    """A member tries the model: ``{"inputs": [...]}`` as for ``predict``, signed by an
    active member (``X-Commonweal-Auth``) instead of an API key. Not metered and not billed
    to anyone; at most 10 inputs a call, 30 a minute and 500 a day per member (429 past
    that: consumers' use goes through API keys, whose calls earn the treasury)."""
    doc = await read_json(request)
    if not isinstance(doc, dict) or set(doc) != {"inputs"}:
        raise InvalidInput('send {"inputs": [...]}: a list of items without their labels')
    return hub.models.try_predict(member, version, doc["inputs"])


@router.get(
    "/models/{version}/artifact",
    tags=["models"],
    response_class=Response,
    responses={
        200: {
            "description": "The artifact zip.",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        },
        **errors(400, 403, 404, 422),
    },
)
def get_artifact(version: Version, hub: HubDep) -> Response:
    """The version's artifact (the zip whose SHA-256 the log records) — only once the
    community has voted to publish its weights (a ``model.release`` proposal)."""
    mv, data = hub.models.released_artifact(version)
    headers = {
        "Content-Disposition": f'attachment; filename="model-v{mv.version}.zip"',
        "X-Commonweal-License": mv.license or "unspecified",
        "X-Commonweal-Sha256": mv.artifact_sha256,
    }
    return Response(data, media_type="application/zip", headers=headers)


@router.get("/treasury", tags=["models"], responses=errors())
def get_treasury(hub: HubDep) -> dict[str, Any]:
    """The treasury's balance and the revenue and calls billed so far."""
    return hub.state.treasury.to_json()
