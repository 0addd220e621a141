"""Read-only queries for ``batchgen plan``: what the store holds for a manifest's items,
the jobs it paid for and what each cost, and what the last runs measured.

One read-only connection for the whole plan, so it works while a run holds OUT (WAL)
and never creates or changes anything: an OUT without a checkpoint reads as empty.
Blocking: call from a worker thread or a synchronous command.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from batchgen.errors import StoreError
from batchgen.lifecycle import PAID, State
from batchgen.store.db import MAX_PARAMS, connect

_PAID = sorted(s.value for s in PAID)


@dataclass(frozen=True, slots=True)
class Stored:
    """What the store says of one item: its state and the body it was (or will be) sent."""

    state: State
    model: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PaidJob:
    """A job the API completed and billed: the body sent and the cost it reported."""

    model: str
    params: dict[str, Any]
    cost: float


class PlanStore:
    """The checkpoint of one OUT, read only; empty when OUT has none (or an empty file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        if path.exists():
            conn = connect(path, read_only=True)
            try:
                has_items = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'items'").fetchone()
            except sqlite3.Error as exc:
                conn.close()
                raise StoreError(f"cannot read the checkpoint {path}: {exc}") from exc
            if has_items is None:  # a 0-byte file: nothing recorded yet
                conn.close()
            else:
                self._conn = conn

    @property
    def empty(self) -> bool:
        return self._conn is None

    def __enter__(self) -> PlanStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _rows(self, sql: str, args: Sequence[Any]) -> list[sqlite3.Row]:
        if self._conn is None:
            return []
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the checkpoint {self.path}: {exc}") from exc

    def lookup(self, ids: Sequence[str]) -> dict[str, Stored]:
        """The stored state, model and body of those of ``ids`` the store has."""
        found: dict[str, Stored] = {}
        for start in range(0, len(ids), MAX_PARAMS):
            part = list(ids[start:start + MAX_PARAMS])
            rows = self._rows(f"SELECT id, state, model, body FROM items WHERE id IN"
                              f" ({','.join('?' * len(part))})", part)
            found.update((row["id"], Stored(State(row["state"]), row["model"],
                                            json.loads(row["body"]))) for row in rows)
        return found

    def paid_jobs(self, limit: int) -> list[PaidJob]:
        """The most recently paid jobs that reported a cost, newest first."""
        rows = self._rows(
            f"SELECT model, body, cost FROM items WHERE state IN ({','.join('?' * len(_PAID))})"
            " AND cost IS NOT NULL ORDER BY updated_at DESC LIMIT ?", [*_PAID, limit])
        return [PaidJob(row["model"], json.loads(row["body"]), float(row["cost"]))
                for row in rows]

    def summaries(self, limit: int) -> list[dict[str, Any]]:
        """The summaries of the last runs, newest first. A run still going (or killed) has
        none yet: it stands in with the rate it was given."""
        rows = self._rows("SELECT summary, options FROM runs ORDER BY id DESC LIMIT ?",
                          [limit])
        found = []
        for row in rows:
            try:
                value = json.loads(row["summary"] or "null")
                options = json.loads(row["options"] or "{}")
            except ValueError:
                continue
            if value is None and isinstance(options, dict) and options.get("rpm"):
                value = {"rate": {"rpm_limit": options["rpm"]}}
            if isinstance(value, dict):
                found.append(value)
        return found
