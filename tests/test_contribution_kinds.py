"""Each kind of task takes its own kind of item, and newcomers need more reviews."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from commonweal.client import HubClient
from commonweal.community.charter import validate_charter
from commonweal.errors import InvalidInput, TooLarge
from commonweal.hub import Hub
from commonweal.ledger.keys import SigningKey
from tests.kit import Clock, cw, cwj


def open_coop(
    tmp_path: Path, database: str, task: dict[str, Any], **extra: Any
) -> tuple[HubClient, dict[str, SigningKey]]:
    charter = validate_charter({"name": "Kinds", "task": task, **extra})
    hub, founder = Hub.init(
        tmp_path / "hub", charter=charter, founder_name="Ada", database=database
    )
    hub.close()
    c = HubClient(str(tmp_path / "hub"))
    keys = {"Ada": founder}
    for name in ("Grace", "Alan", "Tim"):
        keys[name] = SigningKey.generate()
        c.join(keys[name], name)
    return c, keys


def png(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray((pixels * 15).clip(0, 255).astype("uint8"), mode="L").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_tabular_items_follow_the_charter_columns(tmp_path: Path, database_url: str) -> None:
    c, keys = open_coop(
        tmp_path,
        database_url,
        {
            "kind": "tabular-regression",
            "columns": [
                {"name": "rooms", "type": "numeric"},
                {"name": "area", "type": "categorical", "categories": ["north", "south"]},
            ],
            "target": "rent",
        },
    )
    ok = {"features": {"rooms": "3", "area": "north"}, "target": "1250.50"}
    r = c.contribute(keys["Grace"], [ok])["items"][0]
    assert r["status"] == "in_review"
    for bad, words in [
        ({"features": {"rooms": "three", "area": "north"}, "target": "1"}, "number"),
        ({"features": {"rooms": "3", "area": "east"}, "target": "1"}, "not one of"),
        ({"features": {"rooms": "3"}, "target": "1"}, "columns"),
        ({"features": {"rooms": "nan", "area": "north"}, "target": "1"}, "number"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            c.contribute(keys["Grace"], [bad])
    c.close()


def test_images_are_checked_and_near_copies_flagged(tmp_path: Path, database_url: str) -> None:
    c, keys = open_coop(
        tmp_path,
        database_url,
        {"kind": "image-classification", "labels": [str(d) for d in range(10)]},
    )
    digits = load_digits()
    first = c.contribute(keys["Grace"], [{"image": png(digits.images[0]), "label": "0"}])
    assert first["items"][0]["status"] == "in_review"
    touched = digits.images[0].copy()
    touched[0, 0] += 1
    near = c.contribute(keys["Alan"], [{"image": png(touched), "label": "0"}])["items"][0]
    assert "near-duplicate" in near["flags"]
    other = c.contribute(keys["Alan"], [{"image": png(digits.images[1]), "label": "1"}])
    assert other["items"][0]["flags"] == []
    big = base64.b64encode(_png_bytes(np.zeros((16, 16)))).decode()
    with pytest.raises(TooLarge, match="at most 8x8"):
        c.contribute(keys["Tim"], [{"image": big, "label": "3"}])
    with pytest.raises(InvalidInput, match="PNG or JPEG"):
        c.contribute(
            keys["Tim"], [{"image": base64.b64encode(b"GIF89a...").decode(), "label": "3"}]
        )
    c.close()


def _png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels.astype("uint8"), mode="L").save(buf, "PNG")
    return buf.getvalue()


def test_newcomers_items_need_more_reviews(tmp_path: Path, database_url: str) -> None:
    c, keys = open_coop(
        tmp_path,
        database_url,
        {"kind": "text-classification", "labels": ["yes", "no"]},
        review={"reviews_needed": 1, "newcomer_reviews_needed": 3, "newcomer_until_accepted": 1},
    )
    text = "The ferry to the island runs every hour from the north harbour in summer."
    r = c.contribute(keys["Grace"], [{"text": text, "label": "yes"}])["items"][0]
    assert c.contribution(r["id"])["reviews_needed"] == 3
    for name in ("Ada", "Alan"):
        c.review(keys[name], r["id"], "accept")
        assert c.contribution(r["id"])["status"] == "in_review"
    c.review(keys["Tim"], r["id"], "accept")
    assert c.contribution(r["id"])["status"] == "accepted"
    # One accepted item and Grace is no longer a newcomer: one review suffices now.
    text2 = "A choir meets in the church hall on Thursday evenings and welcomes new voices."
    r2 = c.contribute(keys["Grace"], [{"text": text2, "label": "no"}])["items"][0]
    assert c.contribution(r2["id"])["reviews_needed"] == 1
    c.close()


def test_a_member_over_the_daily_limit_is_refused(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Mid-day on the hub's clock: a run at midnight must not start a new day half-way.
    fixed = Clock("2030-01-01T12:00:00.000Z")
    monkeypatch.setattr(Hub, "clock", staticmethod(fixed))
    monkeypatch.setattr("commonweal.ledger.event.now", fixed)  # members sign on it too
    c, keys = open_coop(
        tmp_path,
        database_url,
        {"kind": "text-classification", "labels": ["yes", "no"]},
        limits={"max_items_per_member_per_day": 3},
    )
    texts = [
        f"Market day number {i} brought apples, pears and plums to the square." for i in range(4)
    ]
    c.contribute(keys["Grace"], [{"text": t, "label": "yes"} for t in texts[:2]])
    with pytest.raises(TooLarge, match="per member per day"):
        c.contribute(keys["Grace"], [{"text": t, "label": "yes"} for t in texts[2:]])
    c.contribute(keys["Alan"], [{"text": t, "label": "yes"} for t in texts[2:]])  # own limit
    c.close()


def test_an_image_folder_is_contributed_from_the_command_line(
    tmp_path: Path, database_url: str
) -> None:
    hub = tmp_path / "hub"
    info = cwj(
        "init",
        hub,
        "--name",
        "Digits",
        "--task",
        "image-classification",
        "--labels",
        "0,1,2,3,4,5,6,7,8,9",
        "--database",
        database_url,
    )
    folder = tmp_path / "scans"
    folder.mkdir()
    digits = load_digits()
    rows = ["file,label,caption"]
    for i in range(5):
        (folder / f"d{i}.png").write_bytes(base64.b64decode(png(digits.images[i])))
        rows.append(f"d{i}.png,{digits.target[i]},scan {i}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    res = cwj("contribute", folder, "--hub", hub, "--key", info["founder_key_file"])
    assert (res["items"], res["in_review"]) == (5, 5)
    proc = cw(
        "contribute",
        tmp_path / "nothing.csv",
        "--hub",
        hub,
        "--key",
        info["founder_key_file"],
        ok=False,
    )
    assert proc.returncode == 1 and "does not exist" in proc.stderr
