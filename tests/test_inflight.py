"""Jobs in flight sized to the rate, on the manual clock: the real submit stage, job
lifecycle and poller against an in-memory provider with a pool of workers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from provider import Provider, job_context, posts_per_s, run_items

from batchgen.api.ratelimit import RateLimiter
from batchgen.api.results import Metrics
from batchgen.clock import ManualClock
from batchgen.config import RunConfig
from batchgen.engine.inflight import SPARE, InFlight
from batchgen.engine.runstate import Counters


async def test_grows_to_the_rate(tmp_path: Path) -> None:
    """With only the rate given, jobs in flight grow from a guess to what 600 RPM and
    3 s +-50% jobs need, and the submits keep up with the rate."""
    clock = ManualClock()
    api = Provider(clock, job_s=3.0, spread=0.5)
    ctx = job_context(clock, api, tmp_path)
    samples = await run_items(clock, ctx, 400)
    assert posts_per_s(api, 5.0, 35.0) >= 0.97 * 10.0
    first = samples[0][2]
    assert first == math.ceil(10.0 * ctx.cfg.poll_first_s) + SPARE  # before any job ended
    # Little's law: 10 submits/s x (3 s +- 1.5 s and the detection delay).
    assert 10.0 * 3.0 < ctx.inflight.peak_target <= 10.0 * (4.5 + 0.5) + SPARE
    assert ctx.inflight.peak_held <= ctx.inflight.peak_target
    assert "submits/s" in ctx.inflight.why()


async def test_small_plan_keeps_few_in_flight(tmp_path: Path) -> None:
    """At 50 RPM with 3 s jobs, about three jobs are in flight, plus one waiting for its
    permit: never the old fixed 16."""
    clock = ManualClock()
    api = Provider(clock, job_s=3.0)
    ctx = job_context(clock, api, tmp_path, rpm=50)
    await run_items(clock, ctx, 30)
    assert ctx.inflight.peak_held <= math.ceil(50 / 60 * (3.0 + 0.5)) + SPARE
    assert posts_per_s(api, 0.0, api.posted_at[-1]) >= 0.97 * 50 / 60


async def test_honours_an_explicit_cap(tmp_path: Path) -> None:
    """--concurrency 8 is a hard cap even where the rate would need more."""
    clock = ManualClock()
    api = Provider(clock, job_s=3.0, spread=0.5)
    ctx = job_context(clock, api, tmp_path, concurrency=8)
    samples = await run_items(clock, ctx, 100)
    assert ctx.inflight.peak_held == 8
    assert max(target for _, _, target in samples) == 8
    assert "capped by --concurrency 8" in ctx.inflight.why()
    assert posts_per_s(api, 5.0, 25.0) < 8 / 2.0  # held to 8 jobs of about 3 s


async def test_shrinks_when_the_provider_queue_fills(tmp_path: Path) -> None:
    """With GPUs for fewer jobs than the rate allows, queue time grows while inference
    stays flat: the target is cut, and fewer jobs wait in the provider's queue."""
    clock = ManualClock()
    api = Provider(clock, job_s=3.0, workers=12)  # 4 jobs/s, the rate allows 10
    ctx = job_context(clock, api, tmp_path)
    before: list[int] = []
    after: list[int] = []

    def watch() -> None:
        (after if ctx.inflight.pushback.counts["queue"] else before).append(ctx.inflight.target())

    await run_items(clock, ctx, 300, watch=watch)
    assert before and after
    assert min(after[:20]) < 0.5 * max(before)
    assert "queue time growing" in ctx.inflight.why() or ctx.inflight.summary()["pushback"] == 1


async def test_shrinks_on_server_errors(tmp_path: Path) -> None:
    """A burst of 5xx answers cuts the target; it grows back once they stop."""
    clock = ManualClock()
    api = Provider(clock, job_s=3.0, spread=0.2)
    ctx = job_context(clock, api, tmp_path)
    api.error_rate, api.errors_until = 0.5, 25.0
    low: list[int] = []

    def watch() -> None:
        if 15.0 < clock.now() < 25.0:
            low.append(ctx.inflight.target())
        if clock.now() == 15.0:
            api.error_rate = 0.5

    samples = await run_items(clock, ctx, 500, watch=watch)
    assert ctx.inflight.pushback.counts["5xx"] >= 1
    assert low and min(low) < 0.8 * ctx.inflight.peak_target
    assert samples[-5][2] > min(low)  # recovering once the errors stopped


@pytest.mark.parametrize("scope", ["submits", "all"])
async def test_429_cuts_the_rate_and_the_target(tmp_path: Path, scope: str) -> None:
    """A 429 lowers the limiter's rate, and the target follows it down."""
    clock = ManualClock()
    cfg = RunConfig(manifest=tmp_path / "m", out=tmp_path / "o", rate_scope=scope)  # type: ignore[arg-type]
    limiter = RateLimiter(rpm=None, clock=clock, start_rpm=600)
    inflight = InFlight.for_run(cfg, clock=clock, limiter=limiter, counters=Counters())
    for _ in range(300):  # 30 s of grants at 600 RPM, each job taking 3 s
        clock.advance(0.1)
        await limiter.acquire()
        inflight.finished(clock.wall() - 3.0, Metrics(queue_time=0.0, inference_time=3.0))
    before = inflight.target()
    limiter.on_rate_limited(5.0)  # the server allows fewer than we sent
    inflight.answered("429")
    assert inflight.target() < 0.8 * before
    assert inflight.pushback.counts["429"] == 1
