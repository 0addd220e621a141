"""Job logic with an in-memory fake API and a manual clock: poll schedule, outputs, budget."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import anyio
import pytest

from batchgen.api.ratelimit import RateLimiter
from batchgen.api.results import JobStatus, Metrics, Output, Submitted, outputs_of
from batchgen.clock import ManualClock
from batchgen.config import RunConfig
from batchgen.engine.budget import Budget
from batchgen.engine.calls import Calls
from batchgen.engine.context import JobContext
from batchgen.engine.follow import BACKOFF, PROMPT, poll_until_done
from batchgen.engine.gate import Gate
from batchgen.engine.inflight import InFlight
from batchgen.engine.runstate import Counters, DurationEstimate, StopSwitch
from batchgen.engine.twins import BodyLocks
from batchgen.lifecycle import Lifecycle
from batchgen.store.items import ItemStore


class FakeApi:
    """Jobs that complete at a set time on the manual clock; records when it was polled."""

    base_url = "http://api"
    server_offset_s = None

    def __init__(self, clock: ManualClock, done_at: float) -> None:
        self.clock = clock
        self.done_at = done_at
        self.polled_at: list[float] = []

    async def status(self, sub: Submitted) -> JobStatus:
        self.polled_at.append(self.clock.now())
        done = self.clock.now() >= self.done_at
        return JobStatus(status="COMPLETED" if done else "PROCESSING", metrics={}, raw={})


def context(clock: ManualClock, api: Any, tmp_path: Path, expected_s: float | None,
            poll_first_s: float = 2.0, *, rpm: float | None = None,
            rate_scope: str = "submits", items: ItemStore | None = None) -> JobContext:
    """A job context whose jobs are known to take ``expected_s`` (None: nothing learned)."""
    cfg = RunConfig(manifest=tmp_path / "m.yaml", out=tmp_path / "out",
                    poll_first_s=poll_first_s, poll_min_s=0.25, poll_cap_s=30.0,
                    rate_scope=rate_scope, history_wait_s=4.0)  # type: ignore[arg-type]
    estimate = DurationEstimate(poll_first_s)
    if expected_s is not None:
        estimate.observe(Metrics(total_time=expected_s, inference_time=expected_s), 0.0)
    counters = Counters()
    limiter = RateLimiter(rpm=rpm, clock=clock)
    rng = random.Random(1)
    store: Any = items
    inflight = InFlight.for_run(cfg, clock=clock, limiter=limiter, counters=counters)
    return JobContext(
        cfg=cfg, clock=clock, items=store, estimate=estimate, twins=BodyLocks(), rng=rng,
        inflight=inflight,
        calls=Calls(api, None, limiter=limiter, counters=counters,  # type: ignore[arg-type]
                    clock=clock, rng=rng, cfg=cfg, inflight=inflight),
        life=Lifecycle(store.transition if store else None, counters, clock),  # type: ignore[arg-type]
        gate=Gate(stop=StopSwitch(), clock=clock, limiter=limiter, budget=Budget(None),
                  deadline_wall=None),
    )


async def settle(turns: int = 20) -> None:
    """Let the other tasks run until they wait again (no real time passes)."""
    for _ in range(turns):
        await anyio.lowlevel.checkpoint()


async def drive(clock: ManualClock, step_s: float, until: anyio.Event) -> None:
    """Advance the manual clock in small steps, letting woken tasks run in between."""
    while not until.is_set():
        await settle()
        clock.advance(step_s)


SUB = Submitted(request_id="r1", status_url="http://api/s", response_url="http://api/r")


async def poll_on(clock: ManualClock, rt: JobContext, *also: Any) -> None:
    """Run one job's polling to COMPLETED on the manual clock (with ``also`` beside it)."""
    finished = anyio.Event()

    async def poll() -> None:
        await poll_until_done(rt, SUB, submitted_at=clock.wall())
        finished.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(drive, clock, 0.01, finished)
        for task in also:
            tg.start_soon(task)
        tg.start_soon(poll)


@pytest.mark.parametrize("done_at", [9.0, 10.0, 10.5, 12.0])
async def test_first_poll_lands_at_expected_time(tmp_path: Path, done_at: float) -> None:
    """The first poll comes near the expected duration, never in the first 90% of it."""
    clock = ManualClock()
    api = FakeApi(clock, done_at)
    rt = context(clock, api, tmp_path, expected_s=10.0)
    await poll_on(clock, rt)
    assert 9.0 <= api.polled_at[0] <= 11.0
    assert len(api.polled_at) <= 4
    assert api.polled_at[-1] - done_at <= PROMPT.step_share * 10.0 * BACKOFF * 1.1


async def test_polls_of_many_jobs_are_spread(tmp_path: Path) -> None:
    """Jobs submitted together do not poll at the same instant (jitter)."""
    clock = ManualClock()
    api = FakeApi(clock, done_at=100.0)
    rt = context(clock, api, tmp_path, expected_s=5.0)
    finished = anyio.Event()

    async def polls() -> None:
        async with anyio.create_task_group() as jobs:
            for _ in range(20):
                jobs.start_soon(poll_until_done, rt, SUB, clock.wall())
        finished.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(drive, clock, 0.01, finished)
        tg.start_soon(polls)
    first_round = sorted(api.polled_at)[:20]
    assert len({round(t, 2) for t in first_round}) >= 15


