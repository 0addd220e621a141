"""The checkpoint: one SQLite database per output directory, the truth about every item.

Layout: ``OUT/.batchgen/state.db``, WAL mode. One row per item (state, request id,
attempts, outputs, cost ...) and one per run. ``results.jsonl`` and ``summary.json``
are views written from it.

Writes are grouped: callers queue an operation and wait; whoever finds no commit in
progress becomes the writer, takes every queued operation and applies them in one
transaction in a worker thread, shielded from cancellation. The event loop never
blocks on disk, and a burst of updates costs one fsync.

Durability: ``synchronous=FULL`` in WAL mode fsyncs the log at every commit. A
``kill -9`` loses nothing that was committed (the log is in the OS's hands), and a power
cut loses nothing either. The pipeline awaits the commit of "submitting" before it
POSTs and of the request id before it polls, so a crash at any moment leaves either an
intent without an id (in doubt, reconciled on resume) or a durable id.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from batchgen.errors import StoreError
from batchgen.manifest.ids import canonical_json
from batchgen.manifest.item import Item

# Item states. "submitting" is an intent whose POST outcome is not yet known.
PENDING = "pending"
SUBMITTING = "submitting"
IN_DOUBT = "in_doubt"
SUBMITTED = "submitted"
FETCHED = "fetched"
COMPLETED = "completed"
FAILED = "failed"
STATES = (PENDING, SUBMITTING, IN_DOUBT, SUBMITTED, FETCHED, COMPLETED, FAILED)
# Parameters in one statement: SQLite before 3.32 allows 999.
MAX_PARAMS = 500

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
    updated_at REAL
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

_COLUMNS = (
    "id", "model", "body", "line", "state", "request_id", "status_url", "response_url",
    "intent_at", "submitted_at", "submits", "in_doubt", "resubmits", "job_failures",
    "last_error", "error_class", "result", "files", "cost", "updated_at",
)


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """An item's row as stored."""

    id: str
    model: str
    params: dict[str, Any]
    line: int | None
    state: str
    request_id: str | None
    status_url: str | None
    response_url: str | None
    intent_at: float | None
    submitted_at: float | None
    submits: int
    in_doubt: int
    resubmits: int
    job_failures: int
    last_error: str | None
    error_class: str | None
    result: dict[str, Any] | None
    files: list[dict[str, Any]] | None
    cost: float | None

    def as_item(self, file: str) -> Item:
        return Item(self.id, self.model, self.params, file, self.line)


def _record(row: sqlite3.Row) -> ItemRecord:
    return ItemRecord(
        id=row["id"],
        model=row["model"],
        params=json.loads(row["body"]),
        line=row["line"],
        state=row["state"],
        request_id=row["request_id"],
        status_url=row["status_url"],
        response_url=row["response_url"],
        intent_at=row["intent_at"],
        submitted_at=row["submitted_at"],
        submits=row["submits"],
        in_doubt=row["in_doubt"],
        resubmits=row["resubmits"],
        job_failures=row["job_failures"],
        last_error=row["last_error"],
        error_class=row["error_class"],
        result=json.loads(row["result"]) if row["result"] else None,
        files=json.loads(row["files"]) if row["files"] else None,
        cost=row["cost"],
    )


