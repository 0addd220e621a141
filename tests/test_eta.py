"""The ETA counts what this run will really do: bounded by --max-items, --max-cost and a
deadline, paused by 429s, at this run's own pace."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from test_jobs import context

from batchgen.clock import ManualClock
from batchgen.engine.context import JobContext
from batchgen.engine.runstate import STOP_MAX_ITEMS, Counters
from batchgen.lifecycle import Lifecycle
from batchgen.manifest.item import Item
from batchgen.report.eta import Eta, estimate, format_duration
from batchgen.report.progress import Progress
from batchgen.report.snapshot import Bounds, RunSnapshot
from batchgen.report.status import describe_status, read_status
from batchgen.store.db import Database
from batchgen.store.items import ItemStore
from batchgen.store.lock import hold
from batchgen.store.runs import start_run

NOW = 1_800_000_000.0


def progress_context(clock: ManualClock, tmp_path: Path, **settings: Any) -> JobContext:
    """test_jobs' job context on ``clock``, with these RunConfig settings."""
    ctx = context(clock, None, tmp_path, expected_s=1.0)
    return dataclasses.replace(ctx, cfg=dataclasses.replace(ctx.cfg, **settings))


def snap(**fields: Any) -> RunSnapshot:
    """A run 60 s old that finished 30 items (0.5 a second) and has 10 jobs in flight."""
    base: dict[str, Any] = {"elapsed_s": 60.0, "wall": NOW, "total": 1000, "completed": 30,
                            "failed": 0, "in_flight": 10, "completed_this_run": 30}
    return RunSnapshot(**{**base, **fields})


@pytest.mark.parametrize(
    ("snapshot", "bounds", "expected"),
    [
        # Unbounded: 960 queued + 10 in flight at 0.5 items/s.
        (snap(), Bounds(), Eta(970, 1940.0)),
        # --max-items 20 on a million-line manifest, 15 posted: 5 more, then the drain.
        (snap(total=1_000_000, started_new=15), Bounds(max_items=20),
         Eta(15, 30.0, "max_items")),
        # --max-cost 10 with 6 spent and 1.5 reserved at 0.25 per item: 10 more.
        (snap(credits_spent=6.0, credits_reserved=1.5, cost_per_item=0.25),
         Bounds(max_cost=10.0), Eta(20, 40.0, "max_cost")),
        # A deadline in 60 s: 30 more can be submitted, the last one drains 20 s later.
        (snap(), Bounds(deadline_wall=NOW + 60), Eta(40, 80.0, "deadline")),
        # The deadline has passed: only the jobs in flight are left.
        (snap(), Bounds(deadline_wall=NOW - 1), Eta(10, 20.0, "deadline")),
        # Submitting already stopped (by a limit or a fatal answer): the drain only.
        (snap(stop_reason="max_items"), Bounds(max_items=20), Eta(10, 20.0, "max_items")),
        # A 429 pause of 45 s comes before the 960 that are left to submit.
        (snap(paused_s=45.0), Bounds(), Eta(970, 1985.0, None, 45.0)),
        # A pause does not delay a run that has nothing left to submit.
        (snap(paused_s=45.0, stop_reason="deadline"), Bounds(), Eta(10, 20.0, "deadline")),
        # A pause longer than the time to the deadline: nothing more is sent.
        (snap(paused_s=90.0), Bounds(deadline_wall=NOW + 60), Eta(10, 20.0, "deadline")),
        # Nothing finished yet: the work is known, the time is not.
        (snap(completed=0, completed_this_run=0), Bounds(max_items=5), Eta(15, None, "max_items")),
        # Everything done.
        (snap(total=30, in_flight=0), Bounds(), Eta(0, 0.0)),
    ],
)
def test_estimate(snapshot: RunSnapshot, bounds: Bounds, expected: Eta) -> None:
    """Items left and seconds, for each kind of bound."""
    got = estimate(snapshot, bounds)
    assert (got.left, got.bound, got.paused_s) == (expected.left, expected.bound,
                                                   expected.paused_s)
    assert got.seconds == (None if expected.seconds is None else pytest.approx(expected.seconds))


def test_pace_is_this_runs_own() -> None:
    """Items an earlier run finished do not speed up this run's ETA."""
    resumed = estimate(snap(completed=900, completed_this_run=10, total=1000), Bounds())
    assert resumed.left == 100 - 10 + 10 and resumed.seconds == pytest.approx(100 / (10 / 60))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0.2, "1 s"), (59.0, "59 s"), (61.0, "1 min"), (1740.0, "29 min"),
     (7500.0, "2 h 05 min")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    """Work that is left never reads as 0 min."""
    assert format_duration(seconds) == text


