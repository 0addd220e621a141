"""A checkpoint rebuilt from what OUT already holds, when it is missing or empty.

People remove ``OUT/.batchgen`` to "clear a lock", or find a 0-byte ``state.db``; the
images and ``results.jsonl`` are still there. Their items go back into the store as they
were finished, so the run that follows pays for none of them again. A damaged file is
not touched: its message says how to set it aside.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from batchgen.manifest.ids import canonical_json
from batchgen.output.inventory import Finished
from batchgen.store.db import Database


async def is_empty(db: Database) -> bool:
    """Whether the store holds no item at all."""
    row = await db.read(lambda conn: conn.execute("SELECT 1 FROM items LIMIT 1").fetchone())
    return row is None


async def restore(db: Database, found: Iterable[Finished], now: float) -> int:
    """Insert finished items as they were; returns how many were new to the store."""
    rows = [(f.id, f.model, canonical_json(f.params), f.state, f.request_id,
             json.dumps(f.result), json.dumps(f.files) if f.files else None, f.cost, f.error,
             f.error_class, now) for f in found]

    def op(conn: sqlite3.Connection) -> int:
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO items (id, model, body, state, request_id, result, files,"
            " cost, last_error, error_class, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows)
        return conn.total_changes - before

    count: int = await db.write(op)
    return count
