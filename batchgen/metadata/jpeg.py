"""EXIF UserComment in a JPEG, added without re-encoding; read back from JPEG and WebP.

A JPEG is a list of marker segments (ITU T.81, Annex B): ``FF xx``, a 2-byte big-endian
length that counts itself, the data; after SOS (``FF DA``) the entropy-coded image runs
to EOI. EXIF is an APP1 segment starting ``Exif\\0\\0`` (Exif 2.32, section 4.5.4), put
after SOI and any JFIF APP0. Everything else is copied byte for byte.

A JPEG that already carries EXIF (a camera's or the server's, with its orientation and
colour notes) is not merged with ours: ``FormatError`` says so and the caller keeps the
file as it came.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from batchgen.metadata.exif import EXIF_HEADER, read_user_comment, user_comment_tiff
from batchgen.metadata.stream import FormatError, Sink

SOI = b"\xff\xd8"
_APP0, _APP1, _SOS, _EOI = 0xE0, 0xE1, 0xDA, 0xD9
# Markers that stand alone, without a length: TEM and the restart markers.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_MAX_SEGMENT = 0xFFFF - 2
_COPY_BLOCK = 1024 * 1024



def _marker(src: BinaryIO) -> int:
    byte = src.read(1)
    if byte != b"\xff":
        raise FormatError("a marker was expected")
    while byte == b"\xff":  # fill bytes may pad a marker
        byte = src.read(1)
    if not byte:
        raise FormatError("the file ends inside a marker")
    return byte[0]


def _segment(src: BinaryIO) -> bytes:
    head = src.read(2)
    if len(head) < 2:
        raise FormatError("a segment is cut off")
    (length,) = struct.unpack(">H", head)
    data = src.read(length - 2)
    if length < 2 or len(data) != length - 2:
        raise FormatError("a segment is cut off")
    return data


def _put(sink: Sink, marker: int, data: bytes) -> None:
    sink.write(bytes((0xFF, marker)) + struct.pack(">H", len(data) + 2) + data)


def embed_jpeg(src: BinaryIO, sink: Sink, *, comment: str) -> None:
    """Copy the JPEG in ``src`` to ``sink`` with an EXIF APP1 holding ``comment`` as its
    UserComment. Raises FormatError (not a JPEG, EXIF already there, text too long)."""
    payload = EXIF_HEADER + user_comment_tiff(comment)
    if len(payload) > _MAX_SEGMENT:
        raise FormatError("the text does not fit in one EXIF segment")
    if src.read(2) != SOI:
        raise FormatError("no JPEG start-of-image marker")
    sink.write(SOI)
    inserted = False
    while True:
        marker = _marker(src)
        if marker in _STANDALONE:
            sink.write(bytes((0xFF, marker)))
            continue
        if marker == _EOI:
            raise FormatError("no image data")
        if not inserted and marker != _APP0:
            _put(sink, _APP1, payload)
            inserted = True
        if marker == _SOS:  # the rest is image data: copied as it is
            sink.write(bytes((0xFF, marker)))
            while block := src.read(_COPY_BLOCK):
                sink.write(block)
            return
        data = _segment(src)
        if marker == _APP1 and data.startswith(EXIF_HEADER):
            raise FormatError("the JPEG already carries EXIF")
        _put(sink, marker, data)


def read_jpeg_comment(src: BinaryIO) -> str | None:
    """The EXIF UserComment of a JPEG, or None. Stops at the image data."""
    if src.read(2) != SOI:
        raise FormatError("no JPEG start-of-image marker")
    while True:
        marker = _marker(src)
        if marker in _STANDALONE:
            continue
        if marker in (_SOS, _EOI):
            return None
        data = _segment(src)
        if marker == _APP1 and data.startswith(EXIF_HEADER):
            return read_user_comment(data)


def read_webp_comment(src: BinaryIO) -> str | None:
    """The EXIF UserComment of a WebP file (its ``EXIF`` RIFF chunk), or None."""
    head = src.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        raise FormatError("not a WebP file")
    while len(header := src.read(8)) == 8:
        kind, size = header[:4], struct.unpack("<I", header[4:])[0]
        if kind == b"EXIF":
            return read_user_comment(src.read(size))
        src.seek(size + (size & 1), 1)
    return None
