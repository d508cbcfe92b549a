"""``commonweal demo``: a small community, built through the same SDK a member would use.

It is rebuilt only if the directory holds no hub yet; a second run reuses it (and verifies
it again). Each later part of Commonweal adds its step here.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from commonweal.client import HubClient
from commonweal.community.charter import Charter, validate_charter
from commonweal.community.governance import seconds_between
from commonweal.federated.bundle import app_sha256
from commonweal.hub import Hub
from commonweal.ledger.keys import SigningKey
from commonweal.verify import verify_hub

__all__ = ["DEMO_MEMBERS", "build_demo"]

DEMO_NAME = "Commonweal demo co-op"
# A member's vote counts once they have been a member this long when voting opens. The
# demo's story runs in a minute, so its probation is a second (a real community: days).
DEMO_PROBATION_SECONDS = 1
# Simulated members: who they are does not matter yet; later parts give them data to share.
DEMO_MEMBERS = [
    "Grace",
    "Alan",
    "Katherine",
    "Tim",
    "Ada L.",
    "Radia",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
]


def build_demo(directory: Path, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the demo community in ``directory`` (or reuse the one there), verify its log,
    and return a summary of what it holds; ``say`` prints the story as it goes."""
    directory = Path(directory)
    if not (directory / "hub.toml").exists():
        say(f"Creating the demo community in {directory} …")
        _tell_the_story(directory, say)
    else:
        say(f"Reusing the demo community in {directory}")
    hub = Hub.open(directory)
    try:
        report = verify_hub(hub, workers=1)
        holdings = _holdings(hub)
    finally:
        hub.close()
    say(f"Verified the log: {report.size} entries, root {report.root[:16]}…")
    return {
        "hub": str(directory),
        "name": DEMO_NAME,
        "members": holdings.pop("members"),
        "size": report.size,
        "root": report.root,
        "checks": report.checks,
        **holdings,
    }


def _demo_charter() -> Charter:
    return validate_charter(
        {
            "name": DEMO_NAME,
            "description": "A demo data co-operative: members pool handwritten digits "
            "and own the model trained on them.",
            "join_policy": "invite",
            "task": {
                "kind": "image-classification",
                "labels": [str(d) for d in range(10)],
                "image_width": 8,
                "image_height": 8,
            },
            "review": {"reviews_needed": 2, "newcomer_reviews_needed": 2},
            # Each member may invite 5 people a month (the default), so the demo's members
            # invite each other in a chain rather than all through Ada.
            "membership": {"invites_per_member": 5, "invite_period_seconds": 30 * 86400},
            # Short enough for a demo to wait out; a real community votes for days, and
            # its probation is days too (README: a week is a sane start).
            "governance": {
                "voting_period_seconds": 2,
                "timelock_seconds": 1,
                "probation_seconds": DEMO_PROBATION_SECONDS,
            },
            # Two clinics train on digits the hub never sees (Flower, on this machine).
            "federated": {
                "enabled": True,
                "rounds": 3,
                "min_clients": 2,
                "app_sha256": app_sha256(),
            },
        }
    )


def _tell_the_story(directory: Path, say: Callable[[str], None]) -> None:
    """Found the community and play every step of its story through the SDK."""
    hub, founder = Hub.init(directory, charter=_demo_charter(), founder_name="Ada")
    hub.close()
    with HubClient(str(directory)) as client:
        keys = _invite_members(client, founder, directory / "members", say)
        _contribute_digits(client, keys, say)
        scan = client.embedded_hub.data.scan_labels()
        say(f"  confident learning flagged {len(scan['flagged'])} suspected label errors")
        _review_everything(client, keys, say)
        _model_story(client, keys, say)
        _ownership_story(client, keys, say)
        _governance_story(client, keys, say)
        _federated_story(client, keys, directory, say)


