"""The checkpoint: one SQLite database per output directory, the truth about every item.

Layout: ``OUT/.batchgen/state.db``, WAL mode. One row per item (state, request id,
attempts, outputs, cost ...) and one per run. ``results.jsonl`` and ``summary.json``
are views written from it. Every SQL statement of batchgen is in this package:
``items`` (the engine's reads and the lifecycle's transitions), ``runs`` and ``views``
(read-only queries for status, reports and the gallery).

Writes are grouped: callers queue an operation and wait; whoever finds no commit in
progress becomes the writer, waits ``group_window_s`` for others to join (a run's
store: GROUP_WINDOW_S), takes every queued operation and applies them in one
transaction in a worker thread, shielded from cancellation. The event loop never
blocks on disk, and a burst of updates costs one fsync. An operation reports a refused
change by its return value, never by raising, so one item's illegal transition cannot
roll back the others' in the same transaction.

Durability: ``synchronous=FULL`` in WAL mode fsyncs the log at every commit. A
``kill -9`` loses nothing that was committed (the log is in the OS's hands), and a power
cut loses nothing either. The engine awaits the commit of "submitting" before it POSTs
and of the request id before it polls, so a crash at any moment leaves either an intent
without an id (in doubt, reconciled on resume) or a durable id.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from batchgen.errors import StoreError

# Parameters in one statement: SQLite before 3.32 allows 999.
MAX_PARAMS = 500
# A run's writes wait this long for others to share their commit (PostgreSQL's
# commit_delay): at 64 jobs in flight, 2.6 thread hand-offs and fsynced commits an item
# instead of 4.0, and 9% less CPU an item (issue 12, measured); a few milliseconds
# against job times of seconds.
GROUP_WINDOW_S = 0.005

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    body TEXT NOT NULL,
    line INTEGER,
    state TEXT NOT NULL,
    request_id TEXT,
    status_url TEXT,
    response_url TEXT,
    intent_at REAL,
    submitted_at REAL,
    submits INTEGER NOT NULL DEFAULT 0,
    in_doubt INTEGER NOT NULL DEFAULT 0,
    resubmits INTEGER NOT NULL DEFAULT 0,
    job_failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    error_class TEXT,
    result TEXT,
    files TEXT,
    cost REAL,
    updated_at REAL,
    seen_run INTEGER
);
CREATE INDEX IF NOT EXISTS items_state ON items(state);
CREATE INDEX IF NOT EXISTS items_request ON items(request_id);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    ended_at REAL,
    manifest TEXT,
    manifest_hash TEXT,
    options TEXT,
    summary TEXT,
    exit_code INTEGER,
    pid INTEGER
);
"""

Op = Callable[[sqlite3.Connection], Any]


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open the database; read-only connections never create or lock it for writing."""
    try:
        if read_only:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            _migrate(conn)
    except (sqlite3.Error, OSError) as exc:
        remedy = ""
        if type(exc) is sqlite3.DatabaseError:  # not a database, or a damaged one
            remedy = (f"; it is damaged: move it aside (mv {path} {path}.damaged) and run "
                      "again: the checkpoint is rebuilt from results.jsonl and the images, "
                      "and nothing already there is paid for again")
        raise StoreError(f"cannot open the checkpoint {path}: {exc}{remedy}") from exc
    conn.row_factory = sqlite3.Row
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Columns added since the first store: added to an older store as it is opened."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(items)")}
    if "seen_run" not in have:  # the last run that read the item in its manifest
        conn.execute("ALTER TABLE items ADD COLUMN seen_run INTEGER")


def credits_spent(conn: sqlite3.Connection) -> float:
    """Credits paid in all: the items' jobs, and the duplicate charges earlier runs found
    (kept in their summaries, engine.duplicates)."""
    items = conn.execute("SELECT COALESCE(SUM(cost), 0) FROM items").fetchone()[0]
    extra = conn.execute(
        "SELECT COALESCE(SUM(json_extract(summary, '$.credits.duplicates')), 0)"
        " FROM runs WHERE json_valid(summary)").fetchone()[0]
    return float(items or 0.0) + float(extra or 0.0)


@dataclass(slots=True)
class _Pending:
    op: Op
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    failure: BaseException | None = None


class Database:
    """Async access to the checkpoint. Open with ``Database.open(path)``; close with
    ``aclose``."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *,
                 group_window_s: float = 0.0) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._writing = False
        self._group_window_s = group_window_s

    @classmethod
    async def open(cls, path: Path, *, group_window_s: float = 0.0) -> Database:
        """``group_window_s``: how long a write waits for others to share its commit (a
        run passes GROUP_WINDOW_S; 0 commits at once)."""
        conn = await anyio.to_thread.run_sync(connect, path)
        return cls(conn, path, group_window_s=group_window_s)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        with self._lock:
            self._conn.close()

    async def write(self, op: Op) -> Any:
        """Apply ``op`` in a committed transaction; returns its value once it is durable."""
        pending = _Pending(op)
        self._queue.append(pending)
        if self._writing:
            await pending.done.wait()
        else:
            self._writing = True
            try:
                with anyio.CancelScope(shield=True):
                    if self._group_window_s:
                        await anyio.sleep(self._group_window_s)
                    while self._queue:
                        batch, self._queue = self._queue, []
                        await anyio.to_thread.run_sync(self._apply, batch)
                        for each in batch:
                            each.done.set()
            finally:
                self._writing = False
        if pending.failure is not None:
            cause = pending.failure
            raise StoreError(f"cannot write the checkpoint {self.path}: {cause}") from cause
        return pending.result

    def _apply(self, batch: list[_Pending]) -> None:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for each in batch:
                    each.result = each.op(self._conn)
                self._conn.execute("COMMIT")
            except Exception as exc:  # every waiter must hear of the failure
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                for each in batch:
                    each.failure = exc

    async def read(self, query: Callable[[sqlite3.Connection], Any]) -> Any:
        def run() -> Any:
            with self._lock:
                try:
                    return query(self._conn)
                except sqlite3.Error as exc:
                    raise StoreError(f"cannot read the checkpoint {self.path}: {exc}") from exc

        return await anyio.to_thread.run_sync(run)
