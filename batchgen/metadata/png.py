"""Text chunks in a PNG, added and read without touching the image data.

A PNG is a signature and a list of chunks (PNG spec, sections 5 and 11.3.4): each is a
4-byte big-endian length, a 4-byte type, the data and a CRC-32 of type and data. Text
chunks may stand anywhere between IHDR and IEND, so ours go right after IHDR and every
other chunk is copied byte for byte: the decoded pixels are the server's.

``tEXt`` holds Latin-1 text; a text that is not Latin-1 (a Japanese prompt, an emoji)
goes into an uncompressed ``iTXt`` (UTF-8) under the same keyword, as Pillow and so
A1111 do. Text chunks the server wrote under our keywords are dropped, so a reader
finds one ``parameters``: ours.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from typing import BinaryIO

from batchgen.metadata.stream import FormatError, Sink

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_TYPES = (b"tEXt", b"iTXt", b"zTXt")
# Longer chunks are refused: the spec caps lengths at 2^31 - 1, and an image model's
# output has no business near that.
_MAX_CHUNK = 2**31 - 1
_COPY_BLOCK = 1024 * 1024
_MAX_TEXT = 16 * 1024 * 1024



def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def text_chunk(keyword: str, text: str) -> bytes:
    """``tEXt`` when the text is Latin-1, else an uncompressed ``iTXt`` in UTF-8."""
    key = keyword.encode("latin-1")
    try:
        return chunk(b"tEXt", key + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        # keyword, compression flag 0, method 0, no language tag, no translated keyword
        return chunk(b"iTXt", key + b"\0\0\0\0\0" + text.encode("utf-8"))


def itxt_chunk(keyword: str, text: str) -> bytes:
    return chunk(b"iTXt", keyword.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8"))


def _header(src: BinaryIO) -> tuple[int, bytes] | None:
    head = src.read(8)
    if not head:
        return None
    if len(head) < 8:
        raise FormatError("a chunk header is cut off")
    length, kind = struct.unpack(">I4s", head)
    if length > _MAX_CHUNK:
        raise FormatError(f"chunk {kind!r} claims {length} bytes")
    return length, kind


def _exactly(src: BinaryIO, size: int) -> bytes:
    data = src.read(size)
    if len(data) != size:
        raise FormatError("a chunk is cut off")
    return data


def embed_png(src: BinaryIO, sink: Sink, *, text: Mapping[str, str],
              international: Mapping[str, str]) -> None:
    """Copy the PNG in ``src`` to ``sink`` with ``text`` (tEXt, or iTXt when it must) and
    ``international`` (always iTXt) entries right after IHDR. Raises FormatError."""
    if src.read(8) != SIGNATURE:
        raise FormatError("no PNG signature")
    sink.write(SIGNATURE)
    first = _header(src)
    if first is None or first[1] != b"IHDR":
        raise FormatError("the first chunk is not IHDR")
    sink.write(struct.pack(">I4s", *first) + _exactly(src, first[0] + 4))
    for keyword, value in text.items():
        sink.write(text_chunk(keyword, value))
    for keyword, value in international.items():
        sink.write(itxt_chunk(keyword, value))
    ours = {k.encode("latin-1") for k in (*text, *international)}
    ended = False
    while not ended and (found := _header(src)) is not None:
        length, kind = found
        ended = kind == b"IEND"
        if kind in TEXT_TYPES:
            data = _exactly(src, length + 4)
            if data.split(b"\0", 1)[0] not in ours:
                sink.write(struct.pack(">I4s", length, kind) + data)
            continue
        sink.write(struct.pack(">I4s", length, kind))
        _copy(src, sink, length + 4)
    if not ended:
        raise FormatError("no IEND chunk")
    while block := src.read(_COPY_BLOCK):  # bytes after IEND, kept as they came
        sink.write(block)


def _copy(src: BinaryIO, sink: Sink, size: int) -> None:
    while size > 0:
        block = src.read(min(size, _COPY_BLOCK))
        if not block:
            raise FormatError("a chunk is cut off")
        sink.write(block)
        size -= len(block)


def read_png_text(src: BinaryIO) -> dict[str, str]:
    """Every text entry of a PNG (tEXt, iTXt, zTXt), by keyword; the first one wins.
    Image data is skipped, not read. Raises FormatError."""
    if src.read(8) != SIGNATURE:
        raise FormatError("no PNG signature")
    found: dict[str, str] = {}
    for kind, data in _text_chunks(src):
        entry = _decode_text(kind, data)
        if entry is not None:
            found.setdefault(*entry)
    return found


def _text_chunks(src: BinaryIO) -> Iterator[tuple[bytes, bytes]]:
    while (header := _header(src)) is not None:
        length, kind = header
        if kind in TEXT_TYPES and length <= _MAX_TEXT:
            yield kind, _exactly(src, length)
            src.seek(4, 1)
        else:
            src.seek(length + 4, 1)
        if kind == b"IEND":
            return


def _decode_text(kind: bytes, data: bytes) -> tuple[str, str] | None:
    keyword, sep, rest = data.partition(b"\0")
    if not sep:
        return None
    key = keyword.decode("latin-1")
    try:
        if kind == b"tEXt":
            return key, rest.decode("latin-1")
        if kind == b"zTXt":
            return key, zlib.decompress(rest[1:]).decode("latin-1")
        flag, method = rest[0], rest[1]
        _lang, _, rest = rest[2:].partition(b"\0")
        _translated, _, body = rest.partition(b"\0")
        text = zlib.decompress(body) if flag == 1 and method == 0 else body
        return key, text.decode("utf-8")
    except (IndexError, zlib.error, UnicodeDecodeError):
        return None
