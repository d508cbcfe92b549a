"""Model cards and Croissant descriptions of a model version.

A card is shown on the hub's pages and read by people deciding whether to trust a model, so
the tests pin three things: every fact the log holds (roots, hashes, the entry index) is on
it where a reader looks for it; nothing a member typed can break out of the cell or
paragraph it sits in; and the same version always renders to the same bytes. The Croissant
document is checked by shape here and, where the ``mlcroissant`` reference implementation
is installed, by it: validated, and its records read back from a manifest file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commonweal.cards.croissant import croissant
from commonweal.cards.model_card import HF_LICENSES, render_model_card
from commonweal.errors import HubError

KINDS = [
    "text-classification",
    "image-classification",
    "tabular-classification",
    "tabular-regression",
]
HOSTILE = "a|b<script>`\n# x"
SECTIONS = [
    "## Model details",
    "## Intended use",
    "## Training data",
    "## Evaluation",
    "## Lineage and proof",
    "## Reproducibility",
    "## Unlearning",
    "## Limitations",
]
MANIFEST_ROOT = "a1" * 32
EVAL_ROOT = "b2" * 32
ARTIFACT_SHA = "c3" * 32
ADA = "11" * 32
BOB = "22" * 32


def sample_info(kind: str = "text-classification") -> dict[str, Any]:
    task: dict[str, Any] = {
        "kind": kind,
        "labels": ["spam", "ham"],
        "columns": [],
        "target": "target",
        "image_width": 8,
        "image_height": 8,
    }
    if kind == "image-classification":
        task.update(labels=["heron", "egret", "stork"], image_width=28, image_height=32)
    if kind.startswith("tabular"):
        task["columns"] = [
            {"name": "wingspan", "type": "numeric", "categories": []},
            {"name": "colour.code", "type": "categorical", "categories": ["grey", "white"]},
        ]
        task["target"] = "species" if kind == "tabular-classification" else "weight_g"
        if kind == "tabular-regression":
            task["labels"] = []
    return {
        "community": {
            "name": "Riverside Birders",
            "description": "We count the birds on our river.\n\nTogether, every spring.",
            "origin": "hub.example/riverside",
        },
        "version": 3,
        "index": 4217,
        "log_time": "2026-11-25T10:00:00.123456Z",
        "log_size": 4300,
        "task": task,
        "trainer": "sisa-logistic-regression",
        "params": {"max_iter": 200, "C": "1.0", "class_weight": None},
        "seed": 7,
        "shards": 4,
        "libraries": {"scikit-learn": "1.5.2", "numpy": "2.1.0", "skops": "0.10.0"},
        "manifest": {"root": MANIFEST_ROOT, "count": 1200},
        "evaluation": {"root": EVAL_ROOT, "count": 300, "holdout_pct": 20},
        "metrics": {"accuracy": "0.9561", "macro_f1": "0.9400"},
        "artifact": {"format": "skops", "sha256": ARTIFACT_SHA, "bytes": 48213},
        "contributors": [
            {"member": BOB, "name": "Bob", "items": 500},
            {"member": ADA, "name": "Ada", "items": 700},
        ],
        "licenses": {"CC0-1.0": 200, "CC-BY-4.0": 1000},
        "consent": {"training": 1200, "research": 800},
        "previous": 2,
        "reused": [{"shard": 3, "from_version": 1}, {"shard": 0, "from_version": 2}],
        "withdrawn_since_previous": 5,
    }


# What a `model.release` vote records (``card_info``'s "release").
RELEASE = {"proposal": 4300, "license": "CC-BY-SA-4.0", "weights": "public"}


def front_matter(card: str) -> str:
    assert card.startswith("---\n")
    end = card.index("\n---\n", 4)
    return card[4:end]


def table_rows(card: str, header: str) -> list[list[str]]:
    """The cells of each body row of the table whose header row starts with ``header``."""
    lines = card.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        # GFM splits a row at every '|' not directly preceded by a backslash.
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def prose(card: str) -> str:
    """The card after its front matter, without fenced code (whose '#' lines are comments)."""
    body = card.split("\n---\n", 1)[1]
    return re.sub(r"^```.*?^```$", "", body, flags=re.M | re.S)


def with_member(name: str) -> dict[str, Any]:
    info = sample_info()
    info["contributors"][0]["name"] = name
    return info


# -- the model card ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_card_has_every_section_in_order(kind: str) -> None:
    card = render_model_card(sample_info(kind))
    positions = [card.index(f"\n{s}\n") for s in SECTIONS]
    assert positions == sorted(positions)
    assert [line for line in prose(card).splitlines() if line.startswith("# ")] == [
        "# Riverside Birders: model version 3"
    ]
    assert card.endswith("\n") and not card.endswith("\n\n")


@pytest.mark.parametrize("kind", KINDS)
def test_card_describes_what_the_task_takes_and_gives(kind: str) -> None:
    details = render_model_card(sample_info(kind)).split("## Model details")[1]
    details = details.split("## Intended use")[0]
    expected = {
        "text-classification": ["a text", "one of 2 labels: spam, ham"],
        "image-classification": ["28×32 pixels", "one of 3 labels: heron, egret, stork"],
        "tabular-classification": [
            "wingspan (numeric)",
            "colour.code (categorical: grey, white)",
            "species, one of 2 labels",
        ],
        "tabular-regression": ["2 columns", "weight\\_g, a number"],
    }[kind]
    for phrase in expected:
        assert phrase in details


def test_card_states_the_roots_hash_and_entry_a_reader_can_check() -> None:
    card = render_model_card(sample_info())
    lineage = card.split("## Lineage and proof")[1].split("## Reproducibility")[0]
    assert "`hub.example/riverside`" in lineage
    assert f"`{MANIFEST_ROOT}`" in lineage
    assert f"`{EVAL_ROOT}`" in lineage
    assert f"`{ARTIFACT_SHA}`" in lineage
    assert "commonweal ledger prove --index 4217 --hub HUB" in lineage
    assert "commonweal lineage --model 3 --hub HUB" in lineage
    assert "commonweal ledger verify --hub HUB" in lineage
    evaluation = card.split("## Evaluation")[1].split("## Lineage")[0]
    assert "300 items (20% of" in evaluation and EVAL_ROOT in evaluation
    assert table_rows(evaluation, "| Metric") == [["accuracy", "0.9561"], ["macro\\_f1", "0.9400"]]


def test_training_data_counts_by_license_scope_and_member() -> None:
    card = render_model_card(sample_info())
    data = card.split("## Training data")[1].split("## Evaluation")[0]
    assert "1200 items from 2 contributing members" in data
    assert "5 items were withdrawn since version 2" in data
    assert table_rows(data, "| License") == [
        ["[CC-BY-4.0](https://spdx.org/licenses/CC-BY-4.0.html)", "1000"],
        ["[CC0-1.0](https://spdx.org/licenses/CC0-1.0.html)", "200"],
    ]
    assert table_rows(data, "| Scope") == [["research", "800"], ["training", "1200"]]
    # Biggest contributors first; the key is shown to 16 hex characters.
    assert table_rows(data, "| Member") == [
        ["Ada", f"`{ADA[:16]}`", "700"],
        ["Bob", f"`{BOB[:16]}`", "500"],
    ]


def test_reproducibility_lists_params_and_libraries_sorted() -> None:
    card = render_model_card(sample_info())
    section = card.split("## Reproducibility")[1].split("## Unlearning")[0]
    assert "**Seed:** 7" in section and "**Shards:** 4" in section
    assert table_rows(section, "| Parameter") == [
        ["C", '"1.0"'],
        ["class\\_weight", "null"],
        ["max\\_iter", "200"],
    ]
    assert [r[0] for r in table_rows(section, "| Library")] == ["numpy", "scikit-learn", "skops"]


def test_unlearning_names_the_shards_reused_from_earlier_versions() -> None:
    section = render_model_card(sample_info()).split("## Unlearning")[1]
    assert "2 of 4 shards were reused unchanged and the other 2 retrained" in section
    assert table_rows(section, "| Shard") == [["0", "2"], ["3", "1"]]


def test_first_version_says_every_shard_was_trained_from_scratch() -> None:
    info = sample_info()
    info.update(previous=None, reused=[], withdrawn_since_previous=0)
    card = render_model_card(info)
    assert "every shard was trained from scratch" in card
    assert "| Shard" not in card
    assert "withdrawn since" not in card
    assert "previous_version: null" in front_matter(card)


def test_small_held_out_set_is_flagged_as_a_limitation() -> None:
    info = sample_info()
    assert "treat the metrics as rough" not in render_model_card(info)
    info["evaluation"]["count"] = 12
    assert "only 12 items: treat the metrics as rough" in render_model_card(info)


def test_hostile_member_name_stays_in_its_own_cell() -> None:
    card = render_model_card(with_member(HOSTILE))
    rows = table_rows(card, "| Member")
    assert [len(r) for r in rows] == [3, 3]
    assert rows[1][1] == f"`{BOB[:16]}`"
    assert "<script" not in card
    assert not any(line.startswith("# x") for line in card.splitlines())
    assert "a\\|b&lt;script&gt;\\` \\# x" in card


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=40))
def test_no_member_name_breaks_the_member_table(name: str) -> None:
    card = render_model_card(with_member(name))
    rows = table_rows(card, "| Member")
    assert [len(r) for r in rows] == [3, 3]
    assert {r[1] for r in rows} == {f"`{BOB[:16]}`", f"`{ADA[:16]}`"}
    body = prose(card)
    assert "<" not in body
    assert [line for line in body.splitlines() if line.startswith("# ")] == [
        "# Riverside Birders: model version 3"
    ]


def test_community_description_cannot_add_blocks_or_html() -> None:
    info = sample_info()
    info["community"]["description"] = (
        "# Take over\n\n- a list\n\n1. numbered\n\n<img src=x onerror=alert(1)>\n\n"
        "[click](javascript:alert(1)) ![x](http://x/y.png)"
    )
    card = render_model_card(info)
    body = card.split("\n---\n", 1)[1]
    quoted = [line for line in body.splitlines() if line.startswith(">")]
    assert quoted == [
        "> \\# Take over",
        ">",
        "> \\- a list",
        ">",
        "> 1\\. numbered",
        ">",
        "> &lt;img src=x onerror=alert(1)&gt;",
        ">",
        "> \\[click\\](javascript:alert(1)) \\!\\[x\\](http://x/y.png)",
    ]
    assert "<img" not in card


def test_same_info_renders_the_same_bytes_whatever_its_dict_order() -> None:
    info = sample_info()
    shuffled = copy.deepcopy(info)
    shuffled["contributors"].reverse()
    shuffled["reused"].reverse()
    for key in ("licenses", "consent", "metrics", "libraries", "params"):
        shuffled[key] = dict(reversed(list(shuffled[key].items())))
    assert render_model_card(info) == render_model_card(shuffled)
    assert json.dumps(croissant(info)) == json.dumps(croissant(shuffled))


def test_front_matter_keys_read_without_a_yaml_library() -> None:
    released = {**sample_info(), "release": RELEASE}
    lines = front_matter(render_model_card(released)).splitlines()
    top = [line.split(":", 1)[0] for line in lines if line[:1] not in ("", " ", "-")]
    assert top == ["license", "tags", "pipeline_tag", "library_name", "model-index", "commonweal"]
    # Each scalar is double-quoted and, for printable text, the same as a JSON string.
    assert json.loads(lines[0].removeprefix("license: ")) == "cc-by-sa-4.0"
    assert "  log_index: 4217" in lines
    assert f'  manifest_root: "{MANIFEST_ROOT}"' in lines


def test_front_matter_parses_as_yaml_with_licenses_tags_and_metrics() -> None:
    yaml = pytest.importorskip("yaml")
    meta = yaml.safe_load(front_matter(render_model_card(sample_info("tabular-regression"))))
    assert "license" not in meta  # no model license until the members vote to release it
    assert "tabular-regression" in meta["tags"] and "commonweal" in meta["tags"]
    assert meta["pipeline_tag"] == "tabular-regression"
    result = meta["model-index"][0]["results"][0]
    assert result["task"]["type"] == "tabular-regression"
    assert result["dataset"]["revision"] == EVAL_ROOT
    assert [(m["type"], m["value"]) for m in result["metrics"]] == [
        ("accuracy", 0.9561),
        ("macro_f1", 0.94),
    ]
    assert meta["commonweal"] == {
        "origin": "hub.example/riverside",
        "version": 3,
        "log_index": 4217,
        "log_time": "2026-11-25T10:00:00.123456Z",
        "previous_version": 2,
        "manifest_root": MANIFEST_ROOT,
        "manifest_count": 1200,
        "evaluation_root": EVAL_ROOT,
        "evaluation_count": 300,
        "artifact_sha256": ARTIFACT_SHA,
    }


def test_metric_that_is_not_a_plain_decimal_stays_a_string() -> None:
    yaml = pytest.importorskip("yaml")
    info = sample_info()
    info["metrics"] = {"accuracy": "012", "loss": "1e3", "r2": "-0.25"}
    metrics = yaml.safe_load(front_matter(render_model_card(info)))["model-index"][0]["results"]
    values = {m["type"]: m["value"] for m in metrics[0]["metrics"]}
    assert values == {"accuracy": "012", "loss": "1e3", "r2": -0.25}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=40))
def test_any_community_name_round_trips_through_the_front_matter(name: str) -> None:
    yaml = pytest.importorskip("yaml")
    info = sample_info()
    info["community"]["name"] = name
    meta = yaml.safe_load(front_matter(render_model_card(info)))
    assert meta["model-index"][0]["name"] == f"{name} v3"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("manifest", "root"), "A1" * 32),
        (("evaluation", "root"), "b2" * 31),
        (("artifact", "sha256"), None),
        (("version",), True),
        (("index",), -1),
        (("task", "kind"), "regression"),
        (("log_time",), "yesterday"),
        (("community", "origin"), "hub example"),
        (("contributors", 0, "member"), "not-a-key"),
        (("licenses", "CC0-1.0"), "200"),
    ],
)
def test_info_the_hub_could_not_have_built_is_refused(path: tuple[Any, ...], value: Any) -> None:
    info = sample_info()
    target: Any = info
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(HubError):
        render_model_card(info)
    with pytest.raises(HubError):
        croissant(info)


# -- Croissant ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_croissant_is_a_json_ld_dataset_that_conforms_to_1_0(kind: str) -> None:
    doc = croissant(sample_info(kind))
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    context = doc["@context"]
    assert context["@vocab"] == "https://schema.org/"
    assert context["cr"] == "http://mlcommons.org/croissant/"
    assert context["conformsTo"] == "dct:conformsTo"
    assert context["commonweal"] == "https://commonweal.dev/ns#"
    assert doc["@type"] == "sc:Dataset"
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    assert doc["license"] == [
        "https://spdx.org/licenses/CC-BY-4.0.html",
        "https://spdx.org/licenses/CC0-1.0.html",
    ]
    assert doc["creator"] == {"@type": "sc:Organization", "name": "Riverside Birders"}
    assert doc["datePublished"] == "2026-11-25T10:00:00.123456Z"
    assert doc["version"] == "3.0.0"
    assert "Riverside Birders" in doc["name"] and doc["description"]


def test_croissant_carries_the_log_facts_under_our_namespace() -> None:
    doc = croissant(sample_info())
    assert doc["commonweal:contributorCount"] == 2
    assert doc["commonweal:itemCount"] == 1200
    assert doc["commonweal:logOrigin"] == "hub.example/riverside"
    assert doc["commonweal:logIndex"] == 4217
    assert doc["commonweal:manifestMerkleRoot"] == MANIFEST_ROOT
    assert doc["commonweal:evaluationMerkleRoot"] == EVAL_ROOT
    assert doc["commonweal:consentScopes"] == [
        {"@type": "sc:PropertyValue", "name": "research", "value": 800},
        {"@type": "sc:PropertyValue", "name": "training", "value": 1200},
    ]
    # Decimal strings, exactly as the log holds them: no float rounding on the way out.
    assert doc["commonweal:metrics"] == [
        {"@type": "sc:PropertyValue", "name": "accuracy", "value": "0.9561"},
        {"@type": "sc:PropertyValue", "name": "macro_f1", "value": "0.9400"},
    ]


def test_manifest_merkle_root_is_not_passed_off_as_a_file_hash() -> None:
    info = sample_info()
    (manifest,) = croissant(info)["distribution"]
    assert manifest["@type"] == "cr:FileObject" and manifest["@id"] == "manifest"
    assert manifest["contentUrl"] == "commonweal://hub.example/riverside/models/3/manifest"
    assert manifest["encodingFormat"] == "application/json"
    assert manifest["commonweal:merkleRoot"] == MANIFEST_ROOT
    assert MANIFEST_ROOT in manifest["description"]
    assert "sha256" not in manifest
    info["manifest"]["sha256"] = "d4" * 32
    (manifest,) = croissant(info)["distribution"]
    assert manifest["sha256"] == "d4" * 32


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (
            "text-classification",
            {
                "items/text": ("sc:Text", "$.items[*].text"),
                "items/label": (["sc:Text", "cr:Label"], "$.items[*].label"),
            },
        ),
        (
            "image-classification",
            {
                "items/image": ("sc:ImageObject", "$.items[*].image"),
                "items/label": (["sc:Text", "cr:Label"], "$.items[*].label"),
            },
        ),
        (
            "tabular-classification",
            {
                "items/wingspan": ("sc:Float", "$.items[*].features.wingspan"),
                "items/colour.code": ("sc:Text", "$.items[*].features.'colour.code'"),
                "items/species": (["sc:Text", "cr:Label"], "$.items[*].target"),
            },
        ),
        (
            "tabular-regression",
            {
                "items/wingspan": ("sc:Float", "$.items[*].features.wingspan"),
                "items/colour.code": ("sc:Text", "$.items[*].features.'colour.code'"),
                "items/weight_g": (["sc:Float", "cr:Label"], "$.items[*].target"),
            },
        ),
    ],
)
def test_croissant_record_set_has_the_fields_of_one_item(
    kind: str, fields: dict[str, tuple[Any, str]]
) -> None:
    doc = croissant(sample_info(kind))
    items = next(rs for rs in doc["recordSet"] if rs["@id"] == "items")
    assert items["@type"] == "cr:RecordSet"
    got = {f["@id"]: (f["dataType"], f["source"]["extract"]["jsonPath"]) for f in items["field"]}
    assert got == fields
    assert all(f["source"]["fileObject"] == {"@id": "manifest"} for f in items["field"])
    labels = [rs for rs in doc["recordSet"] if rs["@id"] == "labels"]
    if kind == "tabular-regression":
        assert labels == []
    else:
        assert [row["labels/name"] for row in labels[0]["data"]] == sample_info(kind)["task"][
            "labels"
        ]
        label_field = items["field"][-1]
        assert label_field["references"] == {"field": {"@id": "labels/name"}}


def test_croissant_output_is_a_fresh_document_each_call() -> None:
    info = sample_info()
    doc = croissant(info)
    doc["@context"]["cr"] = "tampered"
    assert croissant(info)["@context"]["cr"] == "http://mlcommons.org/croissant/"


# -- against the mlcroissant reference implementation -----------------------------------

# rdflib, under mlcroissant, warns about its own internals on every parse.
quiet_rdflib = pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")


def _validated(doc: dict[str, Any], tmp_path: Path, **kwargs: Any) -> Any:
    mlc = pytest.importorskip("mlcroissant")
    path = tmp_path / "croissant.json"
    path.write_text(json.dumps(doc, indent=2))
    return mlc.Dataset(jsonld=str(path), **kwargs)


@quiet_rdflib
@pytest.mark.parametrize("kind", KINDS)
def test_mlcroissant_validates_our_description_without_warnings(kind: str, tmp_path: Path) -> None:
    info = sample_info(kind)
    info["manifest"]["sha256"] = "d4" * 32
    dataset = _validated(croissant(info), tmp_path)
    assert dataset.metadata.ctx.issues.errors == set()
    assert dataset.metadata.ctx.issues.warnings == set()


@quiet_rdflib
def test_mlcroissant_wants_a_file_checksum_and_nothing_else(tmp_path: Path) -> None:
    mlc = pytest.importorskip("mlcroissant")
    with pytest.raises(mlc.ValidationError) as caught:
        _validated(croissant(sample_info()), tmp_path)
    message = str(caught.value)
    assert "1 error(s)" in message and "['md5', 'sha256']" in message


@quiet_rdflib
@pytest.mark.parametrize(
    ("kind", "items", "expected"),
    [
        (
            "text-classification",
            [{"text": "buy now", "label": "spam"}, {"text": "hi mum", "label": "ham"}],
            [
                {"items/text": b"buy now", "items/label": b"spam"},
                {"items/text": b"hi mum", "items/label": b"ham"},
            ],
        ),
        (
            "tabular-regression",
            [{"features": {"wingspan": 1.5, "colour.code": "grey"}, "target": 2.25}],
            [{"items/wingspan": 1.5, "items/colour.code": b"grey", "items/weight_g": 2.25}],
        ),
    ],
)
def test_mlcroissant_reads_the_items_back_from_a_manifest_file(
    kind: str, items: list[dict[str, Any]], expected: list[dict[str, Any]], tmp_path: Path
) -> None:
    raw = json.dumps({"items": items}).encode()
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(raw)
    info = sample_info(kind)
    info["manifest"]["sha256"] = hashlib.sha256(raw).hexdigest()
    dataset = _validated(croissant(info), tmp_path, mapping={"manifest": str(manifest)})
    assert list(dataset.records("items")) == expected


# -- Hugging Face reads the front matter ---------------------------------------------------


@pytest.mark.parametrize(
    ("spdx", "expected"),
    [
        ("CC-BY-SA-4.0", {"license": "cc-by-sa-4.0"}),
        ("Apache-2.0", {"license": "apache-2.0"}),
        ("GPL-3.0-or-later", {"license": "gpl-3.0"}),
        ("ODbL-1.0", {"license": "odbl"}),
        (
            "BlueOak-1.0.0",
            {
                "license": "other",
                "license_name": "blueoak-1.0.0",
                "license_link": "https://spdx.org/licenses/BlueOak-1.0.0.html",
            },
        ),
    ],
)
def test_hugging_face_reads_one_lower_case_model_license(
    spdx: str, expected: dict[str, str]
) -> None:
    hf = pytest.importorskip("huggingface_hub")
    info = {**sample_info(), "release": {**RELEASE, "license": spdx}}
    card = hf.ModelCard(render_model_card(info))
    data = card.data
    assert isinstance(data, hf.ModelCardData)
    got = {k: getattr(data, k) for k in ("license", "license_name", "license_link")}
    assert {k: x for k, x in got.items() if x is not None} == expected
    assert data.license == data.license.lower()
    # The data's licenses are not the model's: they stay in the data section.
    assert "CC0-1.0" not in front_matter(card.content)
    assert ["[CC0-1.0](https://spdx.org/licenses/CC0-1.0.html)", "200"] in table_rows(
        card.content, "| License |"
    )


def test_hugging_face_reads_the_rest_of_the_front_matter() -> None:
    hf = pytest.importorskip("huggingface_hub")
    data = hf.ModelCard(render_model_card(sample_info())).data
    assert data.license is None  # not released: no model license to state
    assert data.pipeline_tag == "text-classification" and data.library_name == "sklearn"
    assert "commonweal" in data.tags
    (result,) = [r for r in data.eval_results if r.metric_type == "accuracy"]
    assert result.metric_value == pytest.approx(0.9561)
    assert result.dataset_revision == EVAL_ROOT
    assert data.to_dict()["commonweal"]["artifact_sha256"] == ARTIFACT_SHA


def test_every_model_license_id_is_one_hugging_face_lists() -> None:
    """Our table's targets are Hugging Face ids (its documented list, as of this writing,
    since ``huggingface_hub`` ships none), lower-case, and each SPDX id maps to one."""
    hf_ids = set(HF_DOCUMENTED_IDS.split())
    assert set(HF_LICENSES.values()) <= hf_ids
    assert all(k == k.lower() for k in HF_LICENSES)


# https://huggingface.co/docs/hub/repositories-licenses: the ids a repo card may use.
HF_DOCUMENTED_IDS = """
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause
bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0
cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0
cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1
agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc lppl-1.3c ms-pl mpl-2.0 odc-by
odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr
deepfloyd-if-license llama2 gemma unknown other
"""


# -- a federated version ------------------------------------------------------------------

CAROL = "33" * 32
NODE_ROOT = "d4" * 32


def federated_info(*, start: int = 2, dp: bool = True) -> dict[str, Any]:
    """What ``card_info`` gathers for a version trained on members' nodes: the recipe as
    ``params``, one shard, the run's rounds and nodes."""
    info = sample_info("tabular-classification")
    info.update(
        trainer="federated-softmax",
        shards=1,
        reused=[],
        libraries={"flwr": "1.42.0", "numpy": "2.1.0", "scikit-learn": "1.5.2"},
        params={
            "aggregation": "trimmed-mean",
            "params": {"outlier_factor": 3, "trim_pct": 20},
            "local_epochs": 5,
            "learning_rate": "0.5",
            "l2": "0.0001",
            "dp": (
                {
                    "mode": "server-fixed",
                    "noise_multiplier": "1.0",
                    "clipping_norm": "10",
                    "delta": "0.00001",
                }
                if dp
                else {"mode": "off"}
            ),
        },
        federated={
            "run": "8812",
            "start": start,
            "rounds": [
                {
                    "round": n,
                    "entry": 4210 + n,
                    "accepted": 2,
                    "rejected": 1 if n == 2 else 0,
                    "central": 1200 if start else 0,
                    "aggregate": f"{n:02d}" * 32,
                }
                for n in (1, 2, 3)
            ],
            "participants": [
                {
                    "member": ADA,
                    "name": "Ada",
                    "root": NODE_ROOT,
                    "items": 180,
                    "rounds": 3,
                    "epsilon": "4.12" if dp else "",
                },
                {
                    "member": CAROL,
                    "name": "Carol|<b>",
                    "root": "e5" * 32,
                    "items": 90,
                    "rounds": 2,
                    "epsilon": "4.12" if dp else "",
                },
            ],
        },
    )
    if not start:
        info["manifest"] = {"root": MANIFEST_ROOT, "count": 0}
        info["contributors"] = []
    return info


