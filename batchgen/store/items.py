"""Items in the checkpoint: the engine's reads, and the lifecycle's checked transitions.

Every change of an item's state goes through ``ItemStore.transition``, which applies one
``lifecycle.Event`` as one statement guarded by the event's from-states; the few other
writes (``add``, ``refresh_files``) change no state.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from batchgen.lifecycle import COMPLETED, OUTCOME_UNKNOWN, PAID, STARTED, Event, Outcome, State
from batchgen.manifest.ids import canonical_json
from batchgen.manifest.item import Item
from batchgen.store.db import MAX_PARAMS, Database, credits_spent

_COLUMNS = frozenset((
    "id", "model", "body", "line", "state", "request_id", "status_url", "response_url",
    "intent_at", "submitted_at", "submits", "in_doubt", "resubmits", "job_failures",
    "last_error", "error_class", "result", "files", "cost", "updated_at", "seen_run",
))
_PAID_STATES = sorted(state.value for state in PAID)
_PAID_MARKS = ",".join("?" * len(_PAID_STATES))
_decode: Callable[[str], Any] = msgspec.json.Decoder().decode
_COUNTERS = frozenset(("submits", "in_doubt", "resubmits", "job_failures"))


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """An item's row as stored."""

    id: str
    model: str
    params: dict[str, Any]
    line: int | None
    state: State
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


def record_of(row: sqlite3.Row) -> ItemRecord:
    # msgspec decodes JSON into the same plain values as json.loads, about twice as fast:
    # a resume reads back a million rows.
    return ItemRecord(
        id=row["id"], model=row["model"], params=_decode(row["body"]), line=row["line"],
        state=State(row["state"]), request_id=row["request_id"],
        status_url=row["status_url"], response_url=row["response_url"],
        intent_at=row["intent_at"], submitted_at=row["submitted_at"],
        submits=row["submits"], in_doubt=row["in_doubt"], resubmits=row["resubmits"],
        job_failures=row["job_failures"], last_error=row["last_error"],
        error_class=row["error_class"],
        result=_decode(row["result"]) if row["result"] else None,
        files=_decode(row["files"]) if row["files"] else None,
        cost=row["cost"],
    )


