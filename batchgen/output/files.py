"""What lands on disk: atomic image files, ``results.jsonl`` and ``summary.json``.

Every file is written to a temporary name in its final directory, fsynced, and renamed
into place, so a crash leaves either the old file or the new one, never half of one.
``results.jsonl`` is appended to during a run for people who watch it, and rewritten
from the store at the end so it holds exactly one line per finished item.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio

from batchgen.store.db import COMPLETED, ItemRecord, iter_finished

_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
}


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


def place_image(temp: Path, final: Path) -> None:
    """Rename a finished, fsynced image into place, without syncing the directory.

    The image's bytes are already on disk; only its name could be lost to a power cut,
    and then the next run finds the file missing (``file_ok``) and downloads it again
    from the stored URL, with no new submit. That saves an fsync per image.
    """
    os.replace(temp, final)


def file_ok(out: Path, entry: dict[str, Any]) -> bool:
    """True when a recorded image is on disk with its recorded size."""
    try:
        return bool((out / entry["path"]).stat().st_size == entry["bytes"])
    except (OSError, KeyError, TypeError):
        return False


def result_line(record: ItemRecord) -> dict[str, Any]:
    """One ``results.jsonl`` line for a finished item."""
    done = record.state == COMPLETED
    return line(item_id=record.id, state=record.state, model=record.model,
                request_id=record.request_id, files=record.files or [],
                result=record.result or {}, params=record.params, cost=record.cost,
                error=None if done else record.last_error,
                error_class=None if done else record.error_class)


def line(*, item_id: str, state: str, model: str, request_id: str | None,
         files: list[dict[str, Any]], result: dict[str, Any], params: dict[str, Any],
         cost: float | None, error: str | None = None,
         error_class: str | None = None) -> dict[str, Any]:
    """The fields of a ``results.jsonl`` line, from wherever the caller has them."""
    metrics = result.get("metrics") or {}
    return {
        "id": item_id,
        "status": state,
        "model": model,
        "request_id": request_id,
        "files": files,
        "seed": result.get("seed"),
        "params": params,
        "metrics": {
            "cost": cost,
            "inference_time": metrics.get("inference_time"),
            "queue_time": metrics.get("queue_time"),
        },
        "error": error,
        "error_class": error_class,
    }


def dumps_line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


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


def export_results(db: Path, out: Path) -> int:
    """Rewrite ``OUT/results.jsonl`` from the store; returns the line count. Blocking."""
    count = 0

    def lines() -> Iterable[str]:
        nonlocal count
        for record in iter_finished(db):
            count += 1
            yield dumps_line(result_line(record))

    write_atomic(out / "results.jsonl", lines())
    return count


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    """Write ``OUT/summary.json`` atomically. Blocking."""
    write_atomic(out / "summary.json", [json.dumps(summary, indent=2, sort_keys=True) + "\n"])


class ResultsLog:
    """Appends finished items to ``results.jsonl`` while a run goes on, for people who
    watch it; lines go out in batches, one worker-thread call each. The file is rewritten
    from the store at the end of the run, so a line lost in a crash costs nothing."""

    BATCH = 64

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: list[str] = []

    async def __aenter__(self) -> ResultsLog:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            await self._write()

    async def append(self, value: dict[str, Any]) -> None:
        self._lines.append(dumps_line(value))
        if len(self._lines) >= self.BATCH:
            await self._write()

    async def _write(self) -> None:
        lines, self._lines = self._lines, []
        if lines:
            await anyio.to_thread.run_sync(self._append_lines, lines)

    def _append_lines(self, lines: list[str]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(lines)
