"""The contribute page: a member drops a CSV/JSONL file or a folder of images, the browser
checks every item against the charter, makes the salted commitments, signs the batches and
shows the hub's screening receipt item by item.

Everything that needs the member's key happens in ``static/js/contribute.js``; this route
only says what the charter asks for (the task, its labels or columns, the licenses and
consents, the size limits), in words on the page and as JSON for the script.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from commonweal.api.deps import MAX_BODY_BYTES, HubDep
from commonweal.community.charter import CONSENT_SCOPES
from commonweal.hub import Hub
from commonweal.web.render import charter_doc, page

__all__ = ["router", "rules_for_upload"]

router = APIRouter(include_in_schema=False)

# What each consent scope lets the community do, in plain words.
CONSENT_WORDS = {
    "train": "train the community's model on it",
    "evaluate": "use it to measure the model",
    "commercial": "earn money from a model trained on it",
    "publish": "publish it in a released dataset",
}


def rules_for_upload(hub: Hub) -> dict[str, Any]:
    """What the browser checks a file against, from the charter (every default filled in)."""
    doc = charter_doc(hub)
    return {
        "task": doc.get("task"),
        "licenses": doc.get("licenses", []),
        "consent_required": doc.get("consent_required", []),
        "consent_scopes": list(CONSENT_SCOPES),
        "limits": doc.get("limits", {}),
        "max_body_bytes": MAX_BODY_BYTES,
    }


@router.get("/contribute", response_class=HTMLResponse)
def contribute(request: Request, hub: HubDep) -> HTMLResponse:
    rules = rules_for_upload(hub)
    return page(
        request,
        hub,
        "contribute.html",
        title="Contribute",
        rules=rules,
        task=rules["task"],
        consent_words=CONSENT_WORDS,
    )
