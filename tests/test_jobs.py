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
from batchgen.engine.submit import submit
from batchgen.engine.twins import BodyLocks
from batchgen.errors import BadResponseError, RateLimitedError, RejectedError
from batchgen.lifecycle import Lifecycle
from batchgen.manifest.item import Item
from batchgen.store.db import Database
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


SMALL = Item("s", "sd1.5-epicrealism", {"prompt": "s"}, "m.yaml", 1)
BIG = Item("b", "sd1.5-epicrealism", {"prompt": "b", "num_inference_steps": 40,
                                      "img_width": 1024, "img_height": 1024, "samples": 2},
           "m.yaml", 2)


async def test_budget_holds_one_unpriced_job_at_a_time() -> None:
    """Until a price is known, a second reservation waits for the first job to end."""
    budget = Budget(1.0)
    first = await budget.reserve(SMALL)
    assert first is not None and first.unpriced
    second_done = anyio.Event()

    async def second() -> None:
        await budget.reserve(SMALL)
        second_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await settle()
        assert not second_done.is_set()
        budget.charge(SMALL, 0.3)
        budget.release(first)
    assert second_done.is_set()
    assert budget.reserved == pytest.approx(0.3)


async def test_budget_refuses_past_the_cap() -> None:
    """A reservation that spent credits alone would take past the cap is refused."""
    budget = Budget(1.0, paid=[(SMALL.model, SMALL.params, 0.2)])
    budget.charge(SMALL, 0.4)
    assert await budget.reserve(SMALL) is not None
    budget.charge(SMALL, 0.5)
    assert await budget.reserve(SMALL) is None  # spent 0.9, and a job costs about 0.3


async def test_budget_prices_a_job_by_its_own_parameters() -> None:
    """Learned from small jobs, a big job (twice the steps, four times the pixels, two
    samples) is not priced as a small one: with nothing to tell per-image from per-GPU
    pricing apart, the dearer reading holds."""
    budget = Budget(10.0, paid=[(SMALL.model, SMALL.params, 0.01)] * 3)
    assert budget.price(SMALL) == pytest.approx(0.01)
    assert budget.price(BIG) == pytest.approx(0.01 * 2 * 4 * 2)


async def test_budget_learns_which_pricing_fits() -> None:
    """Once jobs of different sizes were paid, the model that explains them is used."""
    per_image = Budget(10.0, paid=[(SMALL.model, SMALL.params, 0.01),
                                   (BIG.model, BIG.params, 0.02)])
    assert per_image.price(BIG) == pytest.approx(0.02)


async def test_budget_frees_a_failed_jobs_reservation() -> None:
    """A submit that in-flight reservations keep out waits; a job that ends FAILED (not
    billed) frees its reservation, and the waiting submit goes ahead."""
    budget = Budget(0.4, paid=[(SMALL.model, SMALL.params, 0.2)])
    first = await budget.reserve(SMALL)
    second = await budget.reserve(SMALL)
    assert first is not None and second is not None
    third: list[object] = []

    async def wait_for_room() -> None:
        third.append(await budget.reserve(SMALL))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_room)
        await settle()
        assert third == []  # 0.4 of 0.4 reserved
        budget.release(first)  # its job FAILED: nothing spent
    assert third and third[0] is not None
    assert budget.spent == 0.0 and budget.reserved == pytest.approx(0.4)


async def test_budget_known_price_needs_no_wait() -> None:
    """With a price known from earlier runs, many jobs may be in flight at once."""
    budget = Budget(1.0, paid=[(SMALL.model, SMALL.params, 0.1)])
    reservations = [await budget.reserve(SMALL) for _ in range(5)]
    assert all(r is not None and not r.unpriced for r in reservations)


async def test_budget_stops_waiting_when_no_price_is_reported() -> None:
    """A model whose results carry no cost does not keep the run to one job at a time."""
    budget = Budget(1.0)
    first = await budget.reserve(SMALL)
    assert first is not None and first.unpriced
    budget.unpriced_job_done(SMALL)
    with anyio.fail_after(1):
        assert await budget.reserve(SMALL) is not None


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
