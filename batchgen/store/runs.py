"""The runs table: one row per ``batchgen run``, its options, summary and exit code."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from batchgen.errors import StoreError
from batchgen.store.db import Database, connect


async def start_run(db: Database, *, manifest: str, manifest_hash: str,
                    options: dict[str, Any], now: float, pid: int) -> int:
    def op(conn: sqlite3.Connection) -> int:
        cursor = conn.execute(
            "INSERT INTO runs (started_at, manifest, manifest_hash, options, pid)"
            " VALUES (?, ?, ?, ?, ?)",
            (now, manifest, manifest_hash, json.dumps(options), pid))
        return int(cursor.lastrowid or 0)

    run_id: int = await db.write(op)
    return run_id


async def end_run(db: Database, run_id: int, *, now: float, summary: dict[str, Any],
                  exit_code: int) -> None:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE runs SET ended_at = ?, summary = ?, exit_code = ? WHERE id = ?",
                     (now, json.dumps(summary), exit_code, run_id))

    await db.write(op)


def validated_with(db_path: Path, digest: str) -> list[dict[str, Any]]:
    """The options of earlier runs of the manifest whose bytes hash to ``digest``.
    Blocking; an unreadable store answers none."""
    if not db_path.exists():
        return []
    try:
        conn = connect(db_path, read_only=True)
    except StoreError:
        return []
    try:
        rows = conn.execute("SELECT options FROM runs WHERE manifest_hash = ?", (digest,))
        return [json.loads(row[0] or "{}") for row in rows]
    except (sqlite3.Error, ValueError):
        return []
    finally:
        conn.close()


async def last_manifest(db: Database) -> str | None:
    """The manifest of the latest run into this store, if any."""
    row = await db.read(lambda conn: conn.execute(
        "SELECT manifest FROM runs ORDER BY id DESC LIMIT 1").fetchone())
    return str(row[0]) if row and row[0] else None
