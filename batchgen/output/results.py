"""``results.jsonl`` and ``summary.json``: the finished items and the run, as files.

``results.jsonl`` is appended to during a run for people who watch it, and rewritten
from the store at the end, so it holds exactly one line per finished item.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio

from batchgen.lifecycle import COMPLETED
from batchgen.output.files import write_atomic
from batchgen.store.items import ItemRecord
from batchgen.store.views import iter_finished


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
        "files": [{k: v for k, v in f.items() if k != "mtime_ns"} for f in files],
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
    watch it (and for a checkpoint rebuilt after a crash): lines go out in batches of
    ``BATCH`` or every ``EVERY_S`` seconds, one worker-thread call each. The file is
    rewritten from the store at the end of the run."""

    BATCH = 64
    EVERY_S = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: list[str] = []
        self._last = anyio.current_time()

    async def __aenter__(self) -> ResultsLog:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            await self._write()

    async def append(self, value: dict[str, Any]) -> None:
        self._lines.append(dumps_line(value))
        if len(self._lines) >= self.BATCH or anyio.current_time() - self._last >= self.EVERY_S:
            await self._write()

    async def _write(self) -> None:
        lines, self._lines = self._lines, []
        self._last = anyio.current_time()
        if lines:
            await anyio.to_thread.run_sync(self._append_lines, lines)

    def _append_lines(self, lines: list[str]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(lines)
