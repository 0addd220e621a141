"""The rendered outputs are valid PNGs, deterministic, and differ between items."""

from __future__ import annotations

import struct
import zlib

import pytest

from batchgen.server.png import PNG_SIGNATURE, ImageCache, ImageSpec, render


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == PNG_SIGNATURE
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


@pytest.mark.parametrize(("width", "height"), [(512, 512), (768, 1024), (1024, 512)])
def test_png_structure(width: int, height: int) -> None:
    """Signature, IHDR with the size, IDAT that inflates to the scanlines, IEND, CRCs."""
    chunks = _chunks(render(ImageSpec("a cat", 1, 0, width, height)))
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    w, h, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (w, h, depth, colour) == (width, height, 8, 2)
    assert len(zlib.decompress(chunks[1][1])) == height * (1 + width * 3)


def test_render_is_deterministic() -> None:
    """The same spec renders the same bytes."""
    spec = ImageSpec("a cat", 7, 1, 512, 512)
    assert render(spec) == render(spec)


@pytest.mark.parametrize(
    "other",
    [ImageSpec("a dog", 7, 0, 512, 512), ImageSpec("a cat", 8, 0, 512, 512),
     ImageSpec("a cat", 7, 1, 512, 512)],
)
def test_different_inputs_look_different(other: ImageSpec) -> None:
    """A different prompt, seed or sample index gives different pixels."""
    assert render(other) != render(ImageSpec("a cat", 7, 0, 512, 512))


def test_cache_is_bounded() -> None:
    """The LRU keeps at most its size."""
    cache = ImageCache(2)
    for seed in range(5):
        cache.get(ImageSpec("x", seed, 0, 512, 512))
    assert len(cache) == 2