def test_federated_card_says_what_trained_it_and_not_sisa() -> None:
    card = render_model_card(federated_info())
    headings = [line for line in card.splitlines() if line.startswith("## ")]
    assert headings[headings.index("## Training data") + 1] == "## How it was trained"
    text = prose(card)
    for sisa in ("SISA", "ensemble", "shards were reused", "retrained shards"):
        assert sisa not in text
    assert "trained with federated learning on Flower 1.42.0, over 3 rounds" in text
    assert "Flower run:** `8812`, 3 rounds (log entries 4211 to 4213)" in text
    assert "trimmed-mean: a trimmed mean, coordinate by coordinate, cutting 20%" in text
    assert "more than 3 times the median such distance is rejected" in text
    assert "from version 2's weights. In every round the hub also trained on the 1200 central" in (
        " ".join(text.split())
    )
    assert "noise multiplier 1.0, clipping norm 10, delta 0.00001" in text
    assert "epsilon, composed over every DP round" in text
    assert "took 5 full-batch gradient steps (learning rate 0.5, L2 penalty 0.0001)" in text
    # The nodes: biggest first, each with items, accepted rounds, epsilon and enroll root;
    # a hostile name stays in its cell.
    assert table_rows(card, "| Member | Key | Items | Accepted rounds") == [
        ["Ada", f"`{ADA[:16]}`", "180", "3", "4.12", f"`{NODE_ROOT}`"],
        ["Carol\\|&lt;b&gt;", f"`{CAROL[:16]}`", "90", "2", "4.12", f"`{'e5' * 32}`"],
    ]
    rounds = table_rows(card, "| Round | Log entry")
    assert [r[:5] for r in rounds] == [
        ["1", "4211", "2", "0", "1200"],
        ["2", "4212", "2", "1", "1200"],
        ["3", "4213", "2", "0", "1200"],
    ]
    assert "later versions are trained without their node" in text
    assert "keeps what their updates taught it" in text
    assert "commonweal ledger show --start 4211 --end 4214" in card
    assert "270 items that stayed on their own machines" in text


