"""The one EXIF field batchgen writes and reads: UserComment, where A1111 keeps its
infotext in JPEG and WebP files.

EXIF is a TIFF structure (Exif 2.32, section 4.6): a byte-order mark (``MM`` big
endian, ``II`` little), then image file directories (IFDs) of 12-byte entries. The
UserComment (tag 0x9286, type UNDEFINED) lives in the Exif IFD, which IFD0 points to
with tag 0x8769. Its first 8 bytes name the character code; ``UNICODE`` is UTF-16 in
the file's byte order (A1111 writes it big endian through piexif).
"""

from __future__ import annotations

import struct

EXIF_HEADER = b"Exif\0\0"
_EXIF_IFD_TAG = 0x8769
_USER_COMMENT_TAG = 0x9286
_LONG, _UNDEFINED = 4, 7
_UNICODE = b"UNICODE\0"
_ASCII = b"ASCII\0\0\0"
_UNDEFINED_CODE = b"\0" * 8


def user_comment_tiff(text: str) -> bytes:
    """A minimal big-endian TIFF: IFD0 pointing to an Exif IFD holding the UserComment."""
    comment = _UNICODE + text.encode("utf-16-be")
    ifd0 = 8
    exif_ifd = ifd0 + 2 + 12 + 4
    data = exif_ifd + 2 + 12 + 4
    return (
        b"MM\0\x2a" + struct.pack(">I", ifd0)
        + struct.pack(">HHHII", 1, _EXIF_IFD_TAG, _LONG, 1, exif_ifd) + struct.pack(">I", 0)
        + struct.pack(">HHHII", 1, _USER_COMMENT_TAG, _UNDEFINED, len(comment), data)
        + struct.pack(">I", 0)
        + comment
    )


def read_user_comment(tiff: bytes) -> str | None:
    """The UserComment of a TIFF block (with or without the ``Exif\\0\\0`` prefix)."""
    if tiff.startswith(EXIF_HEADER):
        tiff = tiff[len(EXIF_HEADER):]
    order = {b"MM": ">", b"II": "<"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    try:
        (ifd0,) = struct.unpack_from(order + "I", tiff, 4)
        exif_ifd = _entry(tiff, order, ifd0, _EXIF_IFD_TAG)
        if exif_ifd is None:
            return None
        (offset,) = struct.unpack_from(order + "I", tiff, exif_ifd[1])
        comment = _entry(tiff, order, offset, _USER_COMMENT_TAG)
        if comment is None:
            return None
        count, at = comment
        if count <= 4:
            raw = tiff[at:at + count]
        else:
            (start,) = struct.unpack_from(order + "I", tiff, at)
            raw = tiff[start:start + count]
    except struct.error:
        return None
    return decode_comment(raw, big_endian=order == ">")


def _entry(tiff: bytes, order: str, ifd: int, tag: int) -> tuple[int, int] | None:
    """``(count, offset of the value field)`` of ``tag`` in the IFD at ``ifd``."""
    (entries,) = struct.unpack_from(order + "H", tiff, ifd)
    for k in range(entries):
        at = ifd + 2 + 12 * k
        entry_tag, _kind, count = struct.unpack_from(order + "HHI", tiff, at)
        if entry_tag == tag:
            return count, at + 8
    return None


def decode_comment(raw: bytes, *, big_endian: bool = True) -> str | None:
    """A UserComment's text by its 8-byte character code; None when empty or unknown."""
    code, body = raw[:8], raw[8:]
    if code == _UNICODE:
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            text = body.decode("utf-16")
        else:
            text = body.decode("utf-16-be" if big_endian else "utf-16-le", errors="replace")
    elif code in (_ASCII, _UNDEFINED_CODE):
        text = body.decode("utf-8", errors="replace")
    else:
        return None
    text = text.rstrip("\0")
    return text or None
