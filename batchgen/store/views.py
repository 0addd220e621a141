"""Read-only queries for the people-facing views: status, results.jsonl, failed.jsonl,
the morning report and the gallery.

Each opens a read-only connection of its own, so it works while a run holds the lock and
writes (WAL). All are blocking: call them from a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.errors import StoreError
from batchgen.lifecycle import COMPLETED, FAILED, FETCHED, FINISHED
from batchgen.store.db import connect, credits_spent
from batchgen.store.items import ItemRecord, record_of

_FINISHED = ",".join("?" * len(FINISHED))
# Failed items, and items paid for whose images could not be written (they stay fetched).
_FAILED_ROWS = "FROM items WHERE state = ? OR (state = ? AND error_class = 'download')"


def iter_finished(path: Path, *, limit: int = -1) -> Iterator[ItemRecord]:
    """Completed and failed rows in id order (the first ``limit``, -1 for all)."""
    conn = connect(path, read_only=True)
    try:
        cursor = conn.execute(
            f"SELECT * FROM items WHERE state IN ({_FINISHED}) ORDER BY id LIMIT ?",
            (*sorted(FINISHED), limit))
        for row in cursor:
            yield record_of(row)
    finally:
        conn.close()


def count_finished(path: Path) -> int:
    """How many rows are completed or failed."""
    conn = connect(path, read_only=True)
    try:
        row = conn.execute(f"SELECT COUNT(*) FROM items WHERE state IN ({_FINISHED})",
                           sorted(FINISHED)).fetchone()
        return int(row[0])
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class FailedRow:
    """The columns of a failed item that its report needs."""

    id: str
    model: str
    params: dict[str, Any]
    error_class: str | None
    last_error: str | None


def iter_failed(path: Path) -> Generator[FailedRow, None, None]:
    """Failed rows in id order. Paid jobs whose images are not written yet are not
    among them: the next run writes those without paying again."""
    conn = connect(path, read_only=True)
    try:
        cursor = conn.execute(
            "SELECT id, model, body, error_class, last_error FROM items WHERE state = ?"
            " ORDER BY id", (FAILED.value,))
        for item_id, model, body, error_class, last_error in cursor:
            yield FailedRow(item_id, model, json.loads(body), error_class, last_error)
    finally:
        conn.close()


def top_errors(path: Path, limit: int = 5) -> list[tuple[str | None, str | None, int]]:
    """The most frequent (error_class, message, count) among failed items."""
    conn = connect(path, read_only=True)
    try:
        cursor = conn.execute(
            f"SELECT error_class, last_error, COUNT(*) AS n {_FAILED_ROWS}"
            " GROUP BY error_class, last_error ORDER BY n DESC, error_class, last_error"
            " LIMIT ?", (FAILED.value, FETCHED.value, limit))
        rows: list[tuple[str | None, str | None, int]] = cursor.fetchall()
        return rows
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class Since:
    """What happened to items since a wall time: finished, and taken for a first job."""

    completed: int = 0
    failed: int = 0
    started: int = 0


def since(conn: sqlite3.Connection, wall: float) -> Since:
    """Items completed, failed, and sent (their first intent or their job) at ``wall`` or
    later: a live run's own progress, whatever earlier runs into OUT finished."""
    row = conn.execute(
        "SELECT COALESCE(SUM(state = ? AND updated_at >= ?), 0),"
        " COALESCE(SUM(state = ? AND updated_at >= ?), 0),"
        " COALESCE(SUM(COALESCE(submitted_at, intent_at) >= ?), 0) FROM items",
        (COMPLETED.value, wall, FAILED.value, wall, wall)).fetchone()
    return Since(int(row[0]), int(row[1]), int(row[2]))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What ``batchgen status`` reads: counts per state, totals, the last run and what
    happened since it started."""

    counts: dict[str, int]
    cost: float
    submits: int
    in_doubt: int
    last_run: dict[str, Any] | None
    last_run_progress: Since = Since()


def snapshot(path: Path) -> Snapshot:
    """Counts, credits and the last run, read in one go. Raises StoreError."""
    conn = connect(path, read_only=True)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'items'").fetchone() is None:
            return Snapshot({}, 0.0, 0, 0, None)  # an empty file: nothing recorded yet
        counts = {state: n for state, n in
                  conn.execute("SELECT state, COUNT(*) FROM items GROUP BY state")}
        submits, in_doubt = conn.execute(
            "SELECT COALESCE(SUM(submits), 0), COALESCE(SUM(in_doubt), 0) FROM items"
        ).fetchone()
        cost = credits_spent(conn)
        run = conn.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        progress = since(conn, run["started_at"]) if run is not None else Since()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    finally:
        conn.close()
    return Snapshot(counts, float(cost), int(submits), int(in_doubt),
                    dict(run) if run is not None else None, progress)