async def test_unknown_timing_backs_off_then_replans(tmp_path: Path) -> None:
    """Before any job time is known polls back off; once one is learned they re-plan to it."""
    clock = ManualClock()
    api = FakeApi(clock, done_at=30.0)
    rt = context(clock, api, tmp_path, expected_s=None, poll_first_s=1.0)
    async def learn() -> None:
        while clock.now() < 3.0:
            await settle()
        rt.estimate.observe(Metrics(total_time=30.0), 0.0)

    await poll_on(clock, rt, learn)
    early = [t for t in api.polled_at if t < 6.0]
    gaps = [b - a for a, b in itertools.pairwise(early)]
    assert len(early) >= 3 and all(b > a for a, b in itertools.pairwise(gaps))  # backing off
    assert not [t for t in api.polled_at if 6.0 <= t < 26.0]  # then waits for the job time
    assert len(api.polled_at) <= 10


class QueuedThenDone(FakeApi):
    """QUEUED until ``start``, then PROCESSING until ``done_at``."""

    def __init__(self, clock: ManualClock, start: float, done_at: float) -> None:
        super().__init__(clock, done_at)
        self.start = start

    async def status(self, sub: Submitted) -> JobStatus:
        answer = await super().status(sub)
        if answer.status != "COMPLETED" and self.clock.now() < self.start:
            return JobStatus(status="QUEUED", metrics={}, raw={})
        return answer


async def test_queued_job_waits_a_whole_inference(tmp_path: Path) -> None:
    """A poll that finds the job QUEUED waits at least one inference time before the next."""
    clock = ManualClock()
    api = QueuedThenDone(clock, start=11.0, done_at=21.0)
    rt = context(clock, api, tmp_path, expected_s=10.0)
    await poll_on(clock, rt)
    assert api.polled_at[1] - api.polled_at[0] >= 9.0
    assert len(api.polled_at) <= 4


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"images": [{"url": "https://cdn/a.png", "content_type": "image/png"}], "output": "x"},
         (Output(url="https://cdn/a.png", content_type="image/png"),)),
        ({"output": "https://cdn/b.jpg"}, (Output(url="https://cdn/b.jpg"),)),
        ({"output": ["https://cdn/1.png", "https://cdn/2.png"]},
         (Output(url="https://cdn/1.png"), Output(url="https://cdn/2.png"))),
        ({"output": "iVBORw0KGgo="}, (Output(data="iVBORw0KGgo="),)),
        ({"images": [{"base64": "AAAA"}], "extra": 1}, (Output(data="AAAA"),)),
        ({"images": "odd", "output": None}, ()),
    ],
    ids=["images-list", "output-url", "output-list", "output-base64", "images-data", "none"],
)
def test_outputs_of(result: dict[str, Any], expected: tuple[Output, ...]) -> None:
    """Image outputs are read from images[] first, then from output, whatever the shape."""
    assert outputs_of(result) == expected


def test_estimate_prefers_server_times() -> None:
    """The duration estimate learns total_time (or queue + inference), not our measure."""
    estimate = DurationEstimate(5.0)
    assert estimate.expected_s() == 5.0
    estimate.observe(Metrics(total_time=12.0), measured_s=30.0)
    estimate.observe(Metrics(queue_time=1.0, inference_time=10.0), measured_s=30.0)
    estimate.observe(Metrics(), measured_s=14.0)
    assert estimate.expected_s() == 12.0
    assert estimate.expected_s(0.9) == 14.0
    assert estimate.inference_s() == 10.0


async def test_rate_scope_all_paces_polls(tmp_path: Path) -> None:
    """With --rate-scope all, status polls take rate permits: at 6 RPM, 10 s apart."""
    clock = ManualClock()
    api = FakeApi(clock, done_at=40.0)
    rt = context(clock, api, tmp_path, expected_s=1.0, rpm=6, rate_scope="all")
    await poll_on(clock, rt)
    gaps = [b - a for a, b in itertools.pairwise(api.polled_at)]
    assert gaps and min(gaps) >= 10.0 - 1e-6


def test_progress_figures(tmp_path: Path) -> None:
    """Progress counts done, failed, in flight and queued items, and an ETA from the pace."""
    from batchgen.report.progress import Progress

    clock = ManualClock()
    rt = context(clock, None, tmp_path, expected_s=1.0)
    progress = Progress(rt, total=100)
    c = rt.counters
    c.completed, c.skipped_done, c.failed, c.in_flight, c.images = 30, 10, 2, 8, 30
    clock.advance(60.0)
    figures = progress.figures()
    assert (figures["done"], figures["failed"], figures["in_flight"], figures["queued"]) == (
        40, 2, 8, 50)
    # 32 items finished by this run in 60 s; 50 queued and 8 in flight are left.
    assert figures["eta_s"] == pytest.approx(58 / 32 * 60, abs=0.1)
    assert "in flight 8 (target " in progress.line() and "queued 50" in progress.line()
