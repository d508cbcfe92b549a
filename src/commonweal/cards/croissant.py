"""Croissant 1.0 (MLCommons) JSON-LD descriptions of the data behind a model version.

Built from the same facts as the model card (``cards.facts.parse_info`` checks them), and
like it a pure function of them. The record set describes the training items as a document
``{"items": [item, ...]}`` where each item has the shape intake accepts for the task:
``{"text", "label"}``, ``{"image", "label"}`` (base64 PNG or JPEG) or
``{"features": {column: value}, "target"}``. Known gap: what the hub serves publicly at
``/api/v1/models/<version>/manifest`` lists item ids only (content stays encrypted with the
hub, released to each contributor by ``commonweal export``), so today the record set
describes the shape of the data rather than a file anyone can download; a consent-scoped
``publish`` export is what would close it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from commonweal.cards.facts import VersionFacts, parse_info, plural

__all__ = ["CROISSANT_1_0", "croissant"]

# The @context the Croissant 1.0 reference datasets and the mlcroissant validator share
# (the spec's own appendix is an older, shorter draft), plus our namespace.
_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
    "commonweal": "https://commonweal.dev/ns#",
}
CROISSANT_1_0 = "http://mlcommons.org/croissant/1.0"

_JSON_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _json_path(*keys: str) -> str:
    parts = ["$.items[*]"]
    for key in keys:
        # A column name may hold '.' or '-', which a bare JSONPath segment would misread.
        parts.append(
            key
            if _JSON_KEY.fullmatch(key)
            else "'" + key.replace("\\", "\\\\").replace("'", "\\'") + "'"
        )
    return ".".join(parts)


def _field(
    name: str,
    description: str,
    data_type: str | list[str],
    path: str,
    references: str | None = None,
) -> dict[str, Any]:
    field: dict[str, Any] = {
        "@type": "cr:Field",
        "@id": f"items/{quote(name, safe='')}",
        "name": name,
        "description": description,
        "dataType": data_type,
        "source": {"fileObject": {"@id": "manifest"}, "extract": {"jsonPath": path}},
    }
    if references is not None:
        field["references"] = {"field": {"@id": references}}
    return field


def _item_fields(v: VersionFacts) -> list[dict[str, Any]]:
    label = ["sc:Text", "cr:Label"]
    if v.kind == "text-classification":
        return [
            _field("text", "The contributed text.", "sc:Text", _json_path("text")),
            _field("label", "The item's label.", label, _json_path("label"), "labels/name"),
        ]
    if v.kind == "image-classification":
        return [
            _field(
                "image",
                f"A base64 PNG or JPEG image of at most {v.image_width}x{v.image_height} pixels.",
                "sc:ImageObject",
                _json_path("image"),
            ),
            _field("label", "The item's label.", label, _json_path("label"), "labels/name"),
        ]
    fields = []
    for col in v.columns:
        if col.type == "categorical":
            about = f"Categorical column, one of: {', '.join(col.categories)}."
            fields.append(_field(col.name, about, "sc:Text", _json_path("features", col.name)))
        else:
            fields.append(
                _field(col.name, "Numeric column.", "sc:Float", _json_path("features", col.name))
            )
    if v.kind == "tabular-classification":
        fields.append(
            _field(v.target, "The target label.", label, _json_path("target"), "labels/name")
        )
    else:
        fields.append(
            _field(v.target, "The target value.", ["sc:Float", "cr:Label"], _json_path("target"))
        )
    return fields


def _property_values(pairs: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"@type": "sc:PropertyValue", "name": k, "value": x} for k, x in pairs]


def _manifest_file(v: VersionFacts) -> dict[str, Any]:
    """The manifest as a Croissant ``FileObject``: where the items are listed."""
    manifest_url = f"commonweal://{v.origin}/models/{v.version}/manifest"
    manifest: dict[str, Any] = {
        "@type": "cr:FileObject",
        "@id": "manifest",
        "name": "manifest",
        "description": (
            f"The {plural(v.manifest_count, 'training item')} of model version {v.version}, "
            f"the leaves of a Merkle tree whose root {v.manifest_root} is recorded at entry "
            f"{v.index} of the signed log {v.origin}."
        ),
        "contentUrl": manifest_url,
        "encodingFormat": "application/json",
    }
    if v.manifest_sha256 is not None:
        manifest["sha256"] = v.manifest_sha256
    manifest["commonweal:merkleRoot"] = v.manifest_root
    return manifest


def _record_sets(v: VersionFacts) -> list[dict[str, Any]]:
    """The labels the charter allows (for classification) and the items' fields."""
    record_sets: list[dict[str, Any]] = []
    if v.kind != "tabular-regression":
        record_sets.append(
            {
                "@type": "cr:RecordSet",
                "@id": "labels",
                "name": "labels",
                "description": "The labels the community's charter allows.",
                "dataType": "sc:Enumeration",
                "key": {"@id": "labels/name"},
                "field": [
                    {
                        "@type": "cr:Field",
                        "@id": "labels/name",
                        "name": "name",
                        "dataType": "sc:Text",
                    }
                ],
                "data": [{"labels/name": label} for label in v.labels],
            }
        )
    record_sets.append(
        {
            "@type": "cr:RecordSet",
            "@id": "items",
            "name": "items",
            "description": f"One contributed training item of a {v.kind} task.",
            "field": _item_fields(v),
        }
    )
    return record_sets


