"""A Markdown model card for one trained model version.

Built from the facts ``cards.facts.parse_info`` checks, in the layout of a Hugging Face
card (Mitchell et al., "Model Cards for Model Reporting": YAML front matter, then
sections). The card is a pure function of those facts, so it can be regenerated, diffed and
hashed like any other derived artefact: the same version always renders to the same bytes.
Text that members or founders typed (names, labels, column names, license ids, consent
scopes, the community's description) is escaped wherever it lands, because cards are shown
on the hub's pages and one member's name must not be able to rewrite the table it sits in
or smuggle in HTML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from commonweal.cards.charter_words import AGGREGATION
from commonweal.cards.facts import (
    SPDX_ID,
    ColumnFacts,
    FederatedFacts,
    VersionFacts,
    parse_info,
    plural,
)

__all__ = ["HF_LICENSES", "hf_license", "render_model_card"]

# Only a plain decimal goes into the front matter unquoted: YAML 1.1 would read "012" as
# octal and "1e3" as a string, so anything else stays a quoted string.
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
# Inline Markdown (CommonMark, and GFM's tables, strikethrough and math): escaping '[' and
# '<' is what stops links, images, autolinks and raw HTML; '|' keeps a table row whole.
_MD_INLINE = re.compile(r"([\\`*_\[\]|~#$!])")
# What opens a list when it starts a line (a heading's '#' is escaped everywhere already).
_MD_LINE_START = re.compile(r"^([-+]|\d+(?=[.)]))")
# Below this many held-out items the card warns that the metrics are rough.
_SMALL_HOLDOUT = 100


def _md(text: str) -> str:
    """Untrusted text as literal inline Markdown, on one line."""
    # Control, format (bidi overrides) and separator characters would break a table row or
    # reorder what a reader sees; none of them belongs in a name.
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_INLINE.sub(r"\\\1", flat)


def _md_paragraphs(text: str) -> list[str]:
    """Untrusted prose, each paragraph escaped as literal text, paragraph breaks kept."""
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    return [_MD_LINE_START.sub(_escape_line_start, _md(p)) for p in paragraphs if p.strip()]


def _escape_line_start(m: re.Match[str]) -> str:
    # A list marker is escaped itself; for "1." it is the '.' or ')' after the digits.
    return m.group(1) + "\\" if m.group(1)[0].isdigit() else "\\" + m.group(1)


def _table(
    header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[bool]
) -> list[str]:
    """A GFM table of cells already escaped; numeric columns right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---:" if n else "---" for n in numeric) + " |",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _yaml_str(text: str) -> str:
    """A YAML double-quoted scalar that any YAML 1.1 or 1.2 parser reads back exactly."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            # Line and paragraph separators, NEL and the BOM would be folded or refused by
            # the YAML reader, so every non-printable character travels as an escape.
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    out.append('"')
    return "".join(out)


def _yaml_number_or_str(value: str) -> str:
    return value if _DECIMAL.fullmatch(value) else _yaml_str(value)


# Hugging Face's license identifiers (https://huggingface.co/docs/hub/repositories-licenses)
# by the SPDX identifier a `model.release` vote names, lower-cased. Hugging Face reads one
# lower-case id of its own list for the MODEL; an SPDX id without one is `other`, named
# and linked. Where the two spellings differ (SPDX's -only/-or-later suffixes, ODbL-1.0,
# ...) the entry says so; every other id is the SPDX id lower-cased.
_HF_SAME = [
    "apache-2.0",
    "mit",
    "afl-3.0",
    "artistic-2.0",
    "bsl-1.0",
    "bsd-2-clause",
    "bsd-3-clause",
    "bsd-3-clause-clear",
    "cc0-1.0",
    "cc-by-2.0",
    "cc-by-2.5",
    "cc-by-3.0",
    "cc-by-4.0",
    "cc-by-sa-3.0",
    "cc-by-sa-4.0",
    "cc-by-nc-2.0",
    "cc-by-nc-3.0",
    "cc-by-nc-4.0",
    "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0",
    "cdla-permissive-1.0",
    "cdla-permissive-2.0",
    "wtfpl",
    "ecl-2.0",
    "epl-1.0",
    "epl-2.0",
    "etalab-2.0",
    "eupl-1.1",
    "agpl-3.0",
    "gpl-2.0",
    "gpl-3.0",
    "lgpl-2.1",
    "lgpl-3.0",
    "isc",
    "lppl-1.3c",
    "ms-pl",
    "mpl-2.0",
    "osl-3.0",
    "postgresql",
    "ofl-1.1",
    "ncsa",
    "unlicense",
    "zlib",
]
HF_LICENSES: dict[str, str] = {
    **{hf: hf for hf in _HF_SAME},
    **{
        f"{g}-{suffix}": g
        for g in ("agpl-3.0", "gpl-2.0", "gpl-3.0", "lgpl-2.1", "lgpl-3.0")
        for suffix in ("only", "or-later")
    },
    "c-uda-1.0": "c-uda",
    "odc-by-1.0": "odc-by",
    "odbl-1.0": "odbl",
    "pddl-1.0": "pddl",
    "lgpllr": "lgpl-lr",
}


def hf_license(spdx: str) -> dict[str, str]:
    """The model-card metadata Hugging Face reads for a model released under ``spdx``:
    ``{"license": id}``, or ``other`` with ``license_name`` and ``license_link``."""
    known = HF_LICENSES.get(spdx.lower())
    if known is not None:
        return {"license": known}
    return {
        "license": "other",
        "license_name": spdx.lower(),
        "license_link": f"https://spdx.org/licenses/{spdx}.html",
    }


def _front_matter(v: VersionFacts) -> list[str]:
    lines = ["---"]
    # The MODEL's license, the one the members' release vote chose: none until they vote.
    # The contributed data's licenses are listed under Training data and in the Croissant
    # datasheet, where a reader of the data looks for them.
    if v.release_proposal is not None and v.release_license:
        lines.extend(f"{k}: {_yaml_str(x)}" for k, x in hf_license(v.release_license).items())
    lines.append("tags:")
    method = ("federated-learning", "flower") if v.federated else ("sisa",)
    for tag in ("commonweal", "community-owned", v.kind, *method, "merkle-log"):
        lines.append(f"- {_yaml_str(tag)}")
    lines.append(f"pipeline_tag: {_yaml_str(v.kind)}")
    if v.artifact_format == "skops":
        lines.append(f"library_name: {_yaml_str('sklearn')}")
    lines += [
        "model-index:",
        f"- name: {_yaml_str(f'{v.community} v{v.version}')}",
        "  results:",
        "  - task:",
        f"      type: {_yaml_str(v.kind)}",
        "    dataset:",
        f"      name: {_yaml_str(f'{v.community} held-out set')}",
        f"      type: {_yaml_str('commonweal-holdout')}",
        f"      split: {_yaml_str('held-out')}",
        f"      revision: {_yaml_str(v.evaluation_root)}",
        "    metrics:" + ("" if v.metrics else " []"),
    ]
    for name, value in v.metrics:
        lines += [
            f"    - type: {_yaml_str(name)}",
            f"      name: {_yaml_str(name)}",
            f"      value: {_yaml_number_or_str(value)}",
        ]
    lines += [
        "commonweal:",
        f"  origin: {_yaml_str(v.origin)}",
        f"  version: {v.version}",
        f"  log_index: {v.index}",
        f"  log_time: {_yaml_str(v.log_time)}",
        f"  previous_version: {'null' if v.previous is None else v.previous}",
        f"  manifest_root: {_yaml_str(v.manifest_root)}",
        f"  manifest_count: {v.manifest_count}",
        f"  evaluation_root: {_yaml_str(v.evaluation_root)}",
        f"  evaluation_count: {v.evaluation_count}",
        f"  artifact_sha256: {_yaml_str(v.artifact_sha256)}",
    ]
    if v.federated is not None:
        lines += [
            f"  federated_run: {_yaml_str(v.federated.run)}",
            f"  federated_start_version: {v.federated.start}",
            f"  federated_rounds: {len(v.federated.rounds)}",
            f"  federated_nodes: {len(v.federated.nodes)}",
        ]
    lines.append("---")
    return lines


def _column_kind(col: ColumnFacts) -> str:
    if col.type == "categorical":
        return "categorical: " + ", ".join(_md(x) for x in col.categories)
    return _md(col.type)


def _input_output(v: VersionFacts) -> tuple[str, str]:
    labels = ", ".join(_md(x) for x in v.labels)
    if v.kind == "text-classification":
        return "a text", f"one of {len(v.labels)} labels: {labels}"
    if v.kind == "image-classification":
        return (
            f"a PNG or JPEG image of at most {v.image_width}×{v.image_height} pixels, "
            "read as grayscale",
            f"one of {len(v.labels)} labels: {labels}",
        )
    cols = ", ".join(f"{_md(c.name)} ({_column_kind(c)})" for c in v.columns)
    if v.kind == "tabular-classification":
        return (
            f"a row of {len(v.columns)} columns: {cols}",
            f"{_md(v.target)}, one of {len(v.labels)} labels: {labels}",
        )
    return f"a row of {len(v.columns)} columns: {cols}", f"{_md(v.target)}, a number"


def _model_details(v: VersionFacts) -> list[str]:
    given, predicted = _input_output(v)
    previous = (
        "none: this is the community's first model"
        if v.previous is None
        else f"version {v.previous}"
    )
    lines = [
        "## Model details",
        "",
        f"- **Community:** {_md(v.community)}",
        f"- **Version:** {v.version} (previous: {previous})",
        f"- **Task:** {v.kind}",
        f"- **Input:** {given}",
        f"- **Output:** {predicted}",
        _trainer_line(v),
        f"- **Artifact:** {_md(v.artifact_format)}, {v.artifact_bytes} bytes, "
        f"SHA-256 `{v.artifact_sha256}`",
        f"- **Recorded:** {v.log_time}, entry {v.index} of the log `{v.origin}`",
    ]
    description = _md_paragraphs(v.description)
    if description:
        lines += ["", f"About {_md(v.community)}:", ""]
        for i, paragraph in enumerate(description):
            lines += ([">"] if i else []) + [f"> {paragraph}"]
    return lines


def _trainer_line(v: VersionFacts) -> str:
    fed = v.federated
    if fed is None:
        return (
            f"- **Trainer:** {_md(v.trainer)}, as an ensemble of {plural(v.shards, 'shard')} "
            "(see Unlearning)"
        )
    return (
        f"- **Trainer:** {_md(v.trainer)}: one linear softmax model (multinomial logistic "
        f"regression) trained with federated learning on {_flower(v)}, over "
        f"{plural(len(fed.rounds), 'round')} (see How it was trained)"
    )


def _flower(v: VersionFacts) -> str:
    """Flower, with the version the log recorded when it has one."""
    flwr = dict(v.libraries).get("flwr")
    return "Flower" + (f" {_md(flwr)}" if flwr else "")


def _intended_use(v: VersionFacts) -> list[str]:
    scopes = ", ".join(_md(s) for s, _ in v.consent) or "none recorded"
    licenses = ", ".join(_md(s) for s, _ in v.licenses) or "none recorded"
    return [
        "## Intended use",
        "",
        f"Made by and for the members of {_md(v.community)}: the task above, on data like what "
        "they contributed. Members contributed under the licenses and for the consent scopes "
        "below (item counts under Training data); a use is in scope only if all of them allow "
        "it.",
        "",
        f"- **Consent scopes:** {scopes}",
        f"- **Licenses:** {licenses}",
        "",
        "Out of scope: uses the consent scopes or licenses do not cover; decisions with legal "
        "or similarly significant effects on a person without human review; data unlike the "
        "community's own (see Limitations).",
    ]


def _release(v: VersionFacts) -> list[str]:
    lines = ["## Release", ""]
    if v.release_proposal is None:
        lines.append(
            "Not released: the weights stay on the community's hub, which serves predictions "
            "to API-key holders. Members release a version by vote (a `model.release` "
            "proposal)."
        )
        return lines
    lic = _spdx_link(v.release_license) if v.release_license else "no license named"
    lines.append(
        f"Released by the members' vote (proposal {v.release_proposal} in the log) under "
        f"{lic}; the weights are "
        + (
            f"public: `GET /api/v1/models/{v.version}/artifact` serves the artifact whose "
            f"SHA-256 is `{v.artifact_sha256}`."
            if v.release_weights == "public"
            else "not published."
        )
    )
    return lines


def _spdx_link(spdx: str) -> str:
    if SPDX_ID.fullmatch(spdx):
        return f"[{_md(spdx)}](https://spdx.org/licenses/{spdx}.html)"
    return _md(spdx)


def _training_data(v: VersionFacts) -> list[str]:
    fed = v.federated
    held = "" if fed is None else " held by the hub (its central items)"
    lines = [
        "## Training data",
        "",
        f"{plural(v.manifest_count, 'item')}{held} from "
        f"{plural(len(v.contributors), 'contributing member')}. "
        f"The manifest lists every {'central ' if fed else ''}training item; its Merkle root "
        f"`{v.manifest_root}` is in the signed log (entry {v.index}), so anyone can check an "
        "item's inclusion against it.",
    ]
    if fed is not None:
        node_items = sum(n.items for n in fed.nodes)
        lines += [
            "",
            f"Besides them, {plural(len(fed.nodes), 'member')}' nodes trained on "
            f"{plural(node_items, 'item')} that stayed on their own machines: they are in no "
            "manifest and the hub never saw them (see How it was trained).",
        ]
    if v.previous is not None:
        lines += [
            "",
            f"{plural(v.withdrawn, 'item was', 'items were')} withdrawn since version "
            f"{v.previous}.",
        ]
    lines += ["", "### By license", ""]
    lines += _table(
        ["License", "Items"], ([_spdx_link(s), str(n)] for s, n in v.licenses), [False, True]
    )
    lines += ["", "### By consent scope", ""]
    lines += _table(["Scope", "Items"], ([_md(s), str(n)] for s, n in v.consent), [False, True])
    lines += ["", "### By member", ""]
    lines += _table(
        ["Member", "Key", "Items"],
        ([_md(c.name), f"`{c.member[:16]}`", str(c.items)] for c in v.contributors),
        [False, False, True],
    )
    return lines


def _evaluation(v: VersionFacts) -> list[str]:
    if v.federated is not None and v.evaluation_count == 0:
        said = (
            "The hub has no held-out set of its own, so these metrics are the nodes' own: each "
            "node scored the last round's model on the held-out part of its data, and the metrics "
            "are pooled over those parts, as the last round's entry logs them."
        )
    else:
        said = (
            f"Measured on a held-out set of {plural(v.evaluation_count, 'item')} "
            f"({v.holdout_pct}% of the contributions, never trained on), whose Merkle root is "
            f"`{v.evaluation_root}`."
        )
    lines = ["## Evaluation", "", said, ""]
    lines += _table(["Metric", "Value"], ([_md(k), _md(x)] for k, x in v.metrics), [False, True])
    return lines


def _lineage(v: VersionFacts) -> list[str]:
    return [
        "## Lineage and proof",
        "",
        f"- **Log origin:** `{v.origin}`",
        f"- **Log entry:** {v.index} (the `model.version` event; the log held {v.log_size} "
        "entries when this card was rendered)",
        f"- **Manifest Merkle root:** `{v.manifest_root}`",
        f"- **Evaluation Merkle root:** `{v.evaluation_root}`",
        f"- **Artifact SHA-256:** `{v.artifact_sha256}`",
        "",
        "To check these facts yourself, with `HUB` the hub's URL or directory:",
        "",
        "```sh",
        "# The model.version entry is in the log the hub signed:",
        f"commonweal ledger prove --index {v.index} --hub HUB",
        "# The versions, manifests and shards this model descends from:",
        f"commonweal lineage --model {v.version} --hub HUB",
        "# Every signature, the Merkle root, and a replay of every event:",
        "commonweal ledger verify --hub HUB",
        f"# The artifact you downloaded is the one the log names (expect {v.artifact_sha256}):",
        "sha256sum ARTIFACT",
        "```",
        *_federated_proof(v.federated),
    ]


def _federated_proof(fed: FederatedFacts | None) -> list[str]:
    if fed is None:
        return []
    first = fed.rounds[0].entry if fed.rounds else 0
    last = fed.rounds[-1].entry if fed.rounds else 0
    return [
        "",
        "Each round of the federated run is its own `federated.round` entry (listed under How "
        "it was trained): who took part, the SHA-256 of each node's update as the node sent "
        "it, which updates were rejected and why, the aggregate's SHA-256, the metrics, and "
        "each accepted member's Shapley value that round with the coalition utilities it was "
        "computed from (the rules recompute the values and each member's epsilon on replay). "
        "A member can hash the update their node sent (the float64 little-endian bytes of "
        "`W`, then `b`) and find it in the round's entry:",
        "",
        "```sh",
        "# The run's round entries, decoded, and the first one's place in the signed log:",
        f"commonweal ledger show --start {first} --end {last + 1} --json --hub HUB",
        f"commonweal ledger prove --index {first} --hub HUB",
        "```",
    ]


def _reproducibility(v: VersionFacts) -> list[str]:
    lines = [
        "## Reproducibility",
        "",
        f"- **Trainer:** {_md(v.trainer)}",
        f"- **Seed:** {v.seed}",
        f"- **Shards:** {v.shards}" + (" (the one federated model)" if v.federated else ""),
        "",
        "### Parameters",
        "",
    ]
    lines += _table(
        ["Parameter", "Value"],
        (
            [_md(k), _md(json.dumps(v.params[k], sort_keys=True, ensure_ascii=False))]
            for k in sorted(v.params)
        ),
        [False, False],
    )
    lines += ["", "### Libraries", ""]
    lines += _table(
        ["Library", "Version"], ([_md(k), _md(x)] for k, x in v.libraries), [False, False]
    )
    if v.federated is not None:
        lines += [
            "",
            "The nodes' data never left their machines, so nobody else can retrain this "
            "version from scratch. What anyone can check: the artifact is the one the log "
            "names (its SHA-256 above), the round entries chain the run together, and each "
            "member can check that their node's update is the one logged.",
        ]
        return lines
    lines += [
        "",
        "Training the same trainer with these parameters, seed and shard count on the items the "
        "manifest lists, with these library versions, gives the same model, saved byte for "
        "byte the same: each shard's SHA-256 and the artifact's match the log. With other "
        "library versions, compare the held-out metrics instead.",
    ]
    return lines


def _unlearning(v: VersionFacts) -> list[str]:
    fed = v.federated
    if fed is not None:
        central = (
            f" It started from version {fed.start}'s weights, so what that version learned "
            "from the central items is in it too; a withdrawn central item is gone only from "
            "versions trained after it was withdrawn."
            if fed.start
            else ""
        )
        return [
            "## Unlearning",
            "",
            "A federated model is one model, not shards: nothing is retrained piece by piece. A "
            "member who withdraws their node (`federated.withdraw`), leaves or is removed takes "
            "part in no later round, so later versions are trained without their node. This "
            "version, and every earlier one, keeps what their updates taught it; the log keeps "
            f"their update hashes and enroll root, never their data.{central}",
        ]
    lines = [
        "## Unlearning",
        "",
        f'The model is trained with SISA (Bourtoule et al., "Machine Unlearning", 2021): the '
        f"training items are split into {plural(v.shards, 'shard')}, each with its own "
        "sub-model, and the sub-models' predictions are combined. An item lives in exactly one "
        "shard, so when a member withdraws it only that shard is retrained.",
        "",
    ]
    if v.previous is None:
        lines.append(
            "This is the community's first model version: every shard was trained from scratch."
        )
        return lines
    kept = len(v.reused)
    lines.append(
        f"Against version {v.previous}: {plural(v.withdrawn, 'item was', 'items were')} "
        f"withdrawn; {kept} of {v.shards} shards were reused unchanged and the other "
        f"{max(v.shards - kept, 0)} retrained."
    )
    if v.reused:
        rows = ([str(s), str(f)] for s, f in v.reused)
        lines += ["", *_table(["Shard", "Reused from version"], rows, [True, True])]
    return lines


def _limitations(v: VersionFacts) -> list[str]:
    lines = [
        "## Limitations",
        "",
        f"- The data comes only from members of {_md(v.community)} who chose to contribute; it "
        "is not a sample of any wider population, and the model inherits its gaps and biases.",
        "- The hub screens contributions (format, duplicates, personal data, suspected label "
        "errors) and members review them, which reduces errors but does not remove them.",
        "- The held-out set is drawn from the same contributions, so its metrics estimate "
        "performance on data like the community's own, not on data from elsewhere.",
    ]
    if v.federated is not None:
        lines.append(
            "- The nodes' data was neither screened nor reviewed: the hub never saw it. Robust "
            "aggregation and the outlier rule limit what a wrong or dishonest node can do to "
            "the model; they do not prove its data right."
        )
    if v.evaluation_count < _SMALL_HOLDOUT and not (v.federated and not v.evaluation_count):
        lines.append(
            f"- The held-out set has only {plural(v.evaluation_count, 'item')}: treat the "
            "metrics as rough."
        )
    lines += [
        (
            "- Unlearning is per version: a withdrawn node is out of later versions, but this "
            "version keeps what its updates taught it, for anyone who kept a copy."
            if v.federated
            else "- Unlearning is per version: a withdrawn item is gone from this version's "
            "retrained shards, but artifacts of earlier versions trained on it stay as they "
            "were for anyone who kept a copy."
        ),
        "- The log proves what the hub recorded, when, and which artifact hash it published; it "
        + (
            "does not by itself prove that the artifact came from the logged rounds: the nodes' "
            "data cannot be retrained on elsewhere, so each member checking their own update's "
            "hash is the check there is."
            if v.federated
            else "does not by itself prove that the artifact came from training on the "
            "manifest. Reproducing the training (above) checks that."
        ),
    ]
    return lines


def _summary(v: VersionFacts) -> str:
    fed = v.federated
    if fed is None:
        return (
            f"A {v.kind} model that the hub of {_md(v.community)} trained on "
            f"{plural(v.manifest_count, 'item')} its members contributed."
        )
    central = (
        f", and on the hub's {plural(v.manifest_count, 'central item')} beside them"
        if v.manifest_count and any(r.central for r in fed.rounds)
        else ""
    )
    return (
        f"A {v.kind} model that members of {_md(v.community)} trained together with "
        f"federated learning: {plural(len(fed.nodes), 'member')}' nodes trained it on data that "
        f"never left their own machines{central}."
    )


def _aggregation_words(fed: FederatedFacts) -> str:
    words = AGGREGATION.get(fed.aggregation, _md(fed.aggregation))
    shown = {k: x for k, x in fed.aggregation_params}
    extra = []
    if "trim_pct" in shown:
        extra.append(f"cutting {_md(shown['trim_pct'])}% of the updates at each end")
    if "malicious" in shown:
        extra.append(f"tolerating {_md(shown['malicious'])} dishonest nodes")
    outlier = shown.get("outlier_factor", "0")
    rule = (
        f"An update whose distance to the coordinate-wise median update is more than "
        f"{_md(outlier)} times the median such distance is rejected: it is left out, earns "
        "nothing that round, and the round's entry says why."
        if outlier not in ("0", "")
        else "No update is rejected for its distance from the others."
    )
    return f"{_md(fed.aggregation)}: {words}" + "".join(f", {e}" for e in extra) + f". {rule}"


def _dp_words(fed: FederatedFacts) -> str:
    if fed.dp_mode == "off":
        return (
            "none: no differential-privacy noise was added, so an update can reveal more "
            "about a node's data than a noised one would."
        )
    who = (
        "the hub clipped each update and added Gaussian noise to their sum"
        if fed.dp_mode == "server-fixed"
        else "each node clipped its update and added Gaussian noise before sending it"
    )
    return (
        f"{_md(fed.dp_mode)}: {who} (noise multiplier {_md(fed.noise_multiplier)}, clipping "
        f"norm {_md(fed.clipping_norm)}, delta {_md(fed.delta)}). Each member's privacy loss "
        "(epsilon, composed over every DP round their node has taken part in) is in each "
        "round's log entry, and the rules recompute it on replay."
    )


def _start_words(v: VersionFacts, fed: FederatedFacts) -> str:
    if fed.start == 0:
        return (
            "from zeros: the hub trained none of its own items, and the model learned only "
            "from the members' nodes."
        )
    central = sum(1 for r in fed.rounds if r.central)
    beside = (
        f"In {'every round' if central == len(fed.rounds) else plural(central, 'round')} the "
        f"hub also trained on the {plural(v.manifest_count, 'central item')} version "
        f"{fed.start} trained on, beside the nodes, mixed in by example counts (the round's "
        "`central` share in the log; it earns no member anything)."
        if central
        else "The hub's central items took no part in the rounds."
    )
    return f"from version {fed.start}'s weights. {beside}"


def _federated_training(v: VersionFacts, fed: FederatedFacts) -> list[str]:
    entries = [r.entry for r in fed.rounds]
    span = (
        f"log entries {min(entries)} to {max(entries)}"
        if len(entries) > 1
        else f"log entry {entries[0]}"
        if entries
        else "no log entries"
    )
    eps = fed.dp_mode != "off"
    lines = [
        "## How it was trained",
        "",
        f"Federated: each member below ran a node (a Flower SuperNode) on their own machine, "
        f"and their data never left it. In each round the hub ({_flower(v)} SuperLink) sent "
        f"the current weights to the nodes; each node took {fed.local_epochs} full-batch "
        f"gradient steps (learning rate {_md(fed.learning_rate)}, L2 penalty {_md(fed.l2)}) on "
        "its own items, less a held-out part it scores the model on, and sent back its "
        "updated weights; the hub combined the accepted updates into the next round's weights.",
        "",
        f"- **Flower run:** `{fed.run}`, {plural(len(fed.rounds), 'round')} ({span})",
        f"- **Started:** {_start_words(v, fed)}",
        f"- **Aggregation:** {_aggregation_words(fed)}",
        f"- **Differential privacy:** {_dp_words(fed)}",
        "",
        "### Members' nodes",
        "",
        "Items are what each member's enrollment (`federated.enroll`) logged; the enroll root "
        "is the Merkle root over salted commitments of those items, so a member can later "
        "prove which items their node held without showing them.",
        "",
    ]
    header = ["Member", "Key", "Items", "Accepted rounds", *(["Epsilon"] if eps else [])]
    lines += _table(
        [*header, "Enroll root"],
        (
            [
                _md(n.name),
                f"`{n.member[:16]}`",
                str(n.items),
                str(n.rounds),
                *([_md(n.epsilon) or "—"] if eps else []),
                f"`{n.root}`",
            ]
            for n in fed.nodes
        ),
        [False, False, True, True, *([True] if eps else []), False],
    )
    lines += ["", "### Rounds", ""]
    lines += _table(
        ["Round", "Log entry", "Accepted", "Rejected", "Central items", "Aggregate SHA-256"],
        (
            [
                str(r.round),
                str(r.entry),
                str(r.accepted),
                str(r.rejected),
                str(r.central),
                f"`{r.aggregate}`",
            ]
            for r in fed.rounds
        ),
        [True, True, True, True, True, False],
    )
    return lines


def render_model_card(info: dict[str, Any]) -> str:
    """A Markdown model card for one model version, with YAML front matter.

    Raises :class:`~commonweal.errors.HubError` if ``info`` is not the shape the hub builds:
    a card must not print a wrong hash or index as if the log said so.
    """
    v = parse_info(info)
    sections = [
        _front_matter(v),
        [
            f"# {_md(v.community)}: model version {v.version}",
            "",
            _summary(v) + " Every fact on this card is recorded in the community's signed, "
            f"append-only log `{v.origin}` (entry {v.index}) and can be checked without "
            "trusting the hub.",
        ],
        _model_details(v),
        _intended_use(v),
        _release(v),
        _training_data(v),
        *([_federated_training(v, v.federated)] if v.federated else []),
        _evaluation(v),
        _lineage(v),
        _reproducibility(v),
        _unlearning(v),
        _limitations(v),
    ]
    return "\n\n".join("\n".join(s) for s in sections) + "\n"
