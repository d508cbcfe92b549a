"""Hostile images are refused with a 4xx, never a 500, and never decoded past their bounds.

Every file here is made in the test, with Pillow and zlib: a PNG whose header claims
100000x100000 pixels, one-pixel PNGs carrying 50 MB of compressed text or ICC profile, a
JPEG claiming 65535x65535, truncated and mislabelled files. Each goes to a real server
(``commonweal serve``, on SQLite and PostgreSQL) as a contribution and as a prediction
input, and must come back as the project's error JSON with 400 or 413; the server's peak
memory must not move by more than the images could honestly need.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from commonweal.errors import InvalidInput, TooLarge
from commonweal.images import open_image
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.wire import describe_item
from tests.kit import Databases, community, digit_items, free_port, origin_of, start_server

API = "/api/v1"
ITEM_BYTES = 1_048_576  # the charter's largest item: bombs must get past the byte cap


# -- hostile files -----------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(width: int, height: int, *extra: bytes, rows: bytes | None = None) -> bytes:
    """A greyscale PNG with this header and these chunks before its (tiny) pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(rows if rows is not None else b"\x00" * (width + 1) * height)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + b"".join(extra)
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )


@cache
def _zeros(n: int) -> bytes:
    return zlib.compress(b"\x00" * n, 9)


