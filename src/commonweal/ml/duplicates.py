"""Exact and near duplicates among contributed items.

``exact_key`` names an item's content by a keyed hash (HMAC-SHA256 under the community's
secret) of a normal form in which trivial variants coincide: text is NFC-normalized,
case-folded and re-spaced; an image is its decoded pixels, whatever the encoder did; a table
row is canonical JSON. The key covers what a model learns from (the text, the pixels, the
features) and not the label, target or caption, so a copy sent in again under another label is
still a duplicate (and the hub sees the label conflict). Being keyed, the hub never stores an
unsalted hash that could confirm a guess at someone's data.

``TextNearDuplicates`` finds texts that are nearly the same: MinHash signatures (datasketch,
128 permutations, fixed seed so a signature is the same on every machine and run) over
character 5-gram shingles of the normalized text, and a MinHash LSH index for candidates whose
estimated Jaccard similarity then has to reach the threshold (0.8 by default). Character
shingles rather than word 3-grams: on a 30-word text one changed word takes out 3 of 28 word
3-grams, an exact Jaccard of 0.806, right on the threshold, so MinHash noise lets most such
copies through (measured on 1,000 texts: 34 % found); the same edit costs about a tenth of the
character 5-grams (Jaccard near 0.9) and 99 % are found (``bench/neardup.py``, 100k texts),
while unrelated texts stay below 0.3. Signatures use datasketch 2.0's default permutation
scheme, "affine32": uint32 values, unbiased, half the memory of the pre-2.0 uint64 "legacy"
scheme. The LSH index keeps a Python set per band per text, about 5 KB per stored text (500 MB
at 100k texts); the check itself stays near 0.25 ms.

``ImageNearDuplicates`` does the same for images with a 64-bit perceptual hash (imagehash's
pHash) and a vectorized Hamming scan, which at 100k images takes well under a millisecond.
pHash shrugs off re-encoding, rescaling and brightness, and keeps different digits apart, but
on an 8x8 image one pixel is 1/64 of the picture: a pixel nudged by 40 of 255 stays a near
duplicate (94 % of digits), one flipped from black to white mostly does not (5 %). Moving a
small image by one pixel changes its pHash more than the difference between two digits, so
each image is indexed with the signatures of itself moved a pixel each way, the edge left
behind filled with its background (``index_signature``): a copy moved by a pixel is then
found even where the move pushed a stroke out of the frame, which looking the copy up moved
back (``shifted_signatures``) cannot recover — on sklearn's digits, 100 % of one-pixel
copies found instead of 62 %, and no pair of different digits brought closer than before.

Both indexes persist signatures through ``to_bytes``/``from_bytes`` so the hub can keep them
in its database and rebuild the index at start; neither is thread-safe.
"""

from __future__ import annotations

import hmac
import math
import re
import unicodedata
from collections.abc import Mapping
from hashlib import sha256
from typing import Any

import imagehash
import numpy as np
import orjson
from datasketch import LeanMinHash, MinHash, MinHashLSH
from numpy.typing import NDArray
from PIL import Image

from commonweal.errors import InvalidInput
from commonweal.images import open_image

__all__ = [
    "MOVES",
    "ImageNearDuplicates",
    "TextNearDuplicates",
    "exact_key",
    "normalize_text",
    "text_shingles",
]

# Fixed MinHash parameters: a persisted signature is only comparable with one made the same
# way, so these are part of the signature format (``_TEXT_MAGIC``). Change any of them, or the
# shingling, and bump the magic so stale signatures are refused instead of silently mismatched.
MINHASH_SEED = 1
MINHASH_SCHEME = "affine32"  # datasketch 2.0's default: unbiased, uint32, half the memory of 64
SHINGLE_CHARS = 5
_TEXT_MAGIC = b"CWT\x01"
_IMAGE_MAGIC = b"CWI\x01"  # one pHash
_IMAGE_MOVED_MAGIC = b"CWI\x02"  # the pHash, then those of the image moved each way (MOVES)

