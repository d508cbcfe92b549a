"""Routes for the community's model: versions, lineage, cards, predictions, treasury."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from commonweal.api.deps import CurrentMember, HubDep, read_json
from commonweal.cards import croissant, render_model_card
from commonweal.errors import InvalidInput

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.get("/models", tags=["models"])
def list_models(hub: HubDep) -> dict[str, Any]:
    """Every model version with its metrics on the community's evaluation set."""
    return {"models": hub.models.versions()}


@router.get("/models/{version}", tags=["models"])
def get_model(version: str, hub: HubDep) -> dict[str, Any]:
    """A version (a number or ``latest``) and its whole ``model.version`` event."""
    return hub.models.version(version)


@router.get("/models/{version}/lineage", tags=["models"])
def get_model_lineage(version: str, hub: HubDep) -> dict[str, Any]:
    """The items behind a version and how many each member gave, checked against the
    manifest root in the log."""
    return hub.models.lineage(version)


@router.get("/models/{version}/manifest", tags=["models"])
def get_manifest(version: str, hub: HubDep) -> Response:
    """The version's manifest file: canonical JSON ``{"version", "items"}`` with the sorted
    item ids; its SHA-256 is the one the Croissant datasheet gives, and the Merkle root of
    its ids is the one in the log."""
    return Response(hub.models.manifest_file(version), media_type="application/json")


@router.get("/models/{version}/proof", tags=["models"])
def get_item_proof(
    version: str, hub: HubDep, item: Annotated[str, Query(min_length=32, max_length=32)]
) -> dict[str, Any]:
    """Proof that an item is, or is not, in a version's manifest."""
    return hub.models.prove_item(item, version)


@router.get("/contributions/{item_id}/lineage", tags=["models"])
def get_item_lineage(item_id: str, hub: HubDep) -> dict[str, Any]:
    """The model versions that trained on an item."""
    return hub.models.item_lineage(item_id)


@router.get("/models/{version}/card", tags=["models"], response_model=None)
def get_card(
    version: str, hub: HubDep, format: str = "markdown"
) -> PlainTextResponse | dict[str, Any]:
    """The version's model card (Markdown) or its Croissant dataset description."""
    info = hub.models.card_info(version)
    if format == "markdown":
        return PlainTextResponse(render_model_card(info), media_type="text/markdown")
    if format == "croissant":
        return croissant(info)
    raise InvalidInput(f"format must be markdown or croissant, not {format!r}")


@router.post("/models/{version}/predict", tags=["models"])
async def post_predict(version: str, request: Request, hub: HubDep) -> dict[str, Any]:
    """Predict with a version (a number or ``latest``): ``{"inputs": [item, ...]}`` where an
    item is what members contribute, without its label. Needs ``Authorization: Bearer
    <API key>``; each input is one metered call at the charter's price."""
    auth = request.headers.get("authorization", "")
    scheme, _, secret = auth.partition(" ")
    key = secret.strip() if scheme.lower() == "bearer" else None
    doc = await read_json(request)
    if not isinstance(doc, dict) or set(doc) != {"inputs"}:
        raise InvalidInput('send {"inputs": [...]}: a list of items without their labels')
    # Prediction is a few hundred microseconds of numpy: cheaper inline than a thread hop.
    return hub.models.predict(version, doc["inputs"], api_key=key)


@router.post("/models/{version}/try", tags=["models"])
async def post_try(
    version: str, request: Request, hub: HubDep, member: CurrentMember
) -> dict[str, Any]:
    """A member tries the model: ``{"inputs": [...]}`` as for ``predict``, signed by an
    active member (``X-Commonweal-Auth``) instead of an API key. Not metered and not billed
    to anyone; at most 10 inputs a call, 30 a minute and 500 a day per member (429 past
    that: consumers' use goes through API keys, whose calls earn the treasury)."""
    doc = await read_json(request)
    if not isinstance(doc, dict) or set(doc) != {"inputs"}:
        raise InvalidInput('send {"inputs": [...]}: a list of items without their labels')
    return hub.models.try_predict(member, version, doc["inputs"])


@router.get("/models/{version}/artifact", tags=["models"])
def get_artifact(version: str, hub: HubDep) -> Response:
    """The version's artifact (the zip whose SHA-256 the log records) — only once the
    community has voted to publish its weights (a ``model.release`` proposal)."""
    mv, data = hub.models.released_artifact(version)
    headers = {
        "Content-Disposition": f'attachment; filename="model-v{mv.version}.zip"',
        "X-Commonweal-License": mv.license or "unspecified",
        "X-Commonweal-Sha256": mv.artifact_sha256,
    }
    return Response(data, media_type="application/zip", headers=headers)


@router.get("/treasury", tags=["models"])
def get_treasury(hub: HubDep) -> dict[str, Any]:
    """The treasury's balance and the revenue and calls billed so far."""
    return hub.state.treasury.to_json()
