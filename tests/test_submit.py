"""Submitting one item on the manual clock: 429 pauses, 400 refusals, unreadable answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from test_jobs import context, drive

from batchgen.api.results import Submitted
from batchgen.clock import ManualClock
from batchgen.engine.context import JobContext
from batchgen.engine.submit import submit
from batchgen.errors import BadResponseError, RateLimitedError, RejectedError
from batchgen.manifest.item import Item
from batchgen.store.db import Database
from batchgen.store.items import ItemStore

ITEM = Item("a", "sd1.5-epicrealism", {"prompt": "a"}, "m.yaml", 1)


async def submit_on(clock: ManualClock, api: Any, tmp_path: Path,
                    step_s: float) -> tuple[Any, Any, JobContext]:
    """Submit ITEM through a real store on the manual clock: its outcome, stored row and
    the context it ran in."""
    db = await Database.open(tmp_path / "state.db")
    items = ItemStore(db)
    rt = context(clock, api, tmp_path, expected_s=1.0, items=items)
    finished = anyio.Event()
    outcome: list[Any] = []

    async def go() -> None:
        await items.add([ITEM], 0.0)
        outcome.append(await submit(rt, ITEM))
        finished.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(drive, clock, step_s, finished)
            tg.start_soon(go)
        record = await items.get(ITEM.id)
    finally:
        await db.aclose()
    return outcome[0], record, rt


class RateLimitedOnce:
    """A submit endpoint that answers 429 (reset in 5 s) once, then accepts."""

    base_url = "http://api"
    server_offset_s = None

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.posted_at: list[float] = []

    async def submit(self, model: str, params: dict[str, Any]) -> Submitted:
        self.posted_at.append(self.clock.now())
        if len(self.posted_at) == 1:
            raise RateLimitedError("slow down", retry_after_s=5.0)
        return Submitted(request_id="r1", status_url="http://api/s",
                         response_url="http://api/r", raw={})


async def test_429_pauses_and_retries_after_the_reset(tmp_path: Path) -> None:
    """A 429 on submit pauses sending until the server's reset, then the submit goes through."""
    clock = ManualClock()
    api = RateLimitedOnce(clock)
    outcome, record, rt = await submit_on(clock, api, tmp_path, 0.5)
    assert outcome is not None
    assert rt.counters.rate_limited == 1
    assert len(api.posted_at) == 2
    assert api.posted_at[1] - api.posted_at[0] >= 5.0
    assert rt.counters.submit_attempts == 2 and rt.counters.accepted == 1
    assert record.state == "submitted" and record.submits == 2


class Refusing:
    """A submit endpoint that refuses the body (HTTP 400)."""

    base_url = "http://api"
    server_offset_s = None

    def __init__(self) -> None:
        self.posts = 0

    async def submit(self, model: str, params: dict[str, Any]) -> Submitted:
        self.posts += 1
        raise RejectedError("samples: must be at most 4", status=400)


async def test_400_fails_the_item_with_the_message(tmp_path: Path) -> None:
    """A 400 is not retried: the item fails as 'rejected' with the server's message."""
    clock = ManualClock()
    api = Refusing()
    outcome, record, _ = await submit_on(clock, api, tmp_path, 1.0)
    assert outcome is None
    assert api.posts == 1
    assert record is not None and record.state == "failed"
    assert record.error_class == "rejected"
    assert "must be at most 4" in (record.last_error or "")
    assert record.submits == 1


class UnreadableThenFine:
    """A submit whose first 2xx answer cannot be read; the history knows of no job."""

    base_url = "http://api"
    server_offset_s = None

    def __init__(self) -> None:
        self.posts = 0
        self.history_pages = 0

    async def submit(self, model: str, params: dict[str, Any]) -> Submitted:
        self.posts += 1
        if self.posts == 1:
            raise BadResponseError("answer is not JSON", status=200)
        return Submitted(request_id="r2", status_url="http://api/s", response_url="http://api/r",
                         raw={})

    async def history_page(self, **query: Any) -> list[dict[str, Any]]:
        self.history_pages += 1
        return []


async def test_unreadable_submit_answer_is_in_doubt(tmp_path: Path) -> None:
    """A 2xx submit answer without a request id is in doubt: looked up, then resent, counted."""
    clock = ManualClock()
    api = UnreadableThenFine()
    outcome, record, rt = await submit_on(clock, api, tmp_path, 1.0)
    assert outcome is not None and outcome[0].request_id == "r2"
    assert api.history_pages >= 1
    assert rt.counters.in_doubt == 1
    assert rt.counters.possible_duplicates == 1
    assert record is not None and record.in_doubt == 1 and record.submits == 2
