"""The one place Commonweal decodes an image: every decoder call bounded, every failure ours.

An image arrives from outside (a member's contribution, a consumer's prediction input, an
item shown to a reviewer, a file in an image folder) and may be hostile: a header that
claims 100000x100000 pixels, a one-pixel PNG carrying 50 MB of compressed text or ICC
profile, a truncated stream, another format behind a ``.png`` name. Pillow guards some of
this with process-wide settings whose defaults are generous (178 megapixels, 64 MB of text)
and reports the rest with a zoo of exception classes (``OSError``, ``SyntaxError``,
``ValueError``, ``DecompressionBombError``, ``struct.error``, ``EOFError``…) and warnings.
So every opening goes through :func:`open_image`, which, in order:

1. refuses more bytes than the caller allows (``TooLarge``) — before base64 or Pillow
   touches them;
2. checks the magic bytes (PNG or JPEG only) and lets only those two plugins look;
3. reads the header and refuses dimensions over the caller's bound (``TooLarge``) before
   ``load()`` allocates anything;
4. decodes with Pillow's own limits set explicitly below, warnings recorded and refused;
5. turns any exception the decoder raises into ``InvalidInput`` (400) naming the field.

The module imports nothing of the project but ``errors``, so the hub, the numerical work
and the command line share it.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import threading
import warnings
from typing import Any

from PIL import Image, ImageFile, PngImagePlugin

from commonweal.errors import CommonwealError, InvalidInput, TooLarge

__all__ = [
    "FORMATS",
    "MAX_IMAGE_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "image_bytes",
    "open_image",
]

# The most any caller may ask for. A charter's images are at most 1024x1024 and its items
# at most 1 MiB, so these bounds sit above every legitimate use and far below harm.
MAX_SIDE = 4096
MAX_PIXELS = 1 << 24
MAX_IMAGE_BYTES = 8 * 1024 * 1024

FORMATS = ("PNG", "JPEG")
_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}

# Pillow's own guards, set explicitly rather than trusted at their defaults: a header over
# MAX_PIXELS warns (which we refuse) and over twice that raises DecompressionBombError;
# one PNG text/ICC chunk may inflate to 256 KiB and all of them to 1 MiB; a truncated
# file is an error, never silently padded.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
PngImagePlugin.MAX_TEXT_CHUNK = 256 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024
ImageFile.LOAD_TRUNCATED_IMAGES = False

# ``warnings.catch_warnings`` swaps process-wide state (Python < 3.14): decodes take turns,
# so that one thread's exit cannot restore another's filters half-way. Warnings are
# recorded, not raised, while a decode runs: another thread's warning in that window is
# kept out of sight rather than turned into an exception in code that did not ask for it,
# and only the ones Pillow itself raised refuse the image.
_WARNINGS = threading.Lock()
_PIL_DIR = os.path.dirname(Image.__file__)


def image_bytes(value: Any, where: str, *, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a base64 image, refused past ``max_bytes`` before decoding them."""
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a base64 PNG or JPEG")
    # Four base64 characters carry three bytes: refuse on the text's length first.
    if len(value) > 4 * (max_bytes // 3 + 1):
        raise TooLarge(
            f"{where} is about {len(value) * 3 // 4} bytes; at most {max_bytes} are read"
        )
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):  # ValueError: characters outside ASCII
        raise InvalidInput(f"{where} is not valid base64; send a base64 PNG or JPEG") from None
    if len(raw) > max_bytes:
        raise TooLarge(f"{where} is {len(raw)} bytes; at most {max_bytes} are read")
    return raw


def open_image(
    data: object,
    where: str,
    *,
    max_width: int = MAX_SIDE,
    max_height: int = MAX_SIDE,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> Image.Image:
    """Decode a PNG or JPEG (raw bytes, or base64 text: anything else is refused) into a
    loaded Pillow image.

    ``TooLarge`` (413) when the bytes or the header's dimensions are over the bounds;
    ``InvalidInput`` (400) for anything that is not a whole, readable PNG or JPEG.
    """
    raw = data if isinstance(data, bytes) else image_bytes(data, where, max_bytes=max_bytes)
    if len(raw) > max_bytes:
        raise TooLarge(f"{where} is {len(raw)} bytes; at most {max_bytes} are read")
    fmt = next((f for magic, f in _MAGIC.items() if raw.startswith(magic)), None)
    if fmt is None:
        raise InvalidInput(f"{where} is not a PNG or JPEG image (its first bytes say otherwise)")
    width, height = min(max_width, MAX_SIDE), min(max_height, MAX_SIDE)
    with _WARNINGS, warnings.catch_warnings(record=True) as seen:
        # "always": a warning already shown once must still be seen (and refused) again.
        warnings.simplefilter("always")
        img = _decode(raw, fmt, where, width, height)
    for w in seen:
        if w.filename.startswith(_PIL_DIR) or issubclass(
            w.category, Image.DecompressionBombWarning
        ):
            img.close()
            raise InvalidInput(f"{where} is not a sound {fmt} image: {w.message}")
    return img


def _decode(raw: bytes, fmt: str, where: str, width: int, height: int) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(raw), formats=[fmt])
        if img.width > width or img.height > height:
            size = f"{img.width}x{img.height}"
            img.close()
            raise TooLarge(f"{where} is {size} pixels; at most {width}x{height} are read")
        img.load()
    except CommonwealError:
        raise
    except Image.DecompressionBombError:
        raise TooLarge(f"{where} claims over {2 * MAX_PIXELS} pixels; it is not read") from None
    except MemoryError:
        raise TooLarge(f"{where} needs more memory to decode than the hub gives it") from None
    except Exception as exc:
        # Pillow reports a hostile or broken file with whichever class its parser met
        # (OSError, SyntaxError, ValueError, EOFError, struct.error, …): for an input from
        # outside each of them means one thing, an image we cannot read.
        raise InvalidInput(
            f"{where} is not a readable {fmt} image ({type(exc).__name__}: {exc})"
        ) from None
    return img