def _invite_members(
    client: HubClient, founder: SigningKey, keys_dir: Path, say: Callable[[str], None]
) -> dict[str, SigningKey]:
    """Each demo member joins with an invite from the one before (Ada invites Grace), with
    a key saved under ``keys_dir``: no one member mints the whole membership."""
    keys: dict[str, SigningKey] = {}
    inviter, inviter_name = founder, "Ada"
    for name in DEMO_MEMBERS:
        key = SigningKey.generate()
        key.save(keys_dir / f"{name.lower().replace(' ', '-').replace('.', '')}.key", name=name)
        token, _ = client.create_invite(inviter)
        client.join(key, name, invite=token)
        keys[name] = key
        say(f"  {name} joined with an invite from {inviter_name}")
        inviter, inviter_name = key, name
    keys["Ada"] = founder
    return keys


def _holdings(hub: Hub) -> dict[str, Any]:
    """What the demo community holds now: members, contributions, models, treasury,
    shares, proposals and epochs."""
    rows = hub.data.contributions(limit=10**9)
    owners = hub.ownership.cap_table()
    return {
        "members": len(hub.members()),
        "contributions": {
            status: sum(r["status"] == status for r in rows)
            for status in ("accepted", "rejected", "in_review", "refused", "withdrawn")
        },
        "models": [
            {"version": m["version"], "items": m["items"], "metrics": m["metrics"]}
            for m in hub.models.versions()
        ],
        "treasury": hub.state.treasury.to_json(),
        "shares": {r["name"]: r["shares"] for r in owners["holders"]},
        "credits_paid": {r["name"]: r["credits"] for r in owners["holders"]},
        "proposals": [
            {"proposal": p.proposal, "title": p.title, "status": p.status}
            for p in hub.state.proposals.values()
        ],
        "epochs": [
            {"epoch": e.epoch, "data": e.data, "review": e.review, "compute": e.compute}
            for e in hub.state.epochs.values()
        ],
        "relabelled": sum(
            r["status"] == "accepted" and r["decided_label"] != r["label"] for r in rows
        ),
        "flagged": {
            flag: sum(flag in r["flags"].split(",") for r in rows)
            for flag in ("near-duplicate", "personal-data-redacted", "suspected-label-error")
        },
    }


# Who gives what: uneven portions of the digits, and three members who misbehave.
_PORTIONS = {
    "Ada": 14,
    "Grace": 16,
    "Alan": 12,
    "Katherine": 11,
    "Tim": 9,
    "Ada L.": 8,
    "Radia": 8,
    "Edsger": 7,
    "Barbara": 6,
    "Donald": 5,
    "Frances": 4,
}
MISLABELLER, DUPLICATOR, OVERSHARER, SLOPPY_REVIEWER = "Edsger", "Donald", "Barbara", "Frances"
# Digits kept back for later: the latecomer's batch, then Katherine's. They are digits the
# community has not seen (a fresh copy of one it has would be a copy: its value goes to
# whoever gave the original).
_LATER = {"latecomer": 150, "Katherine": 60, "clinics": 300}


def _digit_order() -> list[int]:
    """The digits in the order the demo hands them out (a fixed shuffle)."""
    import numpy as np
    from sklearn.datasets import load_digits

    n = len(load_digits().target)
    return [int(i) for i in np.random.default_rng(7).permutation(n)]


def _kept_back(who: str) -> list[int]:
    order = _digit_order()
    later = order[len(order) - sum(_LATER.values()) :]
    ends: dict[str, tuple[int, int]] = {}
    start = 0
    for name, n in _LATER.items():
        ends[name] = (start, start + n)
        start += n
    a, b = ends[who]
    return later[a:b]


