"""Stores as a crashed run would have left them, built through the lifecycle's own events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batchgen.clock import ManualClock
from batchgen.engine.runstate import Counters
from batchgen.lifecycle import EVENTS, Lifecycle
from batchgen.manifest.item import Item
from batchgen.store.db import Database
from batchgen.store.items import ItemRecord, ItemStore

# Event paths to each state a crash can leave behind.
TO_SUBMITTING = ("intend",)
TO_IN_DOUBT = ("intend", "doubted")
TO_SUBMITTED = ("intend", "accepted")


async def seed(db_path: Path, items: list[Item], events: tuple[str, ...],
               **values: Any) -> None:
    """Add ``items`` and fire ``events`` at each, with the ``values`` each event takes."""
    db = await Database.open(db_path)
    try:
        store = ItemStore(db)
        life = Lifecycle(store.transition, Counters(), ManualClock(wall_start=0.0))
        await store.add(items, 0.0)
        for item in items:
            for name in events:
                fields = {k: v for k, v in values.items() if k in EVENTS[name].fields}
                await life.fire(name, item, **fields)
    finally:
        await db.aclose()


async def record(db_path: Path, item_id: str) -> ItemRecord | None:
    db = await Database.open(db_path)
    try:
        return await ItemStore(db).get(item_id)
    finally:
        await db.aclose()


async def records(db_path: Path) -> list[ItemRecord]:
    """Every stored row, by id."""
    db = await Database.open(db_path)
    try:
        store = ItemStore(db)
        ids = await db.read(lambda conn: [r[0] for r in conn.execute(
            "SELECT id FROM items ORDER BY id")])
        found = await store.lookup(ids)
        return [found[i] for i in ids]
    finally:
        await db.aclose()
