"""The shared test vectors (``tests/vectors/*.json``) hold for the browser's modules too:
canonical.js, keys.js, sign.js, items.js and verify.js, run in Chromium on a served hub
(WebCrypto needs the page's secure context), must give the bytes Python gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kit.browser import served
from tests.kit.communities import make_hub
from tests.kit.databases import Databases
from tests.web.conftest import off_the_browser_thread

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def _bare_hub(directory: Path, url: str) -> None:
    hub, _ = make_hub(directory, url)
    hub.close()


@pytest.fixture(scope="module")
def js(
    browser: Any, module_databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A page on a served hub (a bare one: the vectors need only the static modules)."""
    directory = tmp_path_factory.mktemp("vectors") / "hub"
    off_the_browser_thread(_bare_hub, directory, module_databases.new())
    with served(directory) as url:
        context = browser.new_context()
        page = context.new_page()
        page.goto(url + "/ledger")
        yield page
        context.close()


MODULES = ["bytes", "canonical", "keys", "sign", "items", "verify"]


def run(page: Any, script: str, arg: Any) -> Any:
    """Evaluate ``script`` (an async arrow function of ``(arg, m)``, ``m`` holding the app's
    modules and byte helpers) in the page. Through the DevTools protocol, which the page's
    CSP (no eval) does not govern; the modules load as the app loads them."""
    imports = ", ".join(f'...(await import("/static/js/{name}.js"))' for name in MODULES)
    return page.evaluate(
        f"async (arg) => {{ const m = {{{imports}}}; return ({script})(arg, m); }}", arg
    )


def test_canonical_js_writes_the_vector_bytes(js: Any) -> None:
    cases = load("canonical.json")["cases"]
    got = run(js, "async (cases, m) => cases.map((c) => m.toHex(m.canonicalBytes(c.value)))", cases)
    assert {c["name"]: g for c, g in zip(cases, got, strict=True)} == {
        c["name"]: c["hex"] for c in cases
    }


def test_keys_js_gives_the_vector_key_ids_and_key_files(js: Any) -> None:
    keys = load("keys.json")["keys"]
    got = run(
        js,
        """async (keys, m) => Promise.all(keys.map(async (k) => {
            const key = await m.fromSeed(m.fromBase64(k.seed), k.name);
            const parsed = await m.parseKeyFile(k.key_file);
            return [key.keyId, await key.keyFile(), parsed.keyId];
        }))""",
        keys,
    )
    assert got == [[k["key_id"], k["key_file"], k["key_id"]] for k in keys]


def test_sign_js_signs_events_and_requests_as_the_vectors_say(js: Any) -> None:
    events = load("events.json")["events"]
    got = run(
        js,
        """async (events, m) => Promise.all(events.map(async (e) => {
            const key = await m.fromSeed(m.fromBase64(e.seed));
            const opts = {hub: e.hub, time: e.time, nonce: e.nonce};
            const signed = await m.signEvent(key, e.kind, e.body, opts);
            const check = await m.verifyEvent(e.event, e.sig);
            return [m.canonical(signed.event), signed.sig, check.ok];
        }))""",
        events,
    )
    assert got == [[e["canonical"], e["sig"], True] for e in events]
    headers = load("auth.json")["headers"]
    got = run(
        js,
        """async (hs, m) => Promise.all(hs.map(async (h) =>
            m.authHeader(await m.fromSeed(m.fromBase64(h.seed)), h.method, h.target,
                {body: h.body, unixMs: h.unix_ms, nonce: h.nonce})))""",
        headers,
    )
    assert got == [h["header"] for h in headers]


def test_items_js_commits_to_items_as_the_vectors_say(js: Any) -> None:
    items = load("items.json")["items"]
    got = run(
        js,
        """async (items, m) => Promise.all(items.map((c) => m.describeItem(c.item, {
            taskKind: c.task_kind, license: c.license, consent: c.consent,
            salt: m.fromBase64(c.salt)})))""",
        items,
    )
    assert got == [[c["meta"], c["part"]] for c in items]


def test_verify_js_checks_merkle_proofs_as_the_vectors_say(js: Any) -> None:
    v = load("merkle.json")
    got = run(
        js,
        """async (v, m) => {
            const all = (xs, f) => Promise.all(xs.map(f));
            const leaves = await all(v.leaves,
                async (l) => m.toHex(await m.leafHash(m.fromBase64(l.data))));
            const nodes = await all(v.nodes,
                async (n) => m.toHex(await m.nodeHash(m.fromHex(n.left), m.fromHex(n.right))));
            const check = async (p) => (await m.verifyInclusion(m.fromHex(p.leaf_hash),
                p.index, p.size, p.proof.map(m.fromHex), m.fromHex(p.root))).ok;
            const good = await all(v.inclusion, check);
            const bad = await all(v.bad_inclusion, check);
            return {leaves, nodes, good, bad};
        }""",
        v,
    )
    assert got["leaves"] == [leaf["hash"] for leaf in v["leaves"]]
    assert got["nodes"] == [n["hash"] for n in v["nodes"]]
    assert all(got["good"]) and len(got["good"]) == len(v["inclusion"])
    assert got["bad"] == [False] * len(v["bad_inclusion"])


def test_verify_js_checks_signed_checkpoints_as_the_vectors_say(js: Any) -> None:
    v = load("checkpoint.json")
    got = run(
        js,
        """async (v, m) => {
            const key = await m.parseVerifierKey(v.verifier);
            const good = await m.verifyNote(v.note, key);
            const cp = m.parseCheckpoint(good.text);
            const cosigned = await m.verifyNote(v.cosigned_note, key);
            const bad = await Promise.all(
                v.bad_notes.map(async (b) => (await m.verifyNote(b.note, key)).ok));
            const specKey = await m.parseVerifierKey(v.spec_example.verifier);
            const spec = await m.verifyNote(v.spec_example.note, specKey);
            let wrongHash = null;
            try { await m.parseVerifierKey(v.verifier.replace(v.key_hash, "00000000")); }
            catch (err) { wrongHash = err.message; }
            return {keyHash: m.toHex(key.keyHash), good: good.ok, text: good.text,
                    cp: [cp.origin, cp.size, m.toHex(cp.root)], cosigned: cosigned.ok,
                    bad, spec: [spec.ok, spec.text], wrongHash};
        }""",
        v,
    )
    assert got["keyHash"] == v["key_hash"]
    assert got["good"] and got["text"] == v["body"] and got["cosigned"]
    assert got["cp"] == [v["origin"], v["size"], v["root"]]
    assert got["bad"] == [False] * len(v["bad_notes"])
    assert got["spec"] == [True, v["spec_example"]["text"]]
    assert "does not match" in got["wrongHash"]


def test_verify_js_verifies_a_whole_entry_offline(js: Any) -> None:
    v = load("entry.json")
    steps = run(
        js,
        """async (v, m) => {
            const leaf = m.fromBase64(v.entry.leaf);
            const slice = new TextDecoder().decode(m.signedSlice(leaf));
            const steps = await m.verifyEntry({
                entry: {index: v.entry.index, leaf, sig: v.entry.sig},
                shown: v.shown, proof: v.proof, note: v.note, verifierKey: v.verifier});
            return {slice, steps};
        }""",
        v,
    )
    assert steps["slice"] == v["signed_slice"]
    assert [(s["id"], s["ok"]) for s in steps["steps"]] == [
        ("key", True),
        ("checkpoint", True),
        ("event", True),
        ("leaf", True),
        ("inclusion", True),
    ]
