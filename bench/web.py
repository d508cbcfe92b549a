"""Web app figures: server time for every page, and what a member waits for in a browser.

1. ``pages`` — every page of the web app served by a real ``commonweal serve`` (loopback,
   one client at a time), timed from request to last byte, N times each; p50 and p95 per
   page, beside an **anchor measured in the same run**: the JSON API route that returns
   the same data (the page's extra cost is rendering). Two communities:

   - ``demo``: the README's demo community (``commonweal demo``: 11 members, ~3,800
     entries); target p95 < 100 ms;
   - ``large``: a text community grown to 1,000 members and ~100,000 log entries
     (joins, contributions, two reviews per item, proposals with a vote from every
     member); target p95 < 300 ms.

   Member-only fragments (``/w/...``) are timed with a signed request, as the browser
   makes them.
2. ``browser`` — Playwright driving Debian's Chromium on the demo: time from opening the
   home page to its charts drawn; and from pressing "submit" on the contribute page with
   a 500-item CSV to the screening report shown.

One JSON document goes to stdout; progress to stderr.

    .venv/bin/python bench/web.py > /tmp/bench_web.json       # both communities
    .venv/bin/python bench/web.py --quick                     # demo only, fewer requests
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from commonweal.community.charter import validate_charter
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.wire import AUTH_HEADER, auth_header, describe_item
from machine import log, machine_facts, served

CHROMIUM = "/usr/bin/chromium"

# (name, page path, anchor JSON path). ``{member}``, ``{item}``, ``{proposal}``, ``{entry}``
# are filled from the community measured. A page whose route does not exist is reported
# as missing rather than timed.
PAGES: list[tuple[str, str, str]] = [
    ("home", "/", "/api/v1/community"),
    ("join", "/join", "/api/v1/community"),
    ("contribute", "/contribute", "/api/v1/community"),
    ("review", "/review", "/api/v1/reviews/reliability"),
    ("me", "/me", "/api/v1/members/{member}/statement"),
    ("member", "/members/{member}", "/api/v1/members/{member}/statement"),
    ("model", "/model", "/api/v1/models"),
    ("model-version", "/model/{version}", "/api/v1/models/{version}/lineage"),
    ("model-card", "/model/card", "/api/v1/models/latest/card"),
    ("model-keys", "/model/keys", "/api/v1/models"),
    ("decide", "/decide", "/api/v1/proposals"),
    ("proposal", "/decide/{proposal}", "/api/v1/proposals/{proposal}"),
    ("propose", "/decide/new", "/api/v1/community"),
    ("ledger", "/ledger", "/api/v1/ledger/entries?start={last_page}"),
    ("entry", "/ledger/{entry}", "/api/v1/ledger/proof/inclusion?index={entry}"),
]
# Member-only fragments, fetched signed: (name, fragment path, anchor JSON path).
FRAGMENTS: list[tuple[str, str, str]] = [
    ("waiting", "/w/waiting", "/api/v1/proposals"),
    ("me-summary", "/w/me/summary", "/api/v1/members/{member}/statement"),
    ("me-items", "/w/me/items", "/api/v1/contributions?member={member}&limit=50"),
    ("me-leave", "/w/me/leave", "/api/v1/delegations"),
    ("review-next", "/w/review/next", "/api/v1/reviews/next"),
    ("decide-mine", "/w/decide/{proposal}/me", "/api/v1/proposals/{proposal}"),
    ("webhook", "/w/webhook", "/api/v1/members/{member}/webhook"),
]


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def timed(
    client: httpx.Client, path: str, n: int, headers: Callable[[str], dict[str, str]]
) -> dict[str, Any]:
    times, status, size = [], 0, 0
    for _ in range(n):
        h = headers(path)
        t = time.perf_counter()
        r = client.get(path, headers=h)
        body = r.content
        times.append((time.perf_counter() - t) * 1000)
        status, size = r.status_code, len(body)
    return {
        "status": status,
        "bytes": size,
        "p50_ms": round(pct(times, 0.5), 2),
        "p95_ms": round(pct(times, 0.95), 2),
    }


def row(
    name: str, path: str, p: dict[str, Any], anchor_path: str, a: dict[str, Any]
) -> dict[str, Any]:
    """One page's figures beside its anchor's (and a progress line)."""
    log(f"  {name:12} p95 {p['p95_ms']:7.1f} ms (anchor {a['p95_ms']:.1f} ms)")
    return {
        "path": path,
        "page": p,
        "anchor": {"path": anchor_path, **a},
        "p95_over_anchor": round(p["p95_ms"] / max(a["p95_ms"], 1e-6), 2),
    }


def measure(hub_dir: Path, fill: dict[str, Any], key: SigningKey, n: int) -> dict[str, Any]:
    html = {"Accept": "text/html"}
    rows: dict[str, Any] = {}
    with served(hub_dir) as (base, _proc), httpx.Client(base_url=base, timeout=60) as client:
        for name, page, anchor in PAGES:
            page_path, anchor_path = page.format(**fill), anchor.format(**fill)
            client.get(page_path, headers=html)  # warm: first render compiles templates
            p = timed(client, page_path, n, lambda _p: html)
            if p["status"] == 404:
                rows[name] = {"path": page_path, "missing": True}
                continue
            a = timed(client, anchor_path, n, lambda _p: {})
            rows[name] = row(name, page_path, p, anchor_path, a)

        def signed(path: str) -> dict[str, str]:
            return {AUTH_HEADER: auth_header(key, "GET", path), "Accept": "text/html"}

        for name, frag, anchor in FRAGMENTS:
            frag_path, anchor_path = frag.format(**fill), anchor.format(**fill)
            p = timed(client, frag_path, n, signed)
            a = timed(client, anchor_path, n, signed)
            rows[name] = row(name, frag_path, p, anchor_path, a)
    timed_pages = [r for r in rows.values() if "page" in r]
    return {
        "pages": rows,
        "worst_p95_ms": max(r["page"]["p95_ms"] for r in timed_pages),
        "missing": sorted(k for k, r in rows.items() if r.get("missing")),
    }


# -- the communities -----------------------------------------------------------------------


def demo_hub(directory: Path) -> tuple[Path, SigningKey]:
    from commonweal.demo import build_demo

    hub_dir = directory / "demo"
    build_demo(hub_dir, say=lambda s: None)
    return hub_dir, SigningKey.load(hub_dir / "founder.key")


WORDS = {
    "river": "river flood bank water bridge canal rain mill ferry delta stream weir lock tide",
    "market": "market bread price stall cheese apples baker coins fair trader scales fish wool",
}


def text(rng: random.Random, label: str, i: int) -> str:
    words = WORDS[label].split()
    return f"Note {i}: " + " ".join(rng.choice(words) for _ in range(12)) + f" #{i}"


def large_hub(directory: Path, members: int, items: int, proposals: int) -> tuple[Path, SigningKey]:
    """A text community with ``members`` members, ``items`` items each reviewed twice, and
    ``proposals`` proposals every member votes on: about 3 * items + members * proposals
    entries."""
    rng = random.Random(7)
    hub_dir = directory / "large"
    charter = validate_charter(
        {
            "name": "Large Co-op",
            "join_policy": "open",
            "task": {"kind": "text-classification", "labels": ["river", "market"]},
            "review": {"reviews_needed": 2, "newcomer_reviews_needed": 2, "consensus": "majority"},
            "governance": {"voting_period_seconds": 30 * 86400},
        }
    )
    hub, founder = Hub.init(hub_dir, charter=charter, founder_name="Founder", database=None)
    keys = [founder] + [SigningKey.generate() for _ in range(members - 1)]
    t0 = time.perf_counter()
    try:
        joins = [
            sign_event(k, "member.join", {"name": f"Member {i:04d}"}, hub=hub.origin).to_wire()
            for i, k in enumerate(keys[1:], 1)
        ]
        for i in range(0, len(joins), 500):
            hub.submit({"events": joins[i : i + 500]})
        log(f"  {members} members ({time.perf_counter() - t0:.0f}s)")
        batch = 100
        for n in range(0, items, batch):
            owner = keys[(n // batch) % len(keys)]
            metas, parts = [], []
            for i in range(n, min(items, n + batch)):
                label = "river" if i % 2 else "market"
                meta, part = describe_item(
                    {"text": text(rng, label, i), "label": label},
                    task_kind="text-classification",
                    license="CC-BY-4.0",
                    consent=["train", "evaluate"],
                )
                metas.append(meta)
                parts.append(part)
            ev = sign_event(owner, "contribution.submit", {"items": metas}, hub=hub.origin)
            hub.data.contribute({**ev.to_wire(), "content": parts})
            reviews = []
            for meta in metas:
                others = [k for k in rng.sample(keys, 3) if k is not owner][:2]
                reviews += [
                    sign_event(
                        k,
                        "review.submit",
                        {"item": meta["id"], "verdict": "accept"},
                        hub=hub.origin,
                    ).to_wire()
                    for k in others
                ]
            hub.submit({"events": reviews})
            if (n // batch) % 20 == 0:
                log(
                    f"  {n + batch}/{items} items reviewed, {hub.log.size()} entries "
                    f"({time.perf_counter() - t0:.0f}s)"
                )
        log("  training")
        hub.models.train()
        for p in range(proposals):
            ev = sign_event(
                founder,
                "proposal.create",
                {
                    "title": f"Question {p}",
                    "actions": [{"type": "signal", "text": f"Shall we {p}?"}],
                },
                hub=hub.origin,
            )
            hub.submit({"events": [ev.to_wire()]})
            number = hub.log.size() - 1
            votes = [
                sign_event(
                    k,
                    "vote.cast",
                    {"proposal": number, "choice": rng.choice(["for", "against"])},
                    hub=hub.origin,
                ).to_wire()
                for k in keys
            ]
            for i in range(0, len(votes), 500):
                hub.submit({"events": votes[i : i + 500]})
        log(f"  built: {hub.log.size()} entries in {time.perf_counter() - t0:.0f}s")
    finally:
        hub.close()
    return hub_dir, founder


def fill_for(hub_dir: Path, member: str) -> dict[str, Any]:
    hub = Hub.open(hub_dir)
    try:
        st = hub.state
        size = hub.log.size()
        return {
            "member": member,
            "item": next(iter(st.contributions), ""),
            "proposal": max(st.proposals) if st.proposals else 0,
            "version": st.latest_model.version if st.latest_model else 1,
            "entry": size // 2,
            "last_page": max(0, size - 50),
            "size": size,
            "members": len(st.members),
        }
    finally:
        hub.close()


# -- the browser ---------------------------------------------------------------------------


def text_hub(directory: Path) -> tuple[Path, SigningKey]:
    """An empty text community (its founder alone), for the contribute timing."""
    charter = validate_charter(
        {
            "name": "Text Co-op",
            "join_policy": "open",
            "task": {"kind": "text-classification", "labels": ["river", "market"]},
        }
    )
    hub_dir = directory / "text"
    hub, founder = Hub.init(hub_dir, charter=charter, founder_name="Founder", database=None)
    hub.close()
    return hub_dir, founder


def csv_text(rows: list[tuple[str, str]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["text", "label"])
    w.writerows(rows)
    return buf.getvalue()


def store_key(page: Any, key: SigningKey) -> None:
    import base64

    page.evaluate(
        """async (seed) => { const k = await import('/static/js/keys.js');
            const bytes = Uint8Array.from(atob(seed), (c) => c.charCodeAt(0));
            await k.storeKey(await k.fromSeed(bytes, 'Founder')); }""",
        base64.b64encode(key.seed).decode(),
    )


def contribute_figures(directory: Path, runs: int) -> dict[str, Any]:
    """Submit → screening report for 500 text items in the browser, against the SDK sending
    the same number of items to the same kind of hub (what `commonweal contribute` does)."""
    from playwright.sync_api import sync_playwright

    from commonweal.client import HubClient

    rng = random.Random(11)
    browser_ms, sdk_ms = [], []
    for run in range(runs):
        rows = []
        for i in range(500):
            label = "river" if i % 2 else "market"
            rows.append((text(rng, label, run * 1000 + i), label))
        hub_dir, founder = text_hub(directory / f"browser{run}")
        with served(hub_dir) as (base, _proc), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            try:
                page = browser.new_context().new_page()
                page.goto(base + "/contribute")
                store_key(page, founder)
                page.reload()
                page.set_input_files(
                    "#file",
                    files=[
                        {
                            "name": "items.csv",
                            "mimeType": "text/csv",
                            "buffer": csv_text(rows).encode(),
                        }
                    ],
                )
                page.wait_for_selector("#checked.ok", timeout=60_000)
                t = time.perf_counter()
                page.click("#send")
                page.wait_for_selector("#report:not([hidden])", timeout=300_000)
                browser_ms.append((time.perf_counter() - t) * 1000)
            finally:
                browser.close()
        sdk_dir, sdk_founder = text_hub(directory / f"sdk{run}")
        with served(sdk_dir) as (base, _proc):
            client = HubClient(base)
            items = [{"text": t_, "label": lab} for t_, lab in rows]
            t = time.perf_counter()
            for i in range(0, len(items), 100):
                client.contribute(sdk_founder, items[i : i + 100])
            sdk_ms.append((time.perf_counter() - t) * 1000)
            client.close()
        log(f"  500 items: browser {browser_ms[-1]:.0f} ms, SDK {sdk_ms[-1]:.0f} ms")
    b, a = statistics.median(browser_ms), statistics.median(sdk_ms)
    return {
        "items": 500,
        "browser_submit_to_report_ms": {
            "median": round(b, 1),
            "runs": [round(x) for x in browser_ms],
        },
        "anchor_sdk_contribute_ms": {"median": round(a, 1), "runs": [round(x) for x in sdk_ms]},
        "browser_over_sdk": round(b / a, 2),
    }


def browser_figures(hub_dir: Path, runs: int) -> dict[str, Any]:
    """Opening the home page to its charts drawn, against fetching the JSON the charts show
    (the models and the cap table) from the same browser."""
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with served(hub_dir) as (base, _proc), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            times, anchor = [], []
            for _ in range(runs):
                ctx = browser.new_context()
                page = ctx.new_page()
                t = time.perf_counter()
                page.goto(base + "/")
                page.wait_for_selector("body[data-charts-drawn]", timeout=30_000)
                times.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                page.evaluate(
                    """() => Promise.all(["/api/v1/models", "/api/v1/shares"].map(
                        (u) => fetch(u).then((r) => r.json())))"""
                )
                anchor.append((time.perf_counter() - t) * 1000)
                ctx.close()
            out["home_to_charts_ms"] = {
                "median": round(statistics.median(times), 1),
                "max": round(max(times), 1),
            }
            out["anchor_chart_json_fetch_ms"] = {"median": round(statistics.median(anchor), 1)}
            log(f"  home → charts drawn: median {out['home_to_charts_ms']['median']} ms")
        finally:
            browser.close()
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="demo only, 20 requests per page")
    ap.add_argument("--requests", type=int, default=50, help="requests per page")
    ap.add_argument("--large-only", action="store_true", help="only the 100k-entry community")
    args = ap.parse_args(argv)
    n = 20 if args.quick else args.requests
    result: dict[str, Any] = {
        "machine": machine_facts("fastapi", "uvicorn", "jinja2", "playwright")
    }
    with tempfile.TemporaryDirectory() as tmp:
        if not args.large_only:
            log("building the demo community")
            demo_dir, founder = demo_hub(Path(tmp))
            fill = fill_for(demo_dir, founder.key_id)
            log(f"demo: {fill['size']} entries, {fill['members']} members")
            result["demo"] = {"community": fill, **measure(demo_dir, fill, founder, n)}
            result["browser"] = browser_figures(demo_dir, 5 if args.quick else 10)
            log("contributing 500 text items in the browser and with the SDK")
            result["contribute"] = contribute_figures(Path(tmp), 1 if args.quick else 3)
        if not args.quick:
            log("building the large community (several minutes)")
            large_dir, lfounder = large_hub(Path(tmp), members=1000, items=16_000, proposals=68)
            lfill = fill_for(large_dir, lfounder.key_id)
            log(f"large: {lfill['size']} entries, {lfill['members']} members")
            result["large"] = {"community": lfill, **measure(large_dir, lfill, lfounder, n)}
    result["targets"] = {
        "demo_p95_ms": 100,
        "large_p95_ms": 300,
        "demo_worst_p95_ms": result.get("demo", {}).get("worst_p95_ms"),
        "large_worst_p95_ms": result.get("large", {}).get("worst_p95_ms"),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