def _png(pixels: Any) -> str:
    import io

    import numpy as np
    from PIL import Image

    img = Image.fromarray((np.asarray(pixels) * 15).clip(0, 255).astype("uint8"), mode="L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _contribute_digits(
    client: HubClient, keys: dict[str, SigningKey], say: Callable[[str], None]
) -> None:
    """Split scikit-learn's bundled handwritten digits among the members and send them."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(7)
    order = _digit_order()
    order = order[: len(order) - sum(_LATER.values())]
    rng.permutation(len(digits.target))  # the draw _digit_order made: the rest stays as it was
    total = sum(_PORTIONS.values())
    start = 0
    given: dict[str, list[int]] = {}
    for name, share in _PORTIONS.items():
        n = len(order) * share // total
        given[name] = [int(i) for i in order[start : start + n]]
        start += n
    charter = client.community()["charter"]
    for name, idxs in given.items():
        items = []
        for i in idxs:
            label = str(int(digits.target[i]))
            if name == MISLABELLER and rng.random() < 0.3:
                label = str((int(label) + int(rng.integers(1, 10))) % 10)
            item: dict[str, Any] = {"image": _png(digits.images[i].tolist()), "label": label}
            if name == OVERSHARER and rng.random() < 0.5:
                item["caption"] = "scanned by barbara.l@example.org, call +44 20 7946 0958"
            items.append(item)
        if name == DUPLICATOR:  # re-sends other members' items as their own
            for i in given["Grace"][:40]:
                items.append(
                    {"image": _png(digits.images[i].tolist()), "label": str(int(digits.target[i]))}
                )
        refused = 0
        for b in range(0, len(items), 100):
            receipt = client.contribute(keys[name], items[b : b + 100], charter=charter)
            refused += sum(r["status"] == "refused" for r in receipt["items"])
        say(f"  {name} contributed {len(items)} digits ({refused} refused at screening)")


def _review_everything(
    client: HubClient, keys: dict[str, SigningKey], say: Callable[[str], None]
) -> None:
    """Members review each other's items: they see the image (here: the true digit); one
    sloppy reviewer answers at random. Consensus weights them by reliability."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(11)
    # What a careful reviewer would see: the true digit of each distinct image.
    truth = {
        _png(digits.images[i].tolist()): str(int(digits.target[i]))
        for i in range(len(digits.target))
    }
    names = list(keys)
    rounds = 0
    while True:
        pending = [c for c in client.contributions(status="in_review")]
        if not pending:
            break
        rounds += 1
        events = []
        state = client.embedded_hub.state
        for c in pending:
            # An item back in review (a flag sent it there) needs reviewers new to it.
            seen = state.contributions[c["id"]].reviewers
            reviewers = [
                n for n in names if keys[n].key_id != c["member"] and keys[n].key_id not in seen
            ]
            rng.shuffle(reviewers)
            needed = c["reviews_needed"] - c["reviews"]
            for name in reviewers[:needed]:
                key = keys[name]
                item = client.content(key, c["id"])
                true = truth.get(item["image"])
                if name == SLOPPY_REVIEWER:
                    verdict = str(int(rng.integers(0, 10)))
                else:
                    verdict = true or c["label"]
                body: dict[str, Any] = {"item": c["id"], "verdict": "accept"}
                if verdict != c["label"]:
                    body = {"item": c["id"], "verdict": "relabel", "label": verdict}
                events.append(client.sign(key, "review.submit", body))
        for b in range(0, len(events), 500):
            client.submit(events[b : b + 500])
        if rounds > 5:
            break
    rows = client.contributions()
    accepted = sum(r["status"] == "accepted" for r in rows)
    relabelled = sum(r["status"] == "accepted" and r["decided_label"] != r["label"] for r in rows)
    say(f"  reviews done: {accepted} items accepted ({relabelled} relabelled by consensus)")


LATECOMER, LEAVER, CONSUMER = "Radia", "Frances", "Acme Reading Service"


def _model_story(
    client: HubClient, keys: dict[str, SigningKey], say: Callable[[str], None]
) -> None:
    """Train, serve, grow, unlearn: the community's model over three versions."""
    from sklearn.datasets import load_digits

    hub = client.embedded_hub
    _say_trained(say, "trained", hub.models.train())
    _sell_predictions(client, keys, say)

    # Radia brings digits the community has not seen; reviewed, then v2.
    digits = load_digits()
    fresh = [
        {"image": _png(digits.images[i].tolist()), "label": str(int(digits.target[i]))}
        for i in _kept_back("latecomer")
    ]
    charter = client.community()["charter"]
    client.contribute(keys[LATECOMER], fresh, charter=charter)
    _review_everything(client, keys, lambda line: None)
    _say_trained(
        say,
        f"trained after {LATECOMER} shared {len(fresh)} more",
        hub.models.train(incremental=True),
    )

    # Frances leaves and takes her data with her: v3 retrains only the shards it was in.
    mine = [
        c["id"]
        for c in client.contributions(status="accepted")
        if c["member"] == keys[LEAVER].key_id
    ]
    client.withdraw(keys[LEAVER], mine)
    res = hub.models.train(incremental=True)
    _say_trained(say, f"unlearned {LEAVER}'s {len(mine)} items", res)
    proof = client.prove_item(mine[0], res["version"])
    say(
        f"  lineage: item {mine[0][:12]}… was in v1 and v2; the v{res['version']} manifest "
        f"proves it {'present' if proof['included'] else 'absent'}"
    )