def test_federated_card_from_zeros_without_dp_says_so() -> None:
    info = federated_info(start=0, dp=False)
    card = render_model_card(info)
    text = " ".join(prose(card).split())
    assert "from zeros: the hub trained none of its own items" in text
    assert "**Differential privacy:** none" in text
    assert "Epsilon" not in card
    assert "central items beside them" not in text
    assert table_rows(card, "| Member | Key | Items | Accepted rounds")[0][:4] == [
        "Ada",
        f"`{ADA[:16]}`",
        "180",
        "3",
    ]


def test_federated_card_metrics_come_from_nodes_when_the_hub_has_no_held_out_set() -> None:
    info = federated_info()
    info["evaluation"] = {"root": EVAL_ROOT, "count": 0, "holdout_pct": 20}
    text = " ".join(prose(render_model_card(info)).split())
    assert "these metrics are the nodes' own" in text
    assert "treat the metrics as rough" not in text


def test_federated_front_matter_is_valid_yaml_with_its_run() -> None:
    yaml = pytest.importorskip("yaml")
    meta = yaml.safe_load(front_matter(render_model_card(federated_info())))
    assert "federated-learning" in meta["tags"] and "sisa" not in meta["tags"]
    assert meta["commonweal"]["federated_run"] == "8812"
    assert meta["commonweal"]["federated_start_version"] == 2
    assert meta["commonweal"]["federated_rounds"] == 3
    assert meta["commonweal"]["federated_nodes"] == 2
    assert meta["library_name"] == "sklearn"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("federated", "run"), "run 1"),
        (("federated", "participants", 0, "root"), "nothex"),
        (("federated", "rounds", 0, "aggregate"), "00"),
        (("federated", "rounds", 0, "accepted"), -1),
        (("params", "dp"), "off"),
    ],
)
def test_federated_info_the_hub_could_not_have_built_is_refused(
    path: tuple[Any, ...], value: Any
) -> None:
    info = federated_info()
    target: Any = info
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(HubError, match=re.escape(str(path[0]))):
        render_model_card(info)


def test_federated_croissant_says_the_nodes_data_is_not_described() -> None:
    doc = croissant(federated_info())
    assert "stayed on their own machines" in doc["description"]
    assert doc["commonweal:federatedRun"] == "8812"
    assert doc["commonweal:federatedNodes"] == 2
