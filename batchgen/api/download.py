"""Fetch one output image to a temp file: bounded in size and time, checked, fsynced.

Output URLs are public files on an image host (API-FACTS.md, "Result body"): they get
no API key. The caller picks ``dest`` in the final file's directory and renames it into
place; on any failure here ``dest`` is removed, so no partial file survives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiohttp
import anyio

from batchgen.api.client import translate_transport
from batchgen.errors import DownloadError, ForeignOriginError

_CHUNK = 64 * 1024
SPILL_BYTES = 1024 * 1024
_RETRYABLE_STATUS = frozenset({408, 425, 429})
# Magic numbers of the image formats image models return (for base64 data without a type).
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)


_Data = bytes  # the field named ``bytes`` below hides the type inside the class


@dataclass(frozen=True, slots=True)
class Downloaded:
    """An image: its size, SHA-256 and media type, and where it is. An image of at most
    ``SPILL_BYTES`` is ``data``, in memory, and nothing is written at ``path`` (the
    caller writes it once, in place); a larger one is written and fsynced at ``path``."""

    path: Path
    bytes: int
    sha256: str
    content_type: str | None
    data: _Data | None = None


class Files:
    """Downloads of output images over a session that carries no API key."""

    def __init__(self, session: aiohttp.ClientSession, *, max_bytes: int,
                 timeout_s: float) -> None:
        self._session = session
        self.max_bytes = max_bytes
        self._timeout_s = timeout_s

    async def download(self, url: str, dest: Path) -> Downloaded:
        return await download(self._session, url, dest, max_bytes=self.max_bytes,
                              timeout_s=self._timeout_s)

    async def decode(self, data: str, dest: Path) -> Downloaded:
        """An inline (base64) output written to ``dest``, in a worker thread."""
        return await anyio.to_thread.run_sync(decode_base64_image, data, dest, self.max_bytes)


def _is_image_type(content_type: str) -> bool:
    return content_type.startswith("image/") or content_type == "application/octet-stream"


async def download(
    session: aiohttp.ClientSession, url: str, dest: Path, *, max_bytes: int, timeout_s: float
) -> Downloaded:
    """Stream ``url`` into ``dest``; raise DownloadError (``retryable`` set) or TransportError."""
    if any(name.lower() == "x-api-key" for name in session.headers):
        raise ForeignOriginError("refusing to download with a session that carries the API key")
    try:
        return await _fetch(session, url, dest, max_bytes=max_bytes, timeout_s=timeout_s)
    except BaseException:
        _discard(dest)  # synchronous on purpose: it must run even when cancelled
        raise


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _fetch(
    session: aiohttp.ClientSession, url: str, dest: Path, *, max_bytes: int, timeout_s: float
) -> Downloaded:
    digest = hashlib.sha256()
    size = 0
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                retryable = resp.status >= 500 or resp.status in _RETRYABLE_STATUS
                raise DownloadError("image download refused", status=resp.status, url=url,
                                    retryable=retryable)
            content_type = resp.content_type
            if not _is_image_type(content_type):
                raise DownloadError(f"not an image: {content_type}", url=url, retryable=False)
            # With a Content-Encoding, aiohttp decodes and the length no longer matches.
            expected = None if resp.headers.get("Content-Encoding") else resp.content_length
            # Oversize is cut off and retried, never written (issue 5): a URL's body can
            # be a transient error page; the retry policy bounds the attempts.
            if expected is not None and expected > max_bytes:
                raise DownloadError(f"image of {expected} bytes exceeds {max_bytes}", url=url,
                                    retryable=True)
            with _Spool(dest) as out:
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadError(f"image exceeds {max_bytes} bytes", url=url,
                                            retryable=True)
                    digest.update(chunk)
                    await out.add(chunk)
                data = await out.finish()
    except aiohttp.ClientPayloadError as exc:
        raise DownloadError("image body truncated", url=url, retryable=True) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise translate_transport(exc, method="GET", url=url) from exc
    if expected is not None and size != expected:
        raise DownloadError(f"image body truncated: {size} of {expected} bytes", url=url,
                            retryable=True)
    if size == 0:
        raise DownloadError("image body is empty", url=url, retryable=True)
    return Downloaded(dest, size, digest.hexdigest(), content_type, data)


class _Spool:
    """Bytes bound for a file, written off the event loop in few thread calls.

    Held in memory up to ``SPILL_BYTES``: a typical image never touches the disk here (the
    delivery step writes it once, with its metadata, in place: one file, one fsync and
    one thread hand-off an image, where writing it here cost a second of each). Past
    that it is written in batches of about that size; one last call writes the rest,
    fsyncs and closes.
    """

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._handle: BinaryIO | None = None

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:  # only after a failure: finish() closes it
            self._handle.close()

    async def add(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= SPILL_BYTES:
            await anyio.to_thread.run_sync(self._write_pending)

    async def finish(self) -> bytes | None:
        """The bytes when they stayed in memory; else None, and the file is complete."""
        if self._handle is None:
            return b"".join(self._pending)
        await anyio.to_thread.run_sync(self._finish)
        return None

    def _write_pending(self) -> None:
        if self._handle is None:
            self._handle = self.dest.open("wb")
        self._handle.writelines(self._pending)
        self._pending, self._pending_bytes = [], 0

    def _finish(self) -> None:
        self._write_pending()
        assert self._handle is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None


def _sniff(data: bytes) -> str | None:
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    return None


def decode_base64_image(data: str, dest: Path, max_bytes: int) -> Downloaded:
    """Write a ``base64: true`` output (bare base64 or a ``data:`` URL) to ``dest``, fsynced."""
    text = data.strip()
    content_type: str | None = None
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or ";base64" not in header:
            raise DownloadError("data URL is not base64", retryable=False)
        content_type = header[len("data:"):].split(";", 1)[0] or None
    text = "".join(text.split())
    if len(text) * 3 // 4 > max_bytes + 2:
        raise DownloadError(f"image exceeds {max_bytes} bytes", retryable=False)
    text += "=" * (-len(text) % 4)
    try:
        raw = (base64.urlsafe_b64decode(text) if "-" in text or "_" in text
               else base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise DownloadError("output is not valid base64", retryable=False) from exc
    if not raw:
        raise DownloadError("image data is empty", retryable=False)
    if len(raw) > max_bytes:
        raise DownloadError(f"image exceeds {max_bytes} bytes", retryable=False)
    try:
        with open(dest, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        _discard(dest)
        raise
    return Downloaded(dest, len(raw), hashlib.sha256(raw).hexdigest(),
                      content_type or _sniff(raw) or "application/octet-stream")