def _stored(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def transition_op(event: Event, item_id: str, now: float,
                  values: Mapping[str, Any]) -> Any:
    """The statement of one event on one item, guarded by its from-states."""
    fields = {k: v for k, v in values.items() if k != "posts"}
    if not set(fields) <= _COLUMNS:
        raise ValueError(f"unknown columns {sorted(set(fields) - _COLUMNS)}")
    sets = ["state = ?", "updated_at = ?"]
    args: list[Any] = [event.target.value, now]
    for name, value in fields.items():
        keep = name in event.keep_first
        sets.append(f"{name} = COALESCE({name}, ?)" if keep else f"{name} = ?")
        args.append(_stored(value))
    sets += [f"{name} = NULL" for name in sorted(event.clears - set(fields))]
    bumps = [(name, 1) for name in event.bumps]
    if values.get("posts"):
        bumps.append(("submits", int(values["posts"])))
    for name, step in bumps:
        assert name in _COUNTERS
        sets.append(f"{name} = {name} + ?")
        args.append(step)
    sources = sorted(s.value for s in event.sources)
    where = f"id = ? AND state IN ({','.join('?' * len(sources))})"
    request_id = fields.get("request_id")
    sql = f"UPDATE items SET {', '.join(sets)} WHERE {where}"

    def op(conn: sqlite3.Connection) -> Outcome | str | None:
        if event.claims and conn.execute(
                "SELECT 1 FROM items WHERE request_id = ? AND id != ?",
                (request_id, item_id)).fetchone():
            row = conn.execute("SELECT state FROM items WHERE id = ?", (item_id,)).fetchone()
            return "claimed" if row and row[0] in sources else (row[0] if row else None)
        if conn.execute(sql, [*args, item_id, *sources]).rowcount == 1:
            return "ok"
        row = conn.execute("SELECT state FROM items WHERE id = ?", (item_id,)).fetchone()
        return str(row[0]) if row else None

    return op


class ItemStore:
    """The engine's view of the items table."""

    def __init__(self, db: Database, run_id: int | None = None) -> None:
        self.db = db
        self.run_id = run_id  # this run's row in ``runs``: items read are marked with it

    async def transition(self, event: Event, item_id: str, now: float,
                         values: Mapping[str, Any]) -> Outcome | str | None:
        """Apply ``event``; "ok", "claimed", or the state the item was found in."""
        result: Outcome | str | None = await self.db.write(
            transition_op(event, item_id, now, values))
        return result

    async def add(self, items: Sequence[Item], now: float, *,
                  seen: Sequence[str] = ()) -> None:
        """Insert new items as pending (the ``add`` event); existing rows are left alone.
        ``items`` and the ids in ``seen`` are marked as read by this run."""
        # Canonical JSON, so that identical items have identical bodies (twins).
        rows = [(i.id, i.model, canonical_json(i.params), i.line, "pending", now, self.run_id)
                for i in items]
        marked = list(seen)

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR IGNORE INTO items (id, model, body, line, state, updated_at,"
                " seen_run) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            for start in range(0, len(marked), MAX_PARAMS):
                part = marked[start:start + MAX_PARAMS]
                conn.execute(f"UPDATE items SET seen_run = ? WHERE id IN"
                             f" ({','.join('?' * len(part))})", [self.run_id, *part])

        await self.db.write(op)

    async def seen_counts(self) -> dict[str, int]:
        """Items per state among those this run read in its manifest."""
        rows = await self.db.read(lambda conn: conn.execute(
            "SELECT state, COUNT(*) FROM items WHERE seen_run = ? GROUP BY state",
            (self.run_id,)).fetchall())
        return {state: n for state, n in rows}

    async def refresh_files(self, files: Mapping[str, list[dict[str, Any]]]) -> None:
        """Record the files' new modification times after their hashes were checked, for
        items by id, in one transaction."""
        rows = [(json.dumps(entries), item_id, COMPLETED.value)
                for item_id, entries in files.items()]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("UPDATE items SET files = ? WHERE id = ? AND state = ?", rows)

        if rows:
            await self.db.write(op)

    async def lookup(self, ids: Sequence[str]) -> dict[str, ItemRecord]:
        """The stored rows of ``ids`` that exist."""

        def query(conn: sqlite3.Connection) -> dict[str, ItemRecord]:
            found: dict[str, ItemRecord] = {}
            for start in range(0, len(ids), MAX_PARAMS):
                part = list(ids[start:start + MAX_PARAMS])
                marks = ",".join("?" * len(part))
                rows = conn.execute(f"SELECT * FROM items WHERE id IN ({marks})", part)
                found.update((row["id"], record_of(row)) for row in rows)
            return found

        if not ids:
            return {}
        result: dict[str, ItemRecord] = await self.db.read(query)
        return result

    async def get(self, item_id: str) -> ItemRecord | None:
        return (await self.lookup([item_id])).get(item_id)

    async def claimed(self, request_ids: Sequence[str]) -> set[str]:
        """Which of ``request_ids`` some item already holds."""

        def query(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(request_ids), MAX_PARAMS):
                part = list(request_ids[start:start + MAX_PARAMS])
                marks = ",".join("?" * len(part))
                rows = conn.execute(
                    f"SELECT request_id FROM items WHERE request_id IN ({marks})", part)
                found.update(row[0] for row in rows)
            return found

        if not request_ids:
            return set()
        result: set[str] = await self.db.read(query)
        return result

    async def claimed_bodies(self) -> Counter[tuple[str, str]]:
        """How many items of each (model, body) hold a request id."""
        rows = await self.db.read(lambda conn: conn.execute(
            "SELECT model, body, COUNT(*) FROM items WHERE request_id IS NOT NULL"
            " GROUP BY model, body").fetchall())
        return Counter({(model, body): n for model, body, n in rows})

    async def unsettled_twins(self, item: Item) -> int:
        """Other items with ``item``'s model and body whose submit outcome is unknown."""
        unknown = sorted(state.value for state in OUTCOME_UNKNOWN)
        row = await self.db.read(lambda conn: conn.execute(
            "SELECT COUNT(*) FROM items WHERE model = ? AND body = ? AND id != ?"
            f" AND state IN ({','.join('?' * len(unknown))})",
            (item.model, canonical_json(item.params), item.id, *unknown)).fetchone())
        return int(row[0])

    async def started(self) -> int:
        """How many items are begun and not finished (they need this run's attention)."""
        return int(await self.db.read(lambda conn: conn.execute(
            f"SELECT COUNT(*) FROM items WHERE state IN ({','.join('?' * len(STARTED))})",
            [s.value for s in STARTED]).fetchone()[0]))

    async def paid_jobs(self, limit: int) -> list[tuple[str, dict[str, Any], float]]:
        """(model, params, cost) of the most recently paid jobs that reported a cost."""

        def query(conn: sqlite3.Connection) -> list[tuple[str, dict[str, Any], float]]:
            rows = conn.execute(
                f"SELECT model, body, cost FROM items WHERE state IN ({_PAID_MARKS})"
                " AND cost IS NOT NULL ORDER BY updated_at DESC LIMIT ?",
                [*_PAID_STATES, limit]).fetchall()
            return [(row[0], json.loads(row[1]), float(row[2])) for row in reversed(rows)]

        result: list[tuple[str, dict[str, Any], float]] = await self.db.read(query)
        return result

    async def counts(self) -> dict[str, int]:
        """Items per state."""
        rows = await self.db.read(lambda conn: conn.execute(
            "SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())
        return {state: n for state, n in rows}

    async def credits_spent(self) -> float:
        """Credits paid in all, duplicate charges of earlier runs included."""
        spent: float = await self.db.read(credits_spent)
        return spent
