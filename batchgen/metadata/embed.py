"""From a downloaded temporary file to the final image: metadata in, fsynced, renamed.

``finish_image`` is the one call the delivery step makes per image, in a worker thread.
PNG and JPEG get the infotext (and PNG batchgen's record) streamed into a second
temporary file beside the first; other formats, ``embed=False`` and a file whose
structure cannot be walked are renamed into place as they came. Either way the result
names the server's size and SHA-256 and the written file's, since the resume check
compares the file on disk with what was written, and a reader may want to prove the
pixels are the server's.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.metadata.jpeg import embed_jpeg
from batchgen.metadata.png import embed_png
from batchgen.metadata.record import PARAMETERS_KEY, RECORD_KEY, ImageRecord, texts
from batchgen.metadata.sidecars import write_caption
from batchgen.metadata.stream import FormatError, HashingWriter

log = logging.getLogger(__name__)

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF8", "gif"),
)


def sniff(head: bytes) -> str | None:
    """The image format of a file from its first bytes: png, jpeg, webp, gif or None."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


@dataclass(frozen=True, slots=True)
class Written:
    """An image in place: what is on disk, and what the server sent."""

    path: Path
    bytes: int
    sha256: str
    server_bytes: int
    server_sha256: str
    embedded: bool

    def entry(self, out: Path, content_type: str | None) -> dict[str, Any]:
        """The image's ``files`` entry in the store and in results.jsonl."""
        return {"path": self.path.relative_to(out).as_posix(), "bytes": self.bytes,
                "sha256": self.sha256, "content_type": content_type,
                "server_bytes": self.server_bytes, "server_sha256": self.server_sha256}


def embed_file(src: Path | bytes, dst: Path, record: ImageRecord) -> tuple[int, str] | None:
    """Write ``src`` (a file, or the image itself) with ``record`` embedded to ``dst``,
    fsynced; its size and SHA-256, or None (and no ``dst``) for a format that takes no
    text. Raises FormatError."""
    with io.BytesIO(src) if isinstance(src, bytes) else src.open("rb") as source:
        kind = sniff(source.read(12))
        source.seek(0)
        if kind not in ("png", "jpeg"):
            return None
        entries = texts(record)
        try:
            with dst.open("wb") as handle:
                sink = HashingWriter(handle)
                if kind == "png":
                    embed_png(source, sink, text={PARAMETERS_KEY: entries[PARAMETERS_KEY]},
                              international={RECORD_KEY: entries[RECORD_KEY]})
                else:
                    embed_jpeg(source, sink, comment=entries[PARAMETERS_KEY])
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            dst.unlink(missing_ok=True)
            raise
    return sink.size, sink.sha256


def _write_synced(path: Path, data: bytes) -> None:
    try:
        with path.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def finish_image(temp: Path, final: Path, record: ImageRecord, *, server_bytes: int,
                 server_sha256: str, embed: bool = True, caption: bool = False,
                 data: bytes | None = None) -> Written:
    """Put the downloaded ``temp`` in place as ``final``, with metadata when ``embed``;
    write ``<final>.txt`` with the prompt when ``caption``. Blocking.

    ``temp`` is consumed; ``data`` is the image instead when the download kept it in
    memory (nothing at ``temp``): it is then written once, straight to its staged file.
    The image is fsynced; its name, like any image's, is made durable by the next
    directory sync, or found missing and fetched again on resume.
    """
    written: tuple[int, str] | None = None
    embedded = False
    if embed:
        staged = temp.with_name(temp.name + ".meta")
        try:
            written = embed_file(temp if data is None else data, staged, record)
        except FormatError as exc:
            log.warning("item %s: no metadata embedded (%s); image kept as the server sent it",
                        record.item_id, exc)
        if written is not None:
            os.replace(staged, final)
            temp.unlink(missing_ok=True)
            embedded = True
    if written is None:
        if data is not None:
            _write_synced(temp, data)
        os.replace(temp, final)
        written = (server_bytes, server_sha256)
    if caption:
        write_caption(final, record.prompt)
    size, digest = written
    return Written(final, size, digest, server_bytes, server_sha256, embedded)