def _say_trained(say: Callable[[str], None], what: str, res: dict[str, Any]) -> None:
    acc = float(res["metrics"]["accuracy"])
    say(
        f"  model v{res['version']} {what}: {res['manifest']['count']} items, accuracy "
        f"{acc:.3f} on {res['evaluation']['count']} held-out items; shards retrained "
        f"{len(res['retrained'])}/{len(res['shards'])}"
    )


def _sell_predictions(
    client: HubClient, keys: dict[str, SigningKey], say: Callable[[str], None]
) -> None:
    """A consumer pays per prediction: Ada issues them a key; calls are metered."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    secret, _ = client.create_apikey(keys["Ada"], CONSUMER, quota_per_day=10_000)
    picks = np.random.default_rng(3).choice(len(digits.target), size=200, replace=False)
    right = 0
    for n in range(0, len(picks), 50):
        batch = [{"image": _png(digits.images[i].tolist())} for i in picks[n : n + 50]]
        res = client.predict(batch, api_key=secret)
        right += sum(
            p["label"] == str(int(digits.target[i]))
            for p, i in zip(res["predictions"], picks[n : n + 50], strict=True)
        )
    billed = client.embedded_hub.models.close_revenue()
    assert billed is not None
    say(
        f"  {CONSUMER} made {len(picks)} metered predictions ({right} right); revenue event "
        f"at entry {billed['entry']}: treasury {billed['balance']} credits"
    )


def _ownership_story(
    client: HubClient, keys: dict[str, SigningKey], say: Callable[[str], None]
) -> None:
    """Value the latest version, mint the epoch's shares, pay the treasury out."""
    hub = client.embedded_hub
    report = hub.ownership.value()
    say(
        f"  valuation {report['valuation']} of v{report['model']} ({report['method']}, "
        f"K={report['params']['k']}): {report['values']['count']} items valued, "
        f"{report['negative']} of negative value flagged for review, {report['uncredited']} "
        "relabelled by review credited to no one"
    )
    members = {m["name"]: m for m in report["members"]}
    careful = [
        float(m["value_per_item_sent"])
        for name, m in members.items()
        if name not in (MISLABELLER, DUPLICATOR, SLOPPY_REVIEWER, LATECOMER)
    ]
    mean = sum(careful) / len(careful)
    for name in (MISLABELLER, DUPLICATOR):
        m = members[name]
        ratio = float(m["value_per_item_sent"]) / mean
        say(
            f"  {name} sent {m['sent']} items and earns {ratio:.0%} of what a careful member "
            "earns per item sent"
        )
    epoch = hub.ownership.close_epoch()
    pools = epoch["pools"]
    say(
        f"  reward epoch {epoch['epoch']}: {epoch['shares']} shares minted — data "
        f"{pools['data']['amount']}, review {pools['review']['amount']}, compute "
        f"{pools['compute']['amount']} (no federated work yet)"
    )
    table = hub.ownership.cap_table()
    top = ", ".join(f"{r['name']} {r['percent']:.1f}%" for r in table["holders"][:3])
    review = sorted(r["review"] for r in table["holders"] if r["name"] != SLOPPY_REVIEWER)
    sloppy = next((r["review"] for r in table["holders"] if r["name"] == SLOPPY_REVIEWER), 0)
    say(
        f"  cap table: {top}, …; {SLOPPY_REVIEWER}'s random reviews earned {sloppy} review "
        f"shares, a careful reviewer's median is {review[len(review) // 2]}"
    )
    paid = hub.ownership.pay_out()
    say(
        f"  payout {paid['payout']}: {paid['amount']} treasury credits to "
        f"{len(paid['parts'])} shareholders pro rata (treasury now {paid['balance']})"
    )


