"""Poll timing by rate scope, on the manual clock: prompt when polls are free, frugal when
they count against the limit (README "Polling")."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from provider import Provider, job_context, run_items

from batchgen.clock import ManualClock

JOB_S = 2.0


async def settled_jobs(tmp_path: Path, scope: str, rpm: float) -> tuple[float, float]:
    """Median detection delay and polls per job of 400 jobs of 2 s +- 50%, leaving out
    the first 100 (before the job times are learned)."""
    clock = ManualClock()
    api = Provider(clock, job_s=JOB_S, spread=0.5)
    ctx = job_context(clock, api, tmp_path, rpm=rpm, rate_scope=scope)
    await run_items(clock, ctx, 400)
    late = [f"r{n}" for n in range(101, 401)]
    detection = statistics.median(api.detected[r] for r in late)
    return detection, sum(api.polls[r] for r in late) / len(late)


async def test_free_polls_detect_within_a_tenth_of_the_job_time(tmp_path: Path) -> None:
    """--rate-scope submits: half the jobs are found done within 10% of the job time,
    for at most three polls a job."""
    detection, polls = await settled_jobs(tmp_path, "submits", rpm=6000)
    assert detection <= 0.1 * JOB_S
    assert polls <= 3.0


async def test_counted_polls_stay_few(tmp_path: Path) -> None:
    """--rate-scope all, every permit in use: at most one and a half polls a job, and a
    job is still found within a job time (polls go before submits at the limiter)."""
    detection, polls = await settled_jobs(tmp_path, "all", rpm=600)
    assert polls <= 1.5
    assert detection <= JOB_S


@pytest.mark.parametrize("scope", ["submits", "all"])
async def test_fewer_polls_when_job_times_spread_less(tmp_path: Path, scope: str) -> None:
    """Jobs of nearly the same length are found with few polls whatever the scope."""
    clock = ManualClock()
    api = Provider(clock, job_s=JOB_S, spread=0.05)
    ctx = job_context(clock, api, tmp_path, rpm=6000, rate_scope=scope)
    await run_items(clock, ctx, 200)
    late = [f"r{n}" for n in range(101, 201)]
    assert sum(api.polls[r] for r in late) / len(late) <= 2.0
