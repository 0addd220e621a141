"""What an OUT already holds when its checkpoint is gone: finished items read back from
``results.jsonl``, then from the record embedded in each image (``metadata``).

Used to rebuild a missing or empty checkpoint, so that a run never pays again for an
image that is on disk. Blocking: call from a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.metadata.importer import image_files, read_texts
from batchgen.metadata.record import RECORD_KEY, read_record
from batchgen.output.files import IMAGE_EXTENSIONS as WRITTEN

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Finished:
    """One finished item as OUT shows it."""

    id: str
    model: str
    params: dict[str, Any]
    state: str  # "completed" or "failed"
    request_id: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    cost: float | None = None
    error: str | None = None
    error_class: str | None = None


def holds_results(out: Path) -> bool:
    """Whether OUT has finished work to lose: results.jsonl lines or image files."""
    results = out / "results.jsonl"
    if results.is_file() and results.stat().st_size > 0:
        return True
    try:
        with os.scandir(out / "images") as entries:  # the first image will do
            return any(os.path.splitext(entry.name)[1].lower().lstrip(".") in WRITTEN
                       for entry in entries)
    except OSError:
        return False


def earliest_activity(out: Path) -> float | None:
    """The oldest modification time among OUT's results and images (epoch seconds)."""
    times = [path.stat().st_mtime for path in (out / "results.jsonl",) if path.is_file()]
    times += [path.stat().st_mtime for path in image_files([out / "images"])] \
        if (out / "images").is_dir() else []
    return min(times) if times else None


def from_results(out: Path) -> Iterator[Finished]:
    """The lines of ``results.jsonl``; unreadable lines are skipped with a warning."""
    path = out / "results.jsonl"
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, 1):
            try:
                line = json.loads(text)
                yield _from_line(line)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s:%d: not a results line (%s); skipped", path, number, exc,
                            extra={"event": "rebuild.bad_line"})


def _from_line(line: dict[str, Any]) -> Finished:
    metrics = line.get("metrics") or {}
    return Finished(id=str(line["id"]), model=str(line["model"]), params=dict(line["params"]),
                 state="completed" if line["status"] == "completed" else "failed",
                 request_id=line.get("request_id"), files=list(line.get("files") or []),
                 result={"seed": line.get("seed"), "metrics": metrics, "outputs": []},
                 cost=metrics.get("cost"), error=line.get("error"),
                 error_class=line.get("error_class"))


def from_images(out: Path, known: set[str]) -> Iterator[Finished]:
    """Items whose images carry batchgen's record and that ``known`` does not hold yet."""
    found: dict[str, Finished] = {}
    for path in image_files([out / "images"]):
        try:
            with path.open("rb") as source:
                text = read_texts(source).get(RECORD_KEY)
            record = read_record(text) if text else None
        except (OSError, ValueError):
            continue
        if record is None or record.item_id.lower() in known:
            continue
        data = path.read_bytes()
        item = found.setdefault(record.item_id, Finished(
            id=record.item_id, model=record.model, params=dict(record.params),
            state="completed", request_id=record.request_id, cost=record.cost,
            result={"seed": record.seed, "metrics": {"cost": record.cost}, "outputs": []}))
        item.files.append({"path": str(path.relative_to(out)), "bytes": len(data),
                           "sha256": hashlib.sha256(data).hexdigest(), "index": record.index,
                           "count": record.count})
    for item in found.values():
        if len(item.files) == item.files[0]["count"]:  # every sample is there
            item.files.sort(key=lambda f: f["index"])
            for entry in item.files:
                del entry["index"], entry["count"]
            yield item
