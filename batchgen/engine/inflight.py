"""How many jobs may be in flight at once: as many as the rate and the job times need.

By Little's law the jobs in flight are the submit rate times the time each job holds
its slot. The rate is the limiter's (with ``--rate-scope all``, the share of it left for
submits after polls and result reads). The time is learned from this run's jobs, from
the answer to their POST to their result read: queue, inference, and the delay before a
poll found them done (queue time above the lowest seen is backlog, left out). Target:

    ceil(rate x hold x pushback) + running long + SPARE, at most the cap

* hold: the HOLD_SHARE quantile of recent holds, so the spread of job times has room (a
  long job keeps its slot while later ones are submitted). Before any job has finished
  it is ``initial_hold_s``, the poller's own first guess.
* running long: jobs running past that hold (by more than the time between two permits,
  which the spare slot covers) keep their slots but are outside the estimate (early in
  a run the first jobs to finish are the short ones): a slot each. So before job times
  are known the target grows only as fast as the evidence: never above what the rate
  could have submitted while the oldest jobs ran. Not while the API pushes back: then
  they are the provider's backlog.
* SPARE: a slot for the next submit to wait for its rate permit, so that no permit goes
  unused and the limiter sees a caller waiting (it raises its rate only then).
* pushback: 1 until the API pushes back (``engine.pushback``: 5xx answers beyond their
  share, or a provider queue that grows while inference stays flat), then cut, and
  grown back as jobs finish. A 429 cuts the limiter's rate, and the target with it.

The cap is ``--concurrency N`` when given, else ``--max-concurrency``. The submit stage
takes a slot per item (``acquire``, ``release``); ``engine.follow`` reports each job's
start (``running``) and end (``finished``), ``engine.calls`` each answer (``answered``).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio

from batchgen.api.ratelimit import RateLimiter
from batchgen.api.results import Metrics
from batchgen.clock import Clock
from batchgen.config import RunConfig
from batchgen.engine.pushback import Answer, Pushback
from batchgen.engine.runstate import Counters

HOLD_SHARE = 0.9
HOLDS_KEPT = 200
# The quantile is sorted out again once this share of the holds kept is new.
HOLDS_RESORT_SHARE = 0.05
SPARE = 1
# With --rate-scope all a job costs its submit, its polls and its result read; until ten
# results are read, assume this many polls per job.
POLLS_PER_JOB_GUESS = 1.5
# While slots are short and the target may grow by itself (a job passing its hold, a
# discovering limiter), look again this often at most and at least.
RECHECK_S = (0.01, 1.0)

class InFlight:
    """The in-flight target and the slots held under it; see the module docstring."""

    def __init__(self, *, clock: Clock, limiter: RateLimiter, counters: Counters, cap: int,
                 cap_flag: str, polls_limited: bool, initial_hold_s: float) -> None:
        self._clock = clock
        self._limiter = limiter
        self._counters = counters
        self.cap = cap
        self._cap_flag = cap_flag
        self._polls_limited = polls_limited
        self._initial_hold_s = initial_hold_s
        self._started = clock.wall()  # jobs submitted before this run teach nothing
        self.held = 0
        self.peak_held = 0
        self.peak_target = 0
        self._holds: deque[float] = deque(maxlen=HOLDS_KEPT)
        self._hold_s: float | None = None  # cached quantile of _holds
        self._unsorted = 0  # holds learned since the quantile was last sorted out
        self._running: dict[int, float] = {}  # submitted_at (wall) of jobs being polled
        self._tokens = itertools.count()
        self._next_check: float | None = None
        self.pushback = Pushback(clock)
        self._took_s = 0.0  # submit to result of the latest job
        self._changed: anyio.Event | None = None  # set while the submit stage waits

    @classmethod
    def for_run(cls, cfg: RunConfig, *, clock: Clock, limiter: RateLimiter,
                counters: Counters) -> InFlight:
        flag = "--max-concurrency" if cfg.concurrency is None else "--concurrency"
        return cls(clock=clock, limiter=limiter, counters=counters, cap=cfg.max_in_flight,
                   cap_flag=flag, polls_limited=cfg.rate_scope == "all",
                   initial_hold_s=cfg.poll_first_s)

    # -- the target ---------------------------------------------------------------------

    def submit_rate_s(self) -> float:
        """Submits per second the limiter allows now."""
        rate = self._limiter.rate_per_s
        if not self._polls_limited:
            return rate
        c = self._counters
        polls = c.polls / c.result_fetches if c.result_fetches >= 10 else POLLS_PER_JOB_GUESS
        return rate / (2 + polls)  # a submit, its polls and its result read

    def hold_s(self) -> float:
        """How long a job holds its slot, with room for the spread (HOLD_SHARE quantile)."""
        if not self._holds:
            return self._initial_hold_s
        if self._hold_s is None or self._unsorted >= HOLDS_RESORT_SHARE * len(self._holds):
            ordered = sorted(self._holds)
            self._hold_s = ordered[min(len(ordered) - 1, int(HOLD_SHARE * len(ordered)))]
            self._unsorted = 0
        return self._hold_s

    def _base(self) -> int:
        return math.ceil(self.submit_rate_s() * self.hold_s() * self.pushback.factor)

    def _running_long(self, hold: float) -> tuple[int, float | None]:
        """Jobs running past ``hold``, and when the next one will (wall time). None while
        the API pushes back: then they are the provider's backlog, not a sign that jobs
        take longer."""
        if self.pushback.factor < 1:
            return 0, None
        now, count = self._clock.wall(), 0
        hold += 1.0 / max(self.submit_rate_s(), 1e-9)
        for started in self._running.values():  # oldest first: submit order
            if now - started <= hold:
                return count, started + hold
            count += 1
        return count, None

    def target(self) -> int:
        """How many slots may be held now."""
        base = self._base() + SPARE
        if base >= self.cap:
            target, self._next_check = self.cap, None
        else:
            long, self._next_check = self._running_long(self.hold_s())
            target = min(self.cap, base + long)
        self.peak_target = max(self.peak_target, target)
        return target

    def why(self) -> str:
        """The target and how it came about, for people."""
        target, hold = self.target(), self.hold_s()
        basis = (f"p{HOLD_SHARE * 100:.0f} of {len(self._holds)} jobs" if self._holds
                 else "assumed until a job finishes")
        text = (f"{self.submit_rate_s():.3g} submits/s x {hold:.3g} s a job holds its slot "
                f"({basis})")
        if self.pushback.factor < 1:
            text += f" x {self.pushback.factor:.2f} (pushback: {self.pushback.reason})"
        long, _ = self._running_long(hold)
        if long:
            text += f" + {long} running long"
        text += f" + {SPARE} spare"
        if self._base() + SPARE + long > self.cap:
            text += f", capped by {self._cap_flag} {self.cap}"
        return f"{target} in flight: {text}"

    def summary(self) -> dict[str, Any]:
        """The summary's ``concurrency``: target, why, cap, peaks and pushbacks."""
        return {"target": self.target(), "why": self.why(), "cap": self.cap,
                "cap_from": self._cap_flag, "peak_in_flight": self.peak_held,
                "peak_target": self.peak_target, "hold_s": round(self.hold_s(), 3),
                "submit_rate_per_s": round(self.submit_rate_s(), 3),
                "pushback": round(self.pushback.factor, 3),
                "pushbacks": dict(self.pushback.counts)}

    # -- slots --------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait until a slot is free under the target, and take it."""
        while self.held >= self.target():
            await self._wait()
        self.held += 1
        self.peak_held = max(self.peak_held, self.held)

    def release(self) -> None:
        self.held -= 1
        self._notify()

    async def _wait(self) -> None:
        self._changed = changed = anyio.Event()
        try:
            if self._next_check is None and not self._limiter.growing:
                await changed.wait()  # only a release or a finished job changes the target
                return
            low, high = RECHECK_S
            delay = high if self._next_check is None else self._next_check - self._clock.wall()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._alarm, min(high, max(low, delay)), changed)
                await changed.wait()
                tg.cancel_scope.cancel()
        finally:
            self._changed = None

    async def _alarm(self, delay_s: float, changed: anyio.Event) -> None:
        await self._clock.sleep(delay_s)
        changed.set()

    def _notify(self) -> None:
        """Wake the submit stage if it waits for a slot (the only waiter there is)."""
        if self._changed is not None:
            self._changed.set()

    # -- what jobs and answers teach ----------------------------------------------------

    @contextmanager
    def running(self, submitted_at: float) -> Iterator[None]:
        """Count a job as running since ``submitted_at`` (wall) while the block runs."""
        if submitted_at < self._started:
            yield  # resumed from an earlier run: its age says nothing about job times
            return
        token = next(self._tokens)
        self._running[token] = submitted_at
        self._notify()  # a slot waiter may now have a job to watch outlive the hold
        try:
            yield
        finally:
            del self._running[token]

    def finished(self, submitted_at: float, metrics: Metrics) -> None:
        """A job's result was read: learn how long it held its slot, and watch the queue.

        Queue time above the lowest this run has seen is the provider's backlog, not time
        a job needs: it is left out of the hold, or a full queue would raise the target
        that filled it.
        """
        queue = metrics.queue_time
        if submitted_at >= self._started:
            self._took_s = self._clock.wall() - submitted_at
            self._holds.append(self._took_s - self.pushback.backlog_s(queue))
            self._unsorted += 1
        # A queue time is learned only when its job ends: the jobs that waited in the
        # backlog a cut is to drain end a whole (backlogged) job time from now.
        self.pushback.finished(queue, metrics.inference_time,
                               guard_s=max(self.hold_s(), self._took_s),
                               jobs_per_hold=self.submit_rate_s() * self.hold_s())
        self._notify()

    def answered(self, answer: Answer) -> None:
        """One API answer (``engine.calls``), for the pushback."""
        self.pushback.answered(answer, guard_s=self.hold_s())
