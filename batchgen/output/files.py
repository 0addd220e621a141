"""Files in OUT: atomic writes, image names, and the check that an image is still ours.

Every file is written to a temporary name in its final directory, fsynced, and renamed
into place, so a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
}


# Every extension an image written into OUT may have.
IMAGE_EXTENSIONS = frozenset({*_EXTENSIONS.values(), "jpeg"})


def extension_for(content_type: str | None, url: str | None = None) -> str:
    """The file extension for an image, from its content type, else its URL."""
    if content_type:
        ext = _EXTENSIONS.get(content_type.split(";")[0].strip().lower())
        if ext:
            return ext
    if url:
        suffix = Path(url.split("?")[0]).suffix.lower().lstrip(".")
        if suffix in {"png", "jpg", "jpeg", "webp", "gif"}:
            return suffix
    return "png"


def image_name(item_id: str, index: int, count: int, ext: str) -> str:
    """``<id>.<ext>`` for one image, ``<id>-<k>.<ext>`` (k from 1) for several."""
    return f"{item_id}.{ext}" if count == 1 else f"{item_id}-{index + 1}.{ext}"


def temp_path(directory: Path, item_id: str, index: int) -> Path:
    """A fresh temporary name beside the final file (same filesystem, so rename is atomic)."""
    return directory / f".tmp-{item_id}-{index}-{uuid.uuid4().hex[:8]}"


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def place(temp: Path, final: Path) -> None:
    """Rename a finished, fsynced temporary file into place, durably."""
    os.replace(temp, final)
    fsync_dir(final.parent)


def stamp(final: Path) -> int:
    """The modification time (ns) to record for an image just placed."""
    return final.stat().st_mtime_ns


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(out: Path, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Whether recorded images are still on disk as written. Blocking.

    The fast path trusts a file whose size and modification time are the recorded ones;
    a file whose time changed is hashed and compared with the recorded SHA-256, so a
    same-size overwrite is caught. Returns the entries (with refreshed times when a
    hash vouched for a touched file), or None when any file is missing or changed.
    """
    checked: list[dict[str, Any]] = []
    for entry in entries:
        try:
            path = out / entry["path"]
            info = path.stat()
            if info.st_size != entry["bytes"]:
                return None
            if info.st_mtime_ns != entry.get("mtime_ns"):
                if _sha256(path) != entry["sha256"]:
                    return None
                entry = {**entry, "mtime_ns": info.st_mtime_ns}
        except (OSError, KeyError, TypeError):
            return None
        checked.append(entry)
    return checked


def set_aside(out: Path, entries: Sequence[dict[str, Any]], stamp_s: float) -> list[Path]:
    """Move an item's recorded images (and sidecars beside them) into ``OUT/replaced/``
    under a name with the time, so a regenerated item never overwrites them. Blocking."""
    moved: list[Path] = []
    aside = out / "replaced"
    for entry in entries:
        source = out / str(entry.get("path", ""))
        if not source.is_file():
            continue
        aside.mkdir(exist_ok=True)
        target = aside / f"{source.stem}.{int(stamp_s)}{source.suffix}"
        os.replace(source, target)
        moved.append(target)
    return moved


def write_atomic(path: Path, lines: Iterable[str]) -> None:
    """Write ``lines`` to ``path`` through a temporary file and a rename. Blocking."""
    temp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with temp.open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        place(temp, path)
    finally:
        temp.unlink(missing_ok=True)
