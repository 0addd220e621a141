"""RateLimiter on a manual clock: window bound, sustained rate, 429 pause, recovery."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import deque

import anyio
import pytest

from batchgen.api.ratelimit import BETA, MAX_CUT, SAFETY, RateLimiter
from batchgen.clock import ManualClock

WINDOW = 60.0


class SteppingClock(ManualClock):
    """A ManualClock that knows its next deadline, so a test can jump straight to it."""

    def __init__(self) -> None:
        super().__init__()
        self._deadlines: list[float] = []

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            heapq.heappush(self._deadlines, self.now() + seconds)
        await super().sleep(seconds)

    def next_deadline(self) -> float | None:
        while self._deadlines and self._deadlines[0] <= self.now():
            heapq.heappop(self._deadlines)
        return self._deadlines[0] if self._deadlines else None


async def settle() -> None:
    """Yield until every other task is blocked.

    Like ``anyio.wait_all_tasks_blocked``, whose asyncio version sleeps 0.1 s of real time
    per busy task, far too slow for thousands of simulated grants.
    """
    this = asyncio.current_task()
    while True:
        await asyncio.sleep(0)
        if all(
            task is this or (task._fut_waiter is not None and not task._fut_waiter.done())  # type: ignore[attr-defined]
            for task in asyncio.all_tasks()
        ):
            return


async def run_until(clock: SteppingClock, end: float) -> None:
    """Advance the clock deadline by deadline until ``end``, letting tasks run between."""
    while True:
        await settle()
        nxt = clock.next_deadline()
        if nxt is None or nxt > end:
            clock.advance(max(0.0, end - clock.now()))
            await settle()
            return
        clock.advance(nxt - clock.now())


def max_in_window(grants: list[float], window: float = WINDOW) -> int:
    """The most grants any closed window of ``window`` seconds holds."""
    best, start = 0, 0
    for end in range(len(grants)):
        while grants[end] - grants[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def run_workers(
    limiter: RateLimiter, clock: SteppingClock, *, workers: int, duration: float,
    rng: random.Random | None = None, succeed: bool = True,
) -> list[float]:
    """``workers`` tasks acquire in a loop (optionally idling at random); returns grant times."""
    grants: list[float] = []

    async def worker() -> None:
        while True:
            if rng is not None:
                await clock.sleep(rng.choice([0.0, 0.0, rng.expovariate(0.5), 20.0]))
            await limiter.acquire()
            grants.append(clock.now())
            if succeed:
                limiter.on_success()

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
        await run_until(clock, duration)
        tg.cancel_scope.cancel()
    return sorted(grants)


@pytest.mark.parametrize(("rpm", "seed"), [(1, 1), (5, 2), (50, 3), (123, 4), (600, 5)])
async def test_no_window_exceeds_rpm_under_random_patterns(rpm: int, seed: int) -> None:
    """For several R and random acquire patterns no 60 s window holds more than R grants."""
    clock = SteppingClock()
    limiter = RateLimiter(rpm=rpm, clock=clock)
    rng = random.Random(seed)
    grants = await run_workers(limiter, clock, workers=rng.randint(1, 12), duration=300.0,
                               rng=rng)
    assert grants
    assert max_in_window(grants) <= rpm


@pytest.mark.parametrize("rpm", [5, 50, 600])
async def test_sustains_97_percent_of_rpm(rpm: int) -> None:
    """With callers always waiting, 10 simulated minutes carry at least 97% of 10 R."""
    clock = SteppingClock()
    limiter = RateLimiter(rpm=rpm, clock=clock)
    grants = await run_workers(limiter, clock, workers=8, duration=600.0)
    assert len(grants) >= 0.97 * rpm * 10
    assert max_in_window(grants) <= rpm


async def test_pacing_spreads_grants_evenly() -> None:
    """Consecutive grants are at least 60/R apart: no bursts even after idle time."""
    clock = SteppingClock()
    limiter = RateLimiter(rpm=30, clock=clock)
    grants = await run_workers(limiter, clock, workers=4, duration=120.0)
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert min(gaps) >= 2.0 - 1e-6


async def test_429_pause_blocks_every_acquirer_until_reset() -> None:
    """After a 429 with a 30 s reset no acquirer gets a permit before the reset."""
    clock = SteppingClock()
    limiter = RateLimiter(rpm=600, clock=clock)
    granted: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        granted.append(clock.now())

    await limiter.acquire()
    limiter.on_rate_limited(30.0)
    assert limiter.paused_until == pytest.approx(30.0)
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
        await run_until(clock, 29.99)
        assert granted == []
        await run_until(clock, 200.0)
    assert len(granted) == 5 and min(granted) >= 30.0
    assert limiter.paused_until is None


async def test_429_cuts_rate_and_sets_ceiling_below_refused_count() -> None:
    """A 429 sets the ceiling under the count just refused and cuts the rate below it."""
    clock = SteppingClock()
    limiter = RateLimiter(rpm=None, clock=clock, start_rpm=200)
    grants = await run_workers(limiter, clock, workers=2, duration=90.0, succeed=False)
    limiter.on_rate_limited(5.0)
    refused = sum(1 for t in grants if t > clock.now() - WINDOW)
    assert limiter.ceiling_rpm == pytest.approx(SAFETY * (refused - 1))
    assert limiter.current_rpm == pytest.approx(BETA * SAFETY * (refused - 1))


async def test_one_429_cuts_at_most_by_half() -> None:
    """A 429 with few of our own requests in the window cuts the ceiling only by half."""
    clock = SteppingClock()
    limiter = RateLimiter(rpm=600, clock=clock)
    await limiter.acquire()
    limiter.on_rate_limited(None)
    assert limiter.ceiling_rpm == pytest.approx(MAX_CUT * 600)


async def test_repeated_429s_of_one_event_cut_once() -> None:
    """429s arriving during the pause extend it but do not cut the rate again."""
    clock = SteppingClock()
    limiter = RateLimiter(rpm=100, clock=clock)
    await run_workers(limiter, clock, workers=2, duration=60.0)
    limiter.on_rate_limited(10.0)
    cut = limiter.current_rpm
    clock.advance(1.0)
    limiter.on_rate_limited(20.0)
    assert limiter.current_rpm == cut
    assert limiter.paused_until == pytest.approx(clock.now() + 20.0)


async def test_rate_recovers_after_a_cut() -> None:
    """After a 429, steady successes bring the rate back up to the ceiling."""
    clock = SteppingClock()
    limiter = RateLimiter(rpm=60, clock=clock)
    await run_workers(limiter, clock, workers=4, duration=60.0)
    limiter.on_rate_limited(1.0)
    cut = limiter.current_rpm
    ceiling = limiter.ceiling_rpm
    assert ceiling is not None and cut < ceiling
    await run_workers(limiter, clock, workers=4, duration=clock.now() + 300.0)
    assert limiter.current_rpm >= ceiling


async def test_idle_callers_do_not_grow_the_rate() -> None:
    """Successes while nobody waits for a permit leave the rate unchanged."""
    clock = SteppingClock()
    limiter = RateLimiter(rpm=None, clock=clock, start_rpm=60)
    for _ in range(10):
        await limiter.acquire()
        limiter.on_success()
        clock.advance(10.0)
    assert limiter.current_rpm == 60


@pytest.mark.parametrize("duration", [180.0, 900.0])
async def test_discovers_unknown_limit_with_few_429s(duration: float) -> None:
    """Without rpm, against a hidden 600 RPM limit, throughput >= 85% with <= 2% 429s."""
    limit, latency = 600, 0.3
    clock = SteppingClock()
    limiter = RateLimiter(rpm=None, clock=clock)
    accepted: deque[float] = deque()
    counts = {"ok": 0, "429": 0}

    async def worker() -> None:
        while True:
            await limiter.acquire()
            now = clock.now()
            while accepted and accepted[0] <= now - WINDOW:
                accepted.popleft()
            ok = len(accepted) < limit
            if ok:
                accepted.append(now)
            await clock.sleep(latency)
            if ok:
                counts["ok"] += 1
                limiter.on_success()
            else:
                counts["429"] += 1
                limiter.on_rate_limited(max(0.0, accepted[0] + WINDOW - clock.now()))

    async with anyio.create_task_group() as tg:
        for _ in range(32):
            tg.start_soon(worker)
        await run_until(clock, duration)
        tg.cancel_scope.cancel()
    total = counts["ok"] + counts["429"]
    assert counts["ok"] >= 0.85 * limit * duration / WINDOW
    assert counts["429"] <= 0.02 * total


@pytest.mark.parametrize(
    "kwargs", [{"rpm": 0}, {"rpm": -5}, {"rpm": None, "start_rpm": 0},
               {"rpm": 10, "window_s": 0}],
)
def test_invalid_settings_are_refused(kwargs: dict[str, float | None]) -> None:
    """Non-positive rates or windows raise ValueError naming the field."""
    with pytest.raises(ValueError):
        RateLimiter(clock=ManualClock(), **kwargs)  # type: ignore[arg-type]


async def test_urgent_requests_go_before_waiting_ones() -> None:
    """An urgent request (a poll when polls count) takes the next permit ahead of ordinary
    ones that were waiting before it, and the pacing still holds for both."""
    clock = SteppingClock()
    limiter = RateLimiter(rpm=60, clock=clock)
    grants: list[tuple[float, bool]] = []

    async def one(urgent: bool, at: float) -> None:
        await clock.sleep(at)
        await limiter.acquire(urgent=urgent)
        grants.append((clock.now(), urgent))

    async with anyio.create_task_group() as tg:
        for n in range(8):  # eight submits queued from the start, one permit a second
            tg.start_soon(one, False, 0.001 * n)
        tg.start_soon(one, True, 2.5)
        await run_until(clock, 20.0)
    times = [t for t, _ in grants]
    assert [u for _, u in grants].index(True) == 3  # after the grants at 0, 1 and 2 s
    assert grants[3][0] == pytest.approx(3.0)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 1.0 - 1e-6