def _governance_story(
    client: HubClient, keys: dict[str, SigningKey], say: Callable[[str], None]
) -> None:
    """Members vote to pay reviewers more; the hub carries it out; the next epoch shows it."""
    import time

    hub = client.embedded_hub
    # Every member's probation must be over when voting opens, or their vote weighs 0.
    joined = max(hub.state.joined_at.values())
    time.sleep(max(0.0, DEMO_PROBATION_SECONDS - seconds_between(joined, hub.clock())) + 0.05)
    # Radia trusts Grace on governance: Grace's vote counts for her where she doesn't vote.
    client.submit([client.sign(keys["Radia"], "delegate.set", {"to": keys["Grace"].key_id})])
    number = _propose_reviewer_pay(client, keys, hub)
    against = {"Donald", "Edsger"}
    votes = [
        client.sign(
            key, "vote.cast", {"proposal": number, "choice": "against" if n in against else "for"}
        )
        for n, key in keys.items()
        if n not in ("Radia", "Frances")
    ]
    client.submit(votes)
    p = hub.state.proposals[number]
    say(
        f"  proposal {number} (Grace): rewards split 70/20/10 -> 60/30/10; "
        f"{len(votes)} votes cast, Radia delegates to Grace; two-thirds needed"
    )
    wait = seconds_between(hub.clock(), p.executable_after)
    time.sleep(max(0.0, wait) + 0.05)
    done = hub.governance.execute(number)
    t = done["tally"]
    say(
        f"  voting closed: for {t['counts']['for']}, against {t['counts']['against']} "
        f"({t['reason']}); the hub executed it at entry {done['entry']}"
    )
    _epoch_under_new_rules(client, keys, say)


def _propose_reviewer_pay(client: HubClient, keys: dict[str, SigningKey], hub: Hub) -> int:
    """Grace proposes a charter amendment: 60% of each epoch to data, 30% to review.
    Returns the proposal's number (its log index)."""
    charter = hub.state.charter
    assert charter is not None
    amended = charter.to_json()
    amended["rewards"] |= {"data_pct": 60, "review_pct": 30}
    created = client.submit(
        [
            client.sign(
                keys["Grace"],
                "proposal.create",
                {
                    "title": "Pay reviewers more: 60% data, 30% review",
                    "description": "Review keeps our data clean; it should earn more.",
                    "actions": [{"type": "charter.amend", "charter": amended}],
                },
            )
        ]
    )
    return int(created["entries"][0]["index"])


def _epoch_under_new_rules(
    client: HubClient, keys: dict[str, SigningKey], say: Callable[[str], None]
) -> None:
    """Katherine shares 60 more digits, which are reviewed; the next version trains on
    them and is valued, and the next epoch pays only that new value, split by the amended
    charter."""
    from sklearn.datasets import load_digits

    hub = client.embedded_hub
    digits = load_digits()
    more = [
        {"image": _png(digits.images[i].tolist()), "label": str(int(digits.target[i]))}
        for i in _kept_back("Katherine")
    ]
    client.contribute(keys["Katherine"], more, charter=client.community()["charter"])
    _review_everything(client, keys, lambda line: None)
    version = hub.models.train(incremental=True)["version"]
    hub.ownership.value()
    epoch = hub.ownership.close_epoch()
    pools = epoch["pools"]
    katherine = keys["Katherine"].key_id
    got = sum(a["shares"] for a in pools["data"]["awards"] if a["member"] == katherine)
    say(
        f"  Katherine shared {len(more)} more digits; v{version} trained on them; reward "
        f"epoch {epoch['epoch']} under the new rules pays only value not rewarded before: "
        f"data {pools['data']['amount']} ({got} to Katherine), review "
        f"{pools['review']['amount']}, compute {pools['compute']['amount']}"
    )


CLINICS = ("Northside Clinic", "Harbour Clinic")