def test_max_items_run_on_the_manual_clock(tmp_path: Path) -> None:
    """--max-items 20 on a 1M-line manifest: minutes, not 25006; a 429 pause shows and
    adds its rest; the pause gone, it is gone from the ETA; the limit reached, only the
    drain is left."""
    clock = ManualClock()
    ctx = progress_context(clock, tmp_path, max_items=20, progress=False)
    progress = Progress(ctx, total=1_000_000)
    c = ctx.counters
    clock.advance(120.0)
    c.completed, c.images, c.in_flight, c.accepted, c.new_items = 8, 8, 4, 12, 12
    figures = progress.figures()
    # 8 of the 20 allowed are still to start, plus 4 in flight, at 4 a minute.
    assert (figures["eta_left"], figures["eta_bound"]) == (12, "max_items")
    assert figures["eta_s"] == pytest.approx(180.0)
    assert "ETA 3 min (12 left, bounded by max_items)" in progress.line()
    ctx.gate.limiter.on_rate_limited(45.0)
    paused = progress.figures()
    assert paused["paused_s"] == 45.0 and paused["eta_s"] == pytest.approx(225.0)
    assert "paused 45 s by 429" in progress.line()
    clock.advance(45.0)
    assert progress.figures()["paused_s"] == 0.0
    ctx.stop.enough(STOP_MAX_ITEMS)
    assert (progress.figures()["eta_left"], progress.figures()["eta_bound"]) == (4, "max_items")


def test_deadline_on_the_manual_clock(tmp_path: Path) -> None:
    """With --submit-for 10m, the ETA is the time to the deadline plus the drain."""
    clock = ManualClock()
    ctx = progress_context(clock, tmp_path, submit_until_wall=clock.wall() + 600.0)
    progress = Progress(ctx, total=100_000)
    clock.advance(60.0)
    ctx.counters.completed, ctx.counters.in_flight = 60, 16
    figures = progress.figures()
    assert figures["eta_bound"] == "deadline"
    assert figures["eta_s"] == pytest.approx(540.0 + 16.0)
    assert figures["eta_left"] == 540 + 16


async def _finish(life: Lifecycle, clock: ManualClock, items: list[Item], *,
                  seconds: float) -> None:
    """Send, pay and deliver ``items``, one every ``seconds`` of ``clock``."""
    for item in items:
        clock.advance(seconds)
        await life.fire("intend", item, intent_at=clock.wall())
        await life.fire("accepted", item, request_id=f"r-{item.id}",
                        submitted_at=clock.wall())
        await life.fire("fetched", item, cost=0.01, result={})
        await life.fire("delivered", item, files=[])


async def _live_status(tmp_path: Path, *, stored: int, earlier: int, this_run: int,
                       every_s: float, options: dict[str, object]) -> dict[str, Any]:
    """`batchgen status` of a live run: ``stored`` items in the store, ``earlier`` of them
    finished by an earlier run an hour before, ``this_run`` more since this run started
    (one every ``every_s``)."""
    clock = ManualClock(wall_start=NOW)
    out = tmp_path / "out"
    db = await Database.open(out / ".batchgen" / "state.db")
    try:
        store = ItemStore(db)
        life = Lifecycle(store.transition, Counters(), clock)
        items = [Item(f"i{n:03d}", "sd1.5-epicrealism", {"prompt": f"p{n}"}, "m", n)
                 for n in range(stored)]
        await store.add(items, clock.wall())
        if earlier:
            await _finish(life, clock, items[:earlier], seconds=1.0)
            clock.advance(3600.0)
        await start_run(db, manifest="m", manifest_hash="h", now=clock.wall(), pid=1,
                        options=options)
        await _finish(life, clock, items[earlier:earlier + this_run], seconds=every_s)
    finally:
        await db.aclose()
    with hold(out / ".batchgen", out):
        return read_status(out, now=clock.wall())


@pytest.mark.parametrize(("max_items", "left", "seconds", "bound"),
                         [(None, 45, 540.0, None), (10, 5, 60.0, "max_items")])
async def test_status_eta_is_the_live_runs_own(tmp_path: Path, max_items: int | None, left: int,
                                               seconds: float, bound: str | None) -> None:
    """`batchgen status` on a resumed live run: 50 items finished by an earlier run do not
    speed up the ETA; 5 finished in this run's first minute give 45 left at 5 a minute
    (ETA 9 min, where the store's lifetime gave 49 s); --max-items 10 leaves 5 to send."""
    report = await _live_status(tmp_path, stored=100, earlier=50, this_run=5, every_s=12.0,
                                options={"max_items": max_items})
    assert report["live"] and report["items"]["completed"] == 55
    assert report["eta_s"] == pytest.approx(seconds)
    assert report["eta_bound"] == bound
    assert f"ETA {format_duration(seconds)}" in describe_status(report)


async def test_status_of_a_live_streamed_run_counts_the_whole_manifest(tmp_path: Path) -> None:
    """A JSONL run reads its manifest into the store as it goes: status takes the
    validated size the run recorded, not the rows read so far, for what is left."""
    report = await _live_status(tmp_path, stored=20, earlier=0, this_run=10, every_s=6.0,
                                options={"manifest_items": 1000})  # 20 read so far
    assert report["eta_s"] == pytest.approx(990 * 6.0)