def _jpeg(width: int = 8, height: int = 8, **save: Any) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 128).save(buf, "JPEG", **save)
    return buf.getvalue()


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real 8x8 JPEG whose frame header (SOF0) is rewritten to claim other dimensions."""
    raw = bytearray(_jpeg())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(raw)


FIFTY_MB = 50_000_000

# name -> (file, status, error code, words the message holds)
HOSTILE: dict[str, tuple[bytes, int, str, str]] = {
    "png header 100000x100000": (
        _png(100_000, 100_000, rows=b"\x00" * 64),
        413,
        "too_large",
        "pixels",
    ),
    "png header 5000x5000": (_png(5000, 5000, rows=b"\x00" * 64), 413, "too_large", "at most 8x8"),
    "jpeg header 65535x65535": (_jpeg_claiming(65535, 65535), 413, "too_large", "pixels"),
    "png 1 pixel, 50 MB zTXt": (
        _png(1, 1, _chunk(b"zTXt", b"note\x00\x00" + _zeros(FIFTY_MB))),
        400,
        "invalid_input",
        "not a readable PNG",
    ),
    "png 1 pixel, 50 MB iTXt": (
        _png(1, 1, _chunk(b"iTXt", b"note\x00\x01\x00\x00\x00" + _zeros(FIFTY_MB))),
        400,
        "invalid_input",
        "not a readable PNG",
    ),
    "png 1 pixel, 50 MB ICC profile": (
        _png(1, 1, _chunk(b"iCCP", b"icc\x00\x00" + _zeros(FIFTY_MB))),
        400,
        "invalid_input",
        "not a readable PNG",
    ),
    "png 1 pixel, 8 text chunks of 200 kB": (
        _png(1, 1, *(_chunk(b"zTXt", b"k%d\x00\x00" % i + _zeros(200_000)) for i in range(8))),
        400,
        "invalid_input",
        "not a readable PNG",
    ),
    "png over the item's bytes": (
        _png(1, 1, _chunk(b"tEXt", b"pad\x00" + b"x" * (ITEM_BYTES + 1))),
        413,
        "too_large",
        "bytes",
    ),
    "png warning: 0-frame animation": (
        _png(1, 1, _chunk(b"acTL", bytes(8))),
        400,
        "invalid_input",
        "Invalid APNG",
    ),
    "png truncated": (_png(8, 8)[:40], 400, "invalid_input", "not a readable PNG"),
    "png with its pixels cut": (_png(8, 8)[:-30], 400, "invalid_input", "not a readable PNG"),
    "jpeg truncated": (_jpeg()[:200], 400, "invalid_input", "not a readable JPEG"),
    "gif": (b"GIF89a" + bytes(64), 400, "invalid_input", "not a PNG or JPEG"),
    "empty": (b"", 400, "invalid_input", "not a PNG or JPEG"),
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# -- the decoder on its own --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_decoder_refuses_each_hostile_file_with_our_error(name: str) -> None:
    raw, status, _, words = HOSTILE[name]
    expected = TooLarge if status == 413 else InvalidInput
    for data in (raw, b64(raw)):
        with pytest.raises(expected, match=words):
            open_image(data, "image", max_width=8, max_height=8, max_bytes=ITEM_BYTES)


def test_the_decoder_reads_sound_images_and_refuses_text_that_is_not_base64() -> None:
    img = open_image(b64(_png(8, 8)), "image", max_width=8, max_height=8)
    assert img.size == (8, 8) and img.format == "PNG"
    big_icc = _jpeg(icc_profile=bytes(200_000))  # a big (but whole) profile is only bytes
    assert open_image(big_icc, "image", max_width=8, max_height=8).format == "JPEG"
    with pytest.raises(TooLarge, match="at most 1000"):
        open_image(big_icc, "image", max_bytes=1000)
    for text in ("iVBORw0KGgo\u00e9", "not base64!", "AAAA" * 10):
        with pytest.raises(InvalidInput, match="image"):
            open_image(text, "image")
    with pytest.raises(InvalidInput, match="base64"):
        open_image(7, "image")  # type: ignore[arg-type]


def test_a_warning_from_the_decoder_is_refused_every_time_not_only_the_first() -> None:
    # An animation control chunk claiming 0 frames: Pillow only warns and reads on. The
    # warning must refuse the image each time, though Python shows a warning from one
    # place only once by default.
    for _ in range(3):
        with pytest.raises(InvalidInput, match="Invalid APNG"):
            open_image(HOSTILE["png warning: 0-frame animation"][0], "image")


# -- over HTTP, on each database ---------------------------------------------------------------


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, module_databases: Databases
) -> Iterator[tuple[str, dict[str, SigningKey], str, int]]:
    """A digits community (version 1 trained, items up to 1 MiB) behind a real server:
    its URL, the members' keys, an API key, and the server's process id."""
    directory = tmp_path_factory.mktemp("hostile") / "hub"
    client, keys = community(
        directory,
        module_databases.new(),
        items=digit_items(0, 200),
        charter_extra={
            "limits": {"max_item_bytes": ITEM_BYTES},
            "training": {"shards": 1, "evaluation": {"holdout_pct": 15, "min_items": 5}},
        },
    )
    with client:
        assert client.embedded_hub.models.train()["version"] == 1
        secret, _ = client.create_apikey(keys["Grace"], "Shop")
    port = free_port()
    server = start_server(directory, port)
    try:
        yield f"http://127.0.0.1:{port}", keys, secret, server.pid
    finally:
        server.terminate()
        server.wait(20)


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def _log_size(http: httpx.Client) -> int:
    return int(http.get(f"{API}/ledger/checkpoint").text.splitlines()[1])


def _contribution(key: SigningKey, image: str, origin: str) -> dict[str, Any]:
    meta, part = describe_item(
        {"image": image, "label": "1"},
        task_kind="image-classification",
        license="CC-BY-4.0",
        consent=["train", "evaluate"],
    )
    event = sign_event(key, "contribution.submit", {"items": [meta]}, hub=origin)
    return {**event.to_wire(), "content": [part]}


def test_hostile_images_get_a_4xx_on_contribute_and_predict_and_memory_stays_bounded(
    served: tuple[str, dict[str, SigningKey], str, int],
) -> None:
    url, keys, secret, pid = served
    with httpx.Client(base_url=url, timeout=60) as http:
        sound = b64(_png(8, 8))
        bearer = {"Authorization": f"Bearer {secret}"}
        ok = http.post(
            f"{API}/models/latest/predict", json={"inputs": [{"image": sound}]}, headers=bearer
        )
        assert ok.status_code == 200, ok.text
        size = _log_size(http)
        origin = origin_of(url)
        before = _peak_rss_kib(pid)
        answers = {}
        for name, (raw, status, _, words) in HOSTILE.items():
            image = b64(raw)
            for route, resp in (
                (
                    "contribute",
                    http.post(
                        f"{API}/contributions", json=_contribution(keys["Alan"], image, origin)
                    ),
                ),
                (
                    "predict",
                    http.post(
                        f"{API}/models/latest/predict",
                        json={"inputs": [{"image": image}]},
                        headers=bearer,
                    ),
                ),
            ):
                err = resp.json().get("error", {})
                answers[(name, route)] = (resp.status_code, err.get("code"))
                if resp.status_code == status:
                    assert words in err["message"], (name, route, err)
        expected = {
            (n, r): (s, c) for n, (_, s, c, _) in HOSTILE.items() for r in ("contribute", "predict")
        }
        assert answers == expected
        grew_mib = (_peak_rss_kib(pid) - before) / 1024
        # Every file above is at most 1 MiB and 8x8 pixels once read; a decoder that
        # believed one header or inflated one chunk would need 50 MB to 40 GB.
        assert grew_mib < 40, f"the server's peak memory grew by {grew_mib:.0f} MiB"
        # Nothing refused reached the log, and the server still answers.
        assert _log_size(http) == size
        assert http.get("/healthz").status_code == 200
