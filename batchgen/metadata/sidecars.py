"""Training-set sidecars beside the images.

- ``<image>.txt``: the prompt, one file per image with the image's basename (the
  layout kohya's trainers and most caption tools read).
- ``images/metadata.jsonl``: the Hugging Face ``imagefolder`` layout, one line per
  image: ``file_name`` (relative to the folder), ``text`` (the prompt), then the item's
  ``id``, ``model`` and parameters, with ``seed`` the one the server used. So
  ``datasets.load_dataset("imagefolder", data_dir="OUT/images")`` yields image and
  prompt pairs with their settings.

Captions are written as each image lands and filled in at the end of a run where one is
missing (a caption is cheap to write again, so it is not fsynced); metadata.jsonl is
rewritten from the store at the end of every run, like results.jsonl.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from batchgen.lifecycle import COMPLETED
from batchgen.metadata.record import used_seed
from batchgen.output.files import write_atomic
from batchgen.output.results import dumps_line
from batchgen.store.items import ItemRecord
from batchgen.store.views import iter_finished

METADATA_FILE = "metadata.jsonl"
CAPTION_SUFFIX = ".txt"


def caption_path(image: Path) -> Path:
    return image.with_suffix(CAPTION_SUFFIX)


def write_caption(image: Path, prompt: str) -> Path:
    """Write ``<image>.txt`` holding ``prompt`` (through a temporary name). Blocking."""
    target = caption_path(image)
    temp = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:8]}")
    try:
        temp.write_text(prompt, encoding="utf-8")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def metadata_line(*, file_name: str, item_id: str, model: str, params: dict[str, Any],
                  result: dict[str, Any]) -> dict[str, Any]:
    """One ``metadata.jsonl`` line: ``file_name``, ``text``, then id, model, parameters."""
    prompt = params.get("prompt")
    line: dict[str, Any] = {"file_name": file_name,
                            "text": prompt if isinstance(prompt, str) else "",
                            "id": item_id, "model": model}
    line.update((k, v) for k, v in params.items() if k != "prompt")
    seed = used_seed(params, result)
    if seed is not None:
        line["seed"] = seed
    return line


def in_images(path: str, images: str = "images") -> str | None:
    """``path`` (relative to OUT) as a name inside ``images/``, or None when it is not."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or len(pure.parts) < 2 \
            or pure.parts[0] != images:
        return None
    return PurePosixPath(*pure.parts[1:]).as_posix()


def _lines(db: Path, out: Path, captions: bool) -> Iterator[str]:
    for record in iter_finished(db):
        if record.state != COMPLETED:
            continue
        for name, image in _images(out, record):
            if captions and not caption_path(image).exists():
                write_caption(image, str(record.params.get("prompt", "")))
            yield dumps_line(metadata_line(file_name=name, item_id=record.id,
                                           model=record.model, params=record.params,
                                           result=record.result or {}))


def _images(out: Path, record: ItemRecord) -> Iterator[tuple[str, Path]]:
    """The completed item's images that are on disk in ``images/``, by name."""
    for entry in record.files or []:
        name = in_images(str(entry.get("path", "")))
        if name is not None and (out / "images" / name).is_file():
            yield name, out / "images" / name


def export_sidecars(db: Path, out: Path, *, captions: bool = False) -> None:
    """Rewrite ``images/metadata.jsonl`` from the store; with ``captions``, write the
    captions that are missing. Blocking."""
    images = out / "images"
    if images.is_dir():
        write_atomic(images / METADATA_FILE, _lines(db, out, captions))
