"""Deterministic PNG outputs: rendered on demand from (prompt, seed, sample, size).

Nothing is stored per job: the same inputs always give the same bytes, so a small LRU
of recent renders is all the memory a download needs. The picture is a vertical
gradient crossed by vertical stripes, with colours and stripe width taken from a hash of
the inputs, so different items look different. The encoder follows the PNG spec
(RFC 2083): signature, IHDR, one zlib IDAT of filter-0 scanlines, IEND, each with CRC.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BANDS = 64
# The pictures are bands of repeated rows: a low level is fast and still small.
ZLIB_LEVEL = 3


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """What decides an output image's pixels."""

    prompt: str
    seed: int
    index: int
    width: int
    height: int


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(width: int, height: int, rgb_rows: list[bytes]) -> bytes:
    """An 8-bit RGB PNG from ``height`` rows of ``width * 3`` bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # A row equal to the one above is written with filter 2 ("Up"): all zeros, which
    # deflate squeezes to almost nothing. Other rows use filter 0 (none).
    same = b"\x02" + bytes(width * 3)
    lines: list[bytes] = []
    previous: bytes | None = None
    for row in rgb_rows:
        lines.append(same if row == previous else b"\x00" + row)
        previous = row
    raw = b"".join(lines)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw, ZLIB_LEVEL))
        + _chunk(b"IEND", b"")
    )


def _mix(a: bytes, b: bytes, t: float) -> bytes:
    return bytes(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def render(spec: ImageSpec) -> bytes:
    """The PNG bytes of ``spec``; the same spec always gives the same bytes."""
    digest = hashlib.blake2b(
        f"{spec.prompt}\0{spec.seed}\0{spec.index}".encode(), digest_size=16
    ).digest()
    top, bottom, stripe = digest[0:3], digest[3:6], digest[6:9]
    stripe_w = 8 + digest[9] % 56
    # The gradient moves in bands of rows: each distinct row is built once and the
    # picture compresses fast, which keeps a burst of downloads cheap for the server.
    band_h = max(1, spec.height // BANDS)
    rows: list[bytes] = []
    for top_y in range(0, spec.height, band_h):
        base = _mix(top, bottom, top_y / max(1, spec.height - 1))
        period = base * stripe_w + _mix(base, stripe, 0.6) * stripe_w
        row = (period * (spec.width // (2 * stripe_w) + 1))[: spec.width * 3]
        rows.extend([row] * min(band_h, spec.height - top_y))
    return encode_png(spec.width, spec.height, rows)


class ImageCache:
    """A small LRU of rendered images, so a burst of downloads renders each image once."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[ImageSpec, bytes] = OrderedDict()

    def get(self, spec: ImageSpec) -> bytes:
        """The bytes of ``spec``, from the cache or freshly rendered."""
        data = self._items.get(spec)
        if data is not None:
            self._items.move_to_end(spec)
            return data
        data = render(spec)
        if self._size > 0:
            self._items[spec] = data
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return data

    def __len__(self) -> int:
        return len(self._items)