def croissant(info: dict[str, Any]) -> dict[str, Any]:
    """A Croissant 1.0 JSON-LD description of the data a model version was trained on.

    The manifest's Merkle root is not a hash of the manifest's bytes, so it is given as
    ``commonweal:merkleRoot``; the file's ``sha256`` is set only if ``info["manifest"]``
    carries the SHA-256 of the manifest document as served (Croissant requires a file
    checksum, so without it validators report that one omission).
    """
    v = parse_info(info)
    date = v.log_time[:10]
    return {
        "@context": copy.deepcopy(_CONTEXT),
        "@type": "sc:Dataset",
        "name": f"{v.community}: training data of model version {v.version}",
        "description": (
            f"The items that {plural(len(v.contributors), 'member')} of {v.community} contributed "
            f"and consented to for training, as used by model version {v.version}: "
            f"{plural(v.manifest_count, 'item')}, listed by a manifest whose Merkle root is in "
            f"the community's signed, append-only log." + _federated_words(v)
        ),
        "conformsTo": CROISSANT_1_0,
        "citeAs": (
            f"{v.community}. Training data of model version {v.version}. Commonweal log "
            f"{v.origin}, entry {v.index}, {date}."
        ),
        "creator": {"@type": "sc:Organization", "name": v.community},
        "datePublished": v.log_time,
        "license": [
            f"https://spdx.org/licenses/{quote(s, safe='.+-')}.html" for s, _ in v.licenses
        ],
        "version": f"{v.version}.0.0",
        "distribution": [_manifest_file(v)],
        "recordSet": _record_sets(v),
        "commonweal:contributorCount": len(v.contributors),
        "commonweal:itemCount": v.manifest_count,
        "commonweal:consentScopes": _property_values(v.consent),
        "commonweal:logOrigin": v.origin,
        "commonweal:logIndex": v.index,
        "commonweal:manifestMerkleRoot": v.manifest_root,
        "commonweal:evaluationMerkleRoot": v.evaluation_root,
        "commonweal:metrics": _property_values(v.metrics),
        "commonweal:artifactSha256": v.artifact_sha256,
        **_federated_facts(v),
    }


def _federated_words(v: VersionFacts) -> str:
    """What a federated version's datasheet must not leave out: the model also learned
    from data this dataset does not hold."""
    fed = v.federated
    if fed is None:
        return ""
    items = sum(n.items for n in fed.nodes)
    return (
        f" The model was also trained with federated learning (Flower run {fed.run}) on "
        f"{plural(items, 'item')} of {plural(len(fed.nodes), 'member')} that stayed on their "
        "own machines; those items are not part of this dataset, and the log holds only their "
        "counts and a Merkle root over salted commitments of them."
    )


def _federated_facts(v: VersionFacts) -> dict[str, Any]:
    fed = v.federated
    if fed is None:
        return {}
    return {
        "commonweal:federatedRun": fed.run,
        "commonweal:federatedStartVersion": fed.start,
        "commonweal:federatedRounds": len(fed.rounds),
        "commonweal:federatedNodes": len(fed.nodes),
        "commonweal:federatedNodeItems": sum(n.items for n in fed.nodes),
    }