Op = Callable[[sqlite3.Connection], None]


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
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open the checkpoint {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    return conn


class Store:
    """Async access to the checkpoint. Open with ``Store.open(path)``; close with ``aclose``."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.Lock()
        self._queue: list[tuple[Op, anyio.Event, list[BaseException]]] = []
        self._writing = False

    @classmethod
    async def open(cls, path: Path) -> Store:
        conn = await anyio.to_thread.run_sync(connect, path)
        return cls(conn, path)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- the grouped writer ----------------------------------------------------------

    async def write(self, op: Op) -> None:
        """Apply ``op`` in a committed transaction; returns once it is durable."""
        done = anyio.Event()
        failure: list[BaseException] = []
        self._queue.append((op, done, failure))
        if self._writing:
            await done.wait()
        else:
            self._writing = True
            try:
                with anyio.CancelScope(shield=True):
                    while self._queue:
                        batch, self._queue = self._queue, []
                        await anyio.to_thread.run_sync(self._apply, batch)
                        for _, event, _ in batch:
                            event.set()
            finally:
                self._writing = False
        if failure:
            cause = failure[0]
            raise StoreError(f"cannot write the checkpoint {self.path}: {cause}") from cause

    def _apply(self, batch: list[tuple[Op, anyio.Event, list[BaseException]]]) -> None:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for op, _, _ in batch:
                    op(self._conn)
                self._conn.execute("COMMIT")
            except Exception as exc:  # every waiter must hear of the failure
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                for _, _, failure in batch:
                    failure.append(exc)

    async def read(self, query: Callable[[sqlite3.Connection], Any]) -> Any:
        def run() -> Any:
            with self._lock:
                try:
                    return query(self._conn)
                except sqlite3.Error as exc:
                    raise StoreError(f"cannot read the checkpoint {self.path}: {exc}") from exc

        return await anyio.to_thread.run_sync(run)

    # -- queries ---------------------------------------------------------------------

    async def lookup(self, ids: Sequence[str]) -> dict[str, ItemRecord]:
        """The stored rows of ``ids`` that exist."""

        def query(conn: sqlite3.Connection) -> dict[str, ItemRecord]:
            found: dict[str, ItemRecord] = {}
            # SQLite before 3.32 allows 999 parameters a statement.
            for start in range(0, len(ids), MAX_PARAMS):
                part = list(ids[start:start + MAX_PARAMS])
                marks = ",".join("?" * len(part))
                rows = conn.execute(f"SELECT * FROM items WHERE id IN ({marks})", part)
                found.update((row["id"], _record(row)) for row in rows)
            return found

        if not ids:
            return {}
        result: dict[str, ItemRecord] = await self.read(query)
        return result

    async def get(self, item_id: str) -> ItemRecord | None:
        return (await self.lookup([item_id])).get(item_id)

    async def twins_in_flight(self, item: Item) -> int:
        """Other items with this item's model and body whose submit has no known outcome."""

        def query(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM items WHERE model = ? AND body = ? AND id != ?"
                " AND state IN (?, ?)",
                (item.model, canonical_json(item.params), item.id, SUBMITTING, IN_DOUBT),
            ).fetchone()
            return int(row[0])

        result: int = await self.read(query)
        return result

    async def claimed(self, request_ids: Sequence[str], *, but: str) -> set[str]:
        """Which of ``request_ids`` an item other than ``but`` already holds."""

        def query(conn: sqlite3.Connection) -> set[str]:
            marks = ",".join("?" * len(request_ids))
            rows = conn.execute(
                f"SELECT request_id FROM items WHERE request_id IN ({marks}) AND id != ?",
                [*request_ids, but],
            )
            return {row[0] for row in rows}

        if not request_ids:
            return set()
        result: set[str] = await self.read(query)
        return result

    async def last_price(self) -> float | None:
        """Cost per image of the most recently finished priced job, if any."""

        def query(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT cost, body FROM items WHERE state = ? AND cost IS NOT NULL"
                " ORDER BY updated_at DESC LIMIT 1", (COMPLETED,)).fetchone()
            if row is None:
                return None
            samples = json.loads(row["body"]).get("samples", 1)
            count = samples if isinstance(samples, int) and samples > 0 else 1
            return float(row["cost"]) / count

        result: float | None = await self.read(query)
        return result

    async def counts(self) -> dict[str, int]:
        def query(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT state, COUNT(*) FROM items GROUP BY state")
            return {state: n for state, n in rows}

        result: dict[str, int] = await self.read(query)
        return result

    async def totals(self) -> dict[str, float]:
        """Credits spent and submit counters over every item."""

        def query(conn: sqlite3.Connection) -> dict[str, float]:
            row = conn.execute(
                "SELECT COALESCE(SUM(cost), 0), COALESCE(SUM(submits), 0),"
                " COALESCE(SUM(in_doubt), 0), COALESCE(SUM(resubmits), 0) FROM items"
            ).fetchone()
            return {"cost": row[0], "submits": row[1], "in_doubt": row[2], "resubmits": row[3]}

        result: dict[str, float] = await self.read(query)
        return result


    # -- item updates ----------------------------------------------------------------

    async def add(self, items: Sequence[Item], now: float) -> None:
        """Insert new items as pending; existing rows are left as they are."""
        # Canonical JSON, so that identical items have identical bodies (see ``twins``).
        rows = [(i.id, i.model, canonical_json(i.params), i.line, PENDING, now) for i in items]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR IGNORE INTO items (id, model, body, line, state, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

        await self.write(op)

    async def update(self, item_id: str, now: float, **fields: Any) -> None:
        """Set columns of one row; dict and list values are stored as JSON."""
        await self.write(update_op(item_id, now, fields))

    async def bump(self, item_id: str, now: float, counter: str, **fields: Any) -> None:
        """Add one to ``counter`` and set ``fields`` in the same transaction."""
        if counter not in ("submits", "in_doubt", "resubmits", "job_failures"):
            raise ValueError(counter)
        update = update_op(item_id, now, fields)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(f"UPDATE items SET {counter} = {counter} + 1 WHERE id = ?", (item_id,))
            update(conn)

        await self.write(op)

    # -- runs ------------------------------------------------------------------------

    async def start_run(self, *, manifest: str, manifest_hash: str, options: dict[str, Any],
                        now: float, pid: int) -> int:
        run_id: list[int] = []

        def op(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "INSERT INTO runs (started_at, manifest, manifest_hash, options, pid)"
                " VALUES (?, ?, ?, ?, ?)",
                (now, manifest, manifest_hash, json.dumps(options), pid),
            )
            run_id.append(int(cursor.lastrowid or 0))

        await self.write(op)
        return run_id[0]

    async def end_run(self, run_id: int, *, now: float, summary: dict[str, Any],
                      exit_code: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE runs SET ended_at = ?, summary = ?, exit_code = ? WHERE id = ?",
                (now, json.dumps(summary), exit_code, run_id),
            )

        await self.write(op)


def update_op(item_id: str, now: float, fields: dict[str, Any]) -> Op:
    unknown = set(fields) - set(_COLUMNS)
    if unknown:
        raise ValueError(f"unknown columns {sorted(unknown)}")
    names = [*fields, "updated_at"]
    values = [json.dumps(v) if isinstance(v, dict | list) else v for v in fields.values()]
    assignments = ", ".join(f"{name} = ?" for name in names)

    def op(conn: sqlite3.Connection) -> None:
        conn.execute(f"UPDATE items SET {assignments} WHERE id = ?", [*values, now, item_id])

    return op


def iter_finished(path: Path, *, limit: int = -1) -> Iterator[ItemRecord]:
    """Completed and failed rows in id order (the first ``limit``, -1 for all), streamed
    through a connection of its own.

    Blocking: call from a worker thread. WAL lets it read while a run writes.
    """
    conn = connect(path, read_only=True)
    try:
        cursor = conn.execute(
            "SELECT * FROM items WHERE state IN (?, ?) ORDER BY id LIMIT ?",
            (COMPLETED, FAILED, limit),
        )
        for row in cursor:
            yield _record(row)
    finally:
        conn.close()


def count_finished(path: Path) -> int:
    """How many rows are completed or failed. Blocking."""
    conn = connect(path, read_only=True)
    try:
        row = conn.execute("SELECT COUNT(*) FROM items WHERE state IN (?, ?)",
                           (COMPLETED, FAILED)).fetchone()
        return int(row[0])
    finally:
        conn.close()