# pHash resizes to 32x32 before its DCT; smaller images are first enlarged by a whole factor
# with nearest-neighbour so that an 8x8 digit keeps its hard pixel edges instead of Lanczos
# ringing.
PHASH_MIN_SIDE = 32
HASH_BITS = 64
# The eight one-pixel moves (dy, dx) an indexed image is also hashed under, in this order.
MOVES = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
_IMAGE_COLUMNS = 1 + len(MOVES)

_WHITESPACE = re.compile(r"\s+")
_EXACT_DOMAIN = b"commonweal/exact-key/v1/"


def normalize_text(text: str) -> str:
    """The form two texts must share to be the same text: NFC, case-folded, re-spaced."""
    # Case folding can leave a string that is no longer NFC (e.g. some Greek), so normalize
    # again after it.
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    return _WHITESPACE.sub(" ", folded).strip()


def text_shingles(text: str) -> set[str]:
    """Character 5-grams of the normalized text (the whole text if shorter than five)."""
    norm = normalize_text(text)
    k = SHINGLE_CHARS
    if len(norm) <= k:
        return {norm}
    return {norm[i : i + k] for i in range(len(norm) - k + 1)}


def exact_key(secret: bytes, content: Mapping[str, Any]) -> str:
    """Hex HMAC-SHA256, under ``secret``, of the content's normal form (see module doc).

    ``content`` is a text item (``text``), an image item (``image``, base64 PNG or JPEG) or a
    tabular item (``features``). Raises ``ValueError`` for an empty secret and ``InvalidInput``
    for content of none of these shapes or an image that does not decode.
    """
    if not secret:
        raise ValueError("the exact-duplicate secret is empty; use the hub's 32-byte secret")
    if "text" in content:
        kind, body = b"text", normalize_text(_as_str(content["text"], "text")).encode()
    elif "image" in content:
        kind, body = b"image", _pixel_bytes(_open_image(content["image"]))
    elif "features" in content:
        kind, body = b"tabular", _canonical_features(content["features"])
    else:
        raise InvalidInput(
            f"cannot key an item with fields {sorted(content)}; expected one of "
            "'text', 'image' or 'features'"
        )
    # The kind is in the message so a text and a table row can never share a key.
    return hmac.new(secret, _EXACT_DOMAIN + kind + b"\x00" + body, sha256).hexdigest()


class _DenseRows:
    """Ids with one numpy row each, kept dense: appends grow the array geometrically and a
    removal moves the last row into the hole, so scans never meet gaps."""

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.values: NDArray[Any] = np.empty((0, *shape), dtype=dtype)
        self.ids: list[str] = []
        self.row: dict[str, int] = {}

    def add(self, item_id: str, value: Any) -> None:
        if item_id in self.row:
            raise ValueError(f"item {item_id} is already in the near-duplicate index")
        n = len(self.ids)
        if n == len(self.values):
            grown = np.empty((max(1024, 2 * n), *self.values.shape[1:]), dtype=self.values.dtype)
            grown[:n] = self.values[:n]
            self.values = grown
        self.values[n] = value
        self.ids.append(item_id)
        self.row[item_id] = n

    def remove(self, item_id: str) -> bool:
        """Drop ``item_id``; False if it was not there."""
        row = self.row.pop(item_id, None)
        if row is None:
            return False
        last = len(self.ids) - 1
        if row != last:
            moved = self.ids[last]
            self.values[row] = self.values[last]
            self.ids[row] = moved
            self.row[moved] = row
        self.ids.pop()
        return True