def _federated_story(
    client: HubClient, keys: dict[str, SigningKey], directory: Path, say: Callable[[str], None]
) -> None:
    """Two clinics hold digits they may not share. They join, enroll their nodes (the log
    gets counts and a root, never the data), and their Flower SuperNodes train the next
    version with the hub's SuperLink; the version is valued and the epoch pays them."""
    import csv
    import io

    from sklearn.datasets import load_digits

    from commonweal.federated import node as fed_node
    from commonweal.federated import training as fed_training
    from commonweal.federated.service import Federation
    from commonweal.federated.superlink import stop_group

    hub = client.embedded_hub
    digits = load_digits()
    kept = _kept_back("clinics")
    charter = client.community()["charter"]
    clinic_keys: dict[str, Path] = {}
    data_dirs: dict[str, Path] = {}
    for n, name in enumerate(CLINICS):
        slug = name.lower().replace(" ", "-")
        key = SigningKey.generate()
        key_path = directory / "clinics" / f"{slug}.key"
        key.save(key_path, name=name)
        token, _ = client.create_invite(keys["Ada"])
        client.join(key, name, invite=token)
        keys[name] = key
        clinic_keys[name] = key_path
        # The clinic's own records: a folder of images and labels.csv, on its machine.
        folder = directory / "clinics" / slug / "data"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        rows = io.StringIO()
        w = csv.writer(rows)
        w.writerow(["file", "label"])
        for i in kept[n::2]:
            f = f"{i:04d}.png"
            (folder / f).write_bytes(base64.b64decode(_png(digits.images[i].tolist())))
            w.writerow([f, str(int(digits.target[i]))])
        (folder / "labels.csv").write_text(rows.getvalue())
        data_dirs[name] = folder
        data = fed_node.read_node_data(folder, charter, key.seed)
        body = fed_node.enroll_body(
            data,
            fed_node.node_public_line(key_path),
            license=charter["licenses"][0],
            consent=["train", "evaluate"],
        )
        client.submit([client.sign(key, "federated.enroll", body)])
        say(
            f"  {name} enrolled a node: {data.items} digits stay on its machine; the log "
            f"holds their count and root {data.root[:16]}…"
        )
    # Valuing v4 sent its items of negative value back to review: settle those and
    # retrain the central model, so the clinics' run starts from the community's pool.
    _review_everything(client, keys, lambda line: None)
    hub.refresh()
    if fed_training.pool_changed(hub.state):
        _say_trained(say, "retrained after re-review", hub.models.train(incremental=True))
    federation = Federation(hub)
    federation.start(serve=True)
    procs = []
    try:
        info = client.federated()
        for name in CLINICS:
            prepared = fed_node.prepare_node(
                clinic_keys[name], info, charter, data_dirs[name], keys[name].key_id
            )
            procs.append(
                fed_node.start_supernode(prepared, log=prepared.directory / "supernode.log")
            )
        res = federation.train(wait=120)
    finally:
        for proc in procs:
            stop_group(proc)
        federation.stop()
    fl = res["federated"]
    say(
        f"  model v{res['version']} trained by the clinics' nodes (Flower, {len(fl['rounds'])} "
        f"rounds from v{fl['start']}): accuracy {float(res['metrics']['accuracy']):.3f}; each "
        f"round is a signed entry ({fl['rounds'][0]}–{fl['rounds'][-1]}) with every update's hash"
    )
    report = hub.ownership.value()
    values = ", ".join(
        f"{hub.state.members[m['member']].name} {float(m['value']):+.4f}" for m in report["members"]
    )
    one = 1 / max(1, res["evaluation"]["count"])
    say(
        f"  valuation {report['valuation']} of v{report['model']} (round Shapley, what each "
        f"clinic added to the central items): {values} (one held-out item is {one:.4f})"
    )
    epoch = hub.ownership.close_epoch()
    pools = epoch["pools"]
    say(
        f"  reward epoch {epoch['epoch']}: data {pools['data']['amount']} shares by value, "
        f"compute {pools['compute']['amount']} by validated rounds — to the clinics, whose "
        "data the hub never held"
    )
