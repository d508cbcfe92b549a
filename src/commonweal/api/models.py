"""Routes for the community's model: versions, lineage, cards, predictions, treasury."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response

from commonweal.errors import InvalidInput
from commonweal.hub import Hub

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


def _hub(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


HubDep = Annotated[Hub, Depends(_hub)]


@router.get("/models", tags=["models"])
def list_models(hub: HubDep) -> dict[str, Any]:
    """Every model version with its metrics on the community's evaluation set."""
    hub.refresh(max_age=1.0)
    return {"models": hub.models()}


@router.get("/models/{version}", tags=["models"])
def get_model(version: str, hub: HubDep) -> dict[str, Any]:
    """A version (a number or ``latest``) and its whole ``model.version`` event."""
    hub.refresh(max_age=1.0)
    return hub.model(version)


@router.get("/models/{version}/lineage", tags=["models"])
def get_model_lineage(version: str, hub: HubDep) -> dict[str, Any]:
    """The items behind a version and how many each member gave, checked against the
    manifest root in the log."""
    hub.refresh(max_age=1.0)
    from commonweal.lineage import model_lineage
    from commonweal.serving import resolve_version

    return model_lineage(hub, resolve_version(hub, version))


@router.get("/models/{version}/manifest", tags=["models"])
def get_manifest(version: str, hub: HubDep) -> Response:
    """The version's manifest file: canonical JSON ``{"version", "items"}`` with the sorted
    item ids; its SHA-256 is the one the Croissant datasheet gives, and the Merkle root of
    its ids is the one in the log."""
    hub.refresh(max_age=1.0)
    from commonweal.lineage import manifest_file, manifest_ids
    from commonweal.serving import resolve_version

    v = resolve_version(hub, version)
    return Response(manifest_file(v, manifest_ids(hub, v)), media_type="application/json")


@router.get("/models/{version}/proof", tags=["models"])
def get_item_proof(
    version: str, hub: HubDep, item: Annotated[str, Query(min_length=32, max_length=32)]
) -> dict[str, Any]:
    """Proof that an item is, or is not, in a version's manifest."""
    hub.refresh(max_age=1.0)
    from commonweal.lineage import prove_item
    from commonweal.serving import resolve_version

    return prove_item(hub, item, resolve_version(hub, version))


@router.get("/contributions/{item_id}/lineage", tags=["models"])
def get_item_lineage(item_id: str, hub: HubDep) -> dict[str, Any]:
    """The model versions that trained on an item."""
    hub.refresh(max_age=1.0)
    from commonweal.lineage import item_lineage

    return item_lineage(hub, item_id)


@router.get("/models/{version}/card", tags=["models"], response_model=None)
def get_card(
    version: str, hub: HubDep, format: str = "markdown"
) -> PlainTextResponse | dict[str, Any]:
    """The version's model card (Markdown) or its Croissant dataset description."""
    hub.refresh(max_age=1.0)
    from commonweal.card import render_model_card
    from commonweal.croissant import croissant
    from commonweal.lineage import card_info
    from commonweal.serving import resolve_version

    info = card_info(hub, resolve_version(hub, version))
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
    from commonweal.api import read_json

    auth = request.headers.get("authorization", "")
    scheme, _, secret = auth.partition(" ")
    key = secret.strip() if scheme.lower() == "bearer" else None
    doc = await read_json(request)
    if not isinstance(doc, dict) or set(doc) != {"inputs"}:
        raise InvalidInput('send {"inputs": [...]}: a list of items without their labels')
    # Prediction is a few hundred microseconds of numpy: cheaper inline than a thread hop.
    return hub.predict(version, doc["inputs"], api_key=key)


@router.get("/models/{version}/artifact", tags=["models"])
def get_artifact(version: str, hub: HubDep) -> Response:
    """The version's artifact (the zip whose SHA-256 the log records) — only once the
    community has voted to publish its weights (a ``model.release`` proposal)."""
    hub.refresh(max_age=1.0)
    from commonweal.errors import Forbidden
    from commonweal.serving import resolve_version
    from commonweal.training import export_artifact

    v = resolve_version(hub, version)
    mv = hub.state.models[v]
    if mv.weights != "public":
        raise Forbidden(
            f"version {v}'s weights are not published; members can vote to release them "
            "(a model.release proposal)"
        )
    _, data = export_artifact(hub, v)
    headers = {
        "Content-Disposition": f'attachment; filename="model-v{v}.zip"',
        "X-Commonweal-License": mv.license or "unspecified",
        "X-Commonweal-Sha256": mv.artifact_sha256,
    }
    return Response(data, media_type="application/zip", headers=headers)


@router.get("/treasury", tags=["models"])
def get_treasury(hub: HubDep) -> dict[str, Any]:
    """The treasury's balance and the revenue and calls billed so far."""
    hub.refresh(max_age=1.0)
    return hub.state.treasury.to_json()