class _Indexed:
    """What both near-duplicate indexes share: their ids, held in a dense-rows store."""

    _rows: _DenseRows

    def __len__(self) -> int:
        return len(self._rows.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows.row


class TextNearDuplicates(_Indexed):
    """Near-duplicate texts: MinHash over character 5-grams, candidates from MinHash LSH.

    ``query`` returns the stored ids whose estimated Jaccard similarity with the query is at
    least ``threshold``, best first. The LSH banding is chosen by datasketch for the threshold
    with misses weighted above false candidates (false candidates cost one vectorized
    comparison; a miss lets a copy through).
    """

    def __init__(self, *, threshold: float = 0.8, num_perm: int = 128) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.num_perm = num_perm
        # Estimated Jaccard is agreeing positions / num_perm; compare counts, not floats.
        self._min_agree = math.ceil(threshold * num_perm - 1e-9)
        # Permutations are drawn once here; each signature copies this template, which
        # saves regenerating 2x128 random parameters per text.
        self._template = MinHash(num_perm=num_perm, seed=MINHASH_SEED, scheme=MINHASH_SCHEME)
        # datasketch cannot band for a threshold of 1.0 (it would need a single band); bands
        # tuned for 0.95 still put identical signatures together, and the exact filter in
        # query() applies the real threshold.
        self._lsh = MinHashLSH(
            threshold=min(threshold, 0.95), num_perm=num_perm, weights=(0.2, 0.8)
        )
        self._rows = _DenseRows((num_perm,), np.uint32)

    def signature(self, text: str) -> NDArray[np.uint32]:
        """The MinHash of ``text``'s shingles: ``num_perm`` uint32 values, the same everywhere."""
        m = self._template.copy()
        m.update_batch([s.encode() for s in text_shingles(text)])
        return np.asarray(m.hashvalues, dtype=np.uint32)

    def add(self, item_id: str, signature: NDArray[np.uint32]) -> None:
        """Index ``signature`` under ``item_id``; raises ``ValueError`` if the id is indexed."""
        sig = self._check(signature)
        self._rows.add(item_id, sig)
        self._lsh.insert(item_id, self._lean(sig), check_duplication=False)

    def remove(self, item_id: str) -> None:
        """Drop ``item_id`` from the index; an id that is not there is ignored."""
        if self._rows.remove(item_id):
            self._lsh.remove(item_id)

    def query(self, signature: NDArray[np.uint32]) -> list[tuple[str, float]]:
        """``(id, estimated Jaccard)`` of stored texts at or above the threshold, best first."""
        sig = self._check(signature)
        if not self._rows.ids:
            return []
        candidates = self._lsh.query(self._lean(sig))
        if not candidates:
            return []
        index = self._rows.row
        rows = np.fromiter((index[c] for c in candidates), dtype=np.intp, count=len(candidates))
        agree = np.count_nonzero(self._rows.values[rows] == sig, axis=1)
        keep = agree >= self._min_agree
        out = [
            (self._rows.ids[r], a / self.num_perm)
            for r, a in zip(rows[keep].tolist(), agree[keep].tolist(), strict=True)
        ]
        out.sort(key=lambda pair: (-pair[1], pair[0]))
        return out

    def to_bytes(self, signature: NDArray[np.uint32]) -> bytes:
        """The signature as bytes for the database: a format tag, then little-endian uint32."""
        return _TEXT_MAGIC + self._check(signature).astype("<u4").tobytes()

    def from_bytes(self, data: bytes) -> NDArray[np.uint32]:
        """Inverse of ``to_bytes``; raises ``ValueError`` for another format or length."""
        if data[:4] != _TEXT_MAGIC or len(data) != 4 + 4 * self.num_perm:
            raise ValueError(
                f"not a text signature of this format ({len(data)} bytes); recompute it from "
                "the item's content"
            )
        return np.frombuffer(data, dtype="<u4", offset=4).astype(np.uint32)

    def _check(self, signature: NDArray[Any]) -> NDArray[np.uint32]:
        sig = np.asarray(signature)
        if sig.shape != (self.num_perm,) or sig.dtype != np.uint32:
            raise ValueError(
                f"expected a signature of {self.num_perm} uint32 values, got shape "
                f"{sig.shape} dtype {sig.dtype}; make it with signature()"
            )
        return sig

    def _lean(self, sig: NDArray[np.uint32]) -> Any:
        return LeanMinHash(seed=MINHASH_SEED, hashvalues=sig, scheme=MINHASH_SCHEME)


class ImageNearDuplicates(_Indexed):
    """Near-duplicate images: 64-bit pHash, near when the Hamming distance is small.

    ``query`` returns ``(id, similarity)`` with similarity ``1 - distance / 64`` for stored
    images within ``max_distance`` bits, best first. A linear scan over a packed uint64 array
    (XOR, popcount) is exact and fast enough for the 100k images a community holds.

    An item indexed with ``index_signature`` also holds the hashes of itself moved by a
    pixel; ``query(..., moved=True)`` matches those too (an item indexed with a plain
    ``signature``, as signatures stored before them were, matches on its own hash only).
    """

    def __init__(self, *, max_distance: int = 4) -> None:
        if not 0 <= max_distance < HASH_BITS:
            raise ValueError(f"max_distance must be in 0..{HASH_BITS - 1}, got {max_distance}")
        self.max_distance = max_distance
        self._rows = _DenseRows((_IMAGE_COLUMNS,), np.uint64)

    def signature(self, image: NDArray[Any] | str) -> NDArray[np.uint64]:
        """pHash of a pixel array (uint8, HxW or HxWxC) or of a base64 PNG/JPEG, as one uint64."""
        if isinstance(image, str):
            img = _open_image(image)
        else:
            arr = np.asarray(image)
            if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
                raise ValueError(
                    f"expected uint8 pixels of shape HxW or HxWxC, got {arr.dtype} {arr.shape}"
                )
            img = Image.fromarray(arr)
        img = img.convert("L")
        side = min(img.size)
        if 0 < side < PHASH_MIN_SIDE:
            factor = -(-PHASH_MIN_SIDE // side)
            img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
        bits = imagehash.phash(img).hash.flatten()
        return np.frombuffer(np.packbits(bits).tobytes(), dtype=">u8").astype(np.uint64)

    def shifted_signatures(self, image: NDArray[Any]) -> list[NDArray[np.uint64]]:
        """The signatures of ``image`` moved one pixel in each of the eight directions
        (wrapping around, and with the edge repeated): what a copy shifted by a pixel
        looks like when it is moved back."""
        arr = np.asarray(image)
        out = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    out.append(self.signature(np.roll(arr, (dy, dx), axis=(0, 1))))
                    padded = np.pad(arr, ((1, 1), (1, 1)) + ((0, 0),) * (arr.ndim - 2), "edge")
                    h, w = arr.shape[:2]
                    out.append(self.signature(padded[1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]))
        return out

    def moved_signatures(self, image: NDArray[Any]) -> NDArray[np.uint64]:
        """The signatures of ``image`` (uint8 pixels) moved one pixel each way (``MOVES``),
        the edge left behind filled with its background — the commonest colour on its
        border, as a copier's shifted copy has it."""
        arr = np.asarray(image)
        h, w = arr.shape[:2]
        border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
        colours, counts = np.unique(border.reshape(len(border), -1), axis=0, return_counts=True)
        background = colours[counts.argmax()].reshape(arr.shape[2:])
        out = []
        for dy, dx in MOVES:
            moved = np.empty_like(arr)
            moved[...] = background
            moved[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = arr[
                max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
            ]
            out.append(self.signature(moved)[0])
        return np.array(out, dtype=np.uint64)

    def index_signature(self, image: NDArray[Any]) -> NDArray[np.uint64]:
        """What the index keeps of an image: its signature, then ``moved_signatures``."""
        return np.concatenate([self.signature(image), self.moved_signatures(image)])

    def add(self, item_id: str, signature: NDArray[np.uint64]) -> None:
        """Index ``signature`` (``signature`` or ``index_signature``) under ``item_id``;
        raises ``ValueError`` if the id is indexed."""
        sig = self._check_stored(signature)
        if len(sig) == 1:  # no moved hashes: its own hash stands in for them
            sig = np.repeat(sig, _IMAGE_COLUMNS)
        self._rows.add(item_id, sig)

    def remove(self, item_id: str) -> None:
        """Drop ``item_id`` from the index; an id that is not there is ignored."""
        self._rows.remove(item_id)

    def query(
        self, signature: NDArray[np.uint64], *, moved: bool = False
    ) -> list[tuple[str, float]]:
        """``(id, 1 - distance/64)`` of stored images within ``max_distance``, best first;
        with ``moved``, the distance is the least to the stored image or to it moved by a
        pixel. (Of an ``index_signature``, its own hash is what is looked up.)"""
        value = self._check_stored(signature)[0]
        n = len(self._rows.ids)
        if n == 0:
            return []
        stored = self._rows.values[:n] if moved else self._rows.values[:n, :1]
        distance = np.bitwise_count(stored ^ value).min(axis=1)
        rows = np.flatnonzero(distance <= self.max_distance)
        out = [(self._rows.ids[r], 1.0 - int(distance[r]) / HASH_BITS) for r in rows.tolist()]
        out.sort(key=lambda pair: (-pair[1], pair[0]))
        return out

    def to_bytes(self, signature: NDArray[np.uint64]) -> bytes:
        """The hashes as bytes for the database: a format tag, then little-endian uint64s
        (one, or an ``index_signature``'s nine)."""
        sig = self._check_stored(signature)
        magic = _IMAGE_MAGIC if len(sig) == 1 else _IMAGE_MOVED_MAGIC
        return magic + sig.astype("<u8").tobytes()

    def from_bytes(self, data: bytes) -> NDArray[np.uint64]:
        """Inverse of ``to_bytes``; raises ``ValueError`` for another format or length."""
        sizes = {_IMAGE_MAGIC: 12, _IMAGE_MOVED_MAGIC: 4 + 8 * _IMAGE_COLUMNS}
        if sizes.get(data[:4]) != len(data):
            raise ValueError(
                f"not an image signature of this format ({len(data)} bytes); recompute it "
                "from the item's content"
            )
        return np.frombuffer(data[4:], dtype="<u8").astype(np.uint64)

    def _check_stored(self, signature: NDArray[Any]) -> NDArray[np.uint64]:
        sig = np.asarray(signature)
        if sig.shape not in ((1,), (_IMAGE_COLUMNS,)) or sig.dtype != np.uint64:
            raise ValueError(
                f"expected a signature of one uint64 (or {_IMAGE_COLUMNS}), got shape "
                f"{sig.shape} dtype {sig.dtype}; make it with signature() or index_signature()"
            )
        return sig


def _as_str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, not {type(value).__name__}")
    return value


def _open_image(value: Any) -> Image.Image:
    # The one bounded decoder (bytes, dimensions, decompression), with its refusals.
    return open_image(_as_str(value, "image"), "image")


def _pixel_bytes(img: Image.Image) -> bytes:
    # One mode for all: a grey image saved as L, RGB or a palette PNG decodes to the same
    # RGBA pixels, so re-saving in another mode is still the same image.
    rgba = img.convert("RGBA")
    return f"{rgba.width}x{rgba.height}:".encode() + rgba.tobytes()


def _canonical_features(features: Any) -> bytes:
    if not isinstance(features, Mapping):
        raise InvalidInput(f"features must be an object, not {type(features).__name__}")
    row = {unicodedata.normalize("NFC", str(k)): _canonical_value(v) for k, v in features.items()}
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def _canonical_value(value: Any) -> Any:
    # 3 and 3.0 are the same measurement; JSON would spell them differently.
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).strip()
    return value
