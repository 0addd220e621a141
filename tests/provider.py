"""An in-memory provider on the manual clock, and the real submit stage, job lifecycle and
poller run against it: for tests of in-flight sizing and poll timing."""

from __future__ import annotations

import heapq
import random
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
from test_jobs import drive

from batchgen.api.ratelimit import RateLimiter
from batchgen.api.results import JobResult, JobStatus, Metrics, Output, Submitted
from batchgen.clock import ManualClock
from batchgen.config import RunConfig
from batchgen.engine.budget import Budget
from batchgen.engine.calls import Calls
from batchgen.engine.context import JobContext
from batchgen.engine.follow import Harvest
from batchgen.engine.gate import Gate
from batchgen.engine.inflight import InFlight
from batchgen.engine.pipeline import submit_stage
from batchgen.engine.read import Work
from batchgen.engine.runstate import Counters, DurationEstimate, StopSwitch
from batchgen.engine.twins import BodyLocks
from batchgen.errors import ServerError
from batchgen.lifecycle import Lifecycle
from batchgen.manifest.item import Item


class Provider:
    """Jobs of ``job_s`` +- ``spread`` on ``workers`` GPUs (queued when all are busy);
    status polls answer 5xx with ``error_rate`` while ``errors_until`` is in the future."""

    base_url = "http://api"
    server_offset_s = None

    def __init__(self, clock: ManualClock, *, job_s: float, spread: float = 0.0,
                 workers: int = 10_000) -> None:
        self.clock = clock
        self.job_s, self.spread = job_s, spread
        self.free_at = [0.0] * workers
        self.jobs: dict[str, tuple[float, float, float]] = {}  # created, start, end
        self.posted_at: list[float] = []
        self.rng = random.Random(7)
        self.error_rate, self.errors_until = 0.0, -1.0
        self.polls: Counter[str] = Counter()
        self.detected: dict[str, float] = {}  # job end to the first COMPLETED answer

    async def submit(self, model: str, params: dict[str, Any]) -> Submitted:
        now = self.clock.now()
        self.posted_at.append(now)
        duration = self.job_s * self.rng.uniform(1 - self.spread, 1 + self.spread)
        start = max(now, heapq.heappop(self.free_at))
        heapq.heappush(self.free_at, start + duration)
        request_id = f"r{len(self.posted_at)}"
        self.jobs[request_id] = (now, start, start + duration)
        return Submitted(request_id, f"http://api/{request_id}/status",
                         f"http://api/{request_id}", raw={})

    async def status(self, sub: Submitted) -> JobStatus:
        now = self.clock.now()
        if now < self.errors_until and self.rng.random() < self.error_rate:
            raise ServerError("overloaded", status=503)
        self.polls[sub.request_id] += 1
        _, start, end = self.jobs[sub.request_id]
        state = "COMPLETED" if now >= end else "PROCESSING" if now >= start else "QUEUED"
        if state == "COMPLETED":
            self.detected.setdefault(sub.request_id, now - end)
        return JobStatus(status=state, metrics={}, raw={})

    async def result(self, url: str) -> JobResult:
        created, start, end = self.jobs[url.rsplit("/", 1)[1]]
        metrics = Metrics(queue_time=start - created, inference_time=end - start,
                          total_time=end - created)
        return JobResult(outputs=(Output(url=f"{url}.png"),), seed=None, prompt=None,
                         metrics=metrics, raw={})


async def accept(*_: Any) -> str:
    return "ok"  # the lifecycle's store: every transition applies


def job_context(clock: ManualClock, api: Provider, tmp_path: Path, **options: Any) -> JobContext:
    settings = {"rpm": 600, "poll_min_s": 0.05, "retry_base_delay_s": 0.1, **options}
    cfg = RunConfig(manifest=tmp_path / "m.jsonl", out=tmp_path / "out", **settings)
    counters = Counters()
    limiter = RateLimiter(rpm=cfg.rpm, clock=clock)
    rng = random.Random(1)
    inflight = InFlight.for_run(cfg, clock=clock, limiter=limiter, counters=counters)
    return JobContext(
        cfg=cfg, clock=clock, items=None, estimate=DurationEstimate(cfg.poll_first_s),  # type: ignore[arg-type]
        twins=BodyLocks(), rng=rng, inflight=inflight,
        calls=Calls(api, None, limiter=limiter, counters=counters,  # type: ignore[arg-type]
                    clock=clock, rng=rng, cfg=cfg, inflight=inflight),
        life=Lifecycle(accept, counters, clock),
        gate=Gate(stop=StopSwitch(), clock=clock, limiter=limiter, budget=Budget(None),
                  deadline_wall=None),
    )


async def run_items(clock: ManualClock, ctx: JobContext, count: int, *,
                    watch: Any = None) -> list[tuple[float, int, int]]:
    """Run ``count`` new items through the submit stage to their harvests; returns
    (time, slots held, target) sampled every simulated second."""
    work_send, work_recv = anyio.create_memory_object_stream[Work](16)
    harvest_send, harvest_recv = anyio.create_memory_object_stream[Harvest](16)
    finished = anyio.Event()
    samples: list[tuple[float, int, int]] = []

    async def feed() -> None:
        async with work_send:
            for n in range(count):
                item = Item(f"i{n}", "sd1.5-epicrealism", {"prompt": f"p{n}"}, "m.jsonl", n)
                await work_send.send(Work(item, None))

    async def harvest() -> None:
        async with harvest_recv:
            async for _ in harvest_recv:
                pass
        finished.set()
        tg.cancel_scope.cancel()  # the sampler sleeps on the clock no one moves now

    async def sample() -> None:
        while not finished.is_set():
            samples.append((clock.now(), ctx.inflight.held, ctx.inflight.target()))
            if watch is not None:
                watch()
            await clock.sleep(1.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(drive, clock, 0.02, finished)
        tg.start_soon(feed)
        tg.start_soon(harvest)
        tg.start_soon(sample)
        tg.start_soon(submit_stage, ctx, work_recv, harvest_send)
    return samples


def posts_per_s(api: Provider, start: float, end: float) -> float:
    return sum(1 for t in api.posted_at if start <= t < end) / (end - start)
