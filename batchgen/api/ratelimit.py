"""Requests-per-minute limiter: even pacing, a sliding-window log, a shared 429 pause.

Segmind limits each key per sliding minute and answers 429 with a reset time
(API-FACTS.md, "Rate limits"). One ``RateLimiter`` is shared by every task that sends.

Algorithm
---------
* **Pacing.** Grants are at least ``window_s / rate`` apart, so there are no bursts.
* **Window log.** With a ceiling of N requests per window, a grant waits until the N-th
  most recent grant is more than ``window_s + margin`` old. No ``window_s``-long
  window can then hold more than N grants, whatever the callers do; the margin
  (``window_s / 60``) absorbs server-side arrival jitter and costs under 2 % of N.
* **429.** Every acquirer is paused until the server's reset (``retry_after_s``), or
  ``DEFAULT_PAUSE_S`` when it gave none. The ceiling becomes ``SAFETY * (n - 1)``, where
  n is the number of grants in the last window: the count the server just refused (but
  never below ``MAX_CUT`` of the rate before). The rate is cut to ``BETA`` times the
  lower of rate and ceiling. 429s answered while the
  pause is on (plus ``GUARD_S``) are the same event: they extend the pause, cut nothing.
* **Recovery law** (after each success, only while callers are waiting for permits, so
  idle time earns nothing): below the ceiling, ``rate += RECOVER_RPM``; at the ceiling,
  ``ceiling += PROBE_RPM`` (a slow probe in case the limit rose or was underestimated),
  never above ``rpm`` when one was given.
* **Discovery** (``rpm=None``): start at ``start_rpm`` (default ``DEFAULT_START_RPM``,
  the Pro plan's documented 50 RPM) with no ceiling, and the rate doubles every
  ``SLOW_START_DOUBLING_S`` of busy sending (50 to 600 RPM in under 20 s), until the
  first 429 sets the ceiling as above. This is AIMD (TCP Reno's exponential slow start,
  multiplicative decrease, additive increase) with the ceiling estimated from the window
  count.
"""

from __future__ import annotations

import math
from collections import deque

import anyio

from batchgen.clock import Clock
from batchgen.config import DEFAULT_START_RPM

DEFAULT_PAUSE_S = 1.0
MAX_RPM = 10_000.0
MIN_RPM = 1.0
SAFETY = 0.97
BETA = 0.95
MAX_CUT = 0.5
GUARD_S = 2.0
SLOW_START_DOUBLING_S = 5.0
RECOVER_RPM = 0.5
PROBE_RPM = 0.01
_EPSILON_S = 1e-9


class RateLimiter:
    """Hands out send permits so a per-minute limit is kept; see the module docstring."""

    def __init__(
        self,
        *,
        rpm: float | None,
        clock: Clock,
        start_rpm: float = DEFAULT_START_RPM,
        window_s: float = 60.0,
    ) -> None:
        if rpm is not None and not rpm > 0:
            raise ValueError(f"rpm must be > 0, got {rpm}")
        if not start_rpm > 0:
            raise ValueError(f"start_rpm must be > 0, got {start_rpm}")
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self._clock = clock
        self._window_s = window_s
        self._margin_s = window_s / 60.0
        self._max_rpm = MAX_RPM if rpm is None else float(rpm)
        self._ceiling: float | None = None if rpm is None else float(rpm)
        self._rate = min(start_rpm, self._max_rpm) if rpm is None else float(rpm)
        self._log: deque[float] = deque()
        self._last_grant: float | None = None
        self._last_wait: float | None = None
        self._last_growth: float | None = None
        self._paused_until = -math.inf
        self._guard_until = -math.inf
        self._lock = anyio.Lock()
        self._ordinary = anyio.Lock()
        self._urgent = 0  # urgent acquirers waiting
        self._no_urgent = anyio.Event()

    @property
    def current_rpm(self) -> float:
        """The pacing rate now, in requests per window."""
        return self._rate

    @property
    def rate_per_s(self) -> float:
        """The pacing rate now, in requests per second."""
        return self._rate / self._window_s

    @property
    def growing(self) -> bool:
        """Whether the rate may still rise by itself (discovering, or below its ceiling)."""
        return self._ceiling is None or self._rate < self._ceiling

    @property
    def ceiling_rpm(self) -> float | None:
        """The most requests per window allowed; None while still discovering."""
        return self._ceiling

    @property
    def paused_until(self) -> float | None:
        """Clock time until which a 429 holds every acquirer, or None when not paused."""
        return self._paused_until if self._paused_until > self._clock.now() else None

    async def acquire(self, *, urgent: bool = False) -> None:
        """Wait for a permit to send one request. Permits go in arrival order, except that
        ``urgent`` requests go before every other one still waiting (with
        ``--rate-scope all``: polls and result reads of jobs in flight before new submits,
        so that finishing work never queues behind starting more)."""
        if not urgent:
            # One ordinary request at a time goes for a permit, so an urgent one never
            # queues behind more than it.
            async with self._ordinary:
                while not await self._grant(urgent):
                    while self._urgent:
                        await self._no_urgent.wait()
            return
        self._urgent += 1
        try:
            await self._grant(urgent)
        finally:
            self._urgent -= 1
            if not self._urgent:
                self._no_urgent.set()
                self._no_urgent = anyio.Event()

    async def _grant(self, urgent: bool) -> bool:
        """Take the next permit; False when an urgent request should have it first."""
        async with self._lock:
            while True:
                if self._urgent and not urgent:
                    return False
                now = self._clock.now()
                ready = self._ready_at(now)
                if ready <= now + _EPSILON_S:
                    break
                self._last_wait = now
                await self._clock.sleep(ready - now)
            self._last_grant = now
            self._log.append(now)
            return True

    def on_success(self) -> None:
        """A permitted request was accepted: grow the rate by the recovery law."""
        now = self._clock.now()
        busy_s = max(1.0, 2 * self._window_s / self._rate)
        if self._last_wait is None or now - self._last_wait > busy_s:
            return  # callers are not waiting: the rate is not what limits them
        if self._ceiling is None:
            # Doubling per unit of time, not per success: growth per success would grow
            # with the rate itself and overshoot the limit many times before the first
            # 429 comes back.
            since = now - (self._last_growth if self._last_growth is not None else now)
            self._last_growth = now
            self._rate = min(self._rate * 2.0 ** (since / SLOW_START_DOUBLING_S),
                             self._max_rpm)
        elif self._rate < self._ceiling:
            self._rate = min(self._rate + RECOVER_RPM, self._ceiling)
        else:
            self._ceiling = min(self._ceiling + PROBE_RPM, self._max_rpm)
            self._rate = self._ceiling

    def on_rate_limited(self, retry_after_s: float | None) -> None:
        """A request was answered 429: pause everyone, then lower ceiling and rate."""
        now = self._clock.now()
        pause_s = DEFAULT_PAUSE_S if retry_after_s is None else max(0.0, retry_after_s)
        self._paused_until = max(self._paused_until, now + pause_s)
        if now < self._guard_until:
            self._guard_until = max(self._guard_until, self._paused_until + GUARD_S)
            return
        self._guard_until = self._paused_until + GUARD_S
        sent = self._count_since(now - self._window_s)
        # Once a ceiling is known, one event cuts at most to MAX_CUT of it: a 429 caused by
        # traffic we do not see (polls not counted here, another client on the key) must
        # not collapse it. While discovering, the exponential ramp may have overshot far
        # past the limit, so the window count alone is the estimate.
        floor = MIN_RPM if self._ceiling is None else MAX_CUT * min(self._rate, self._ceiling)
        estimate = max(SAFETY * (sent - 1), floor, MIN_RPM)
        self._ceiling = min(estimate, self._max_rpm)
        self._rate = max(MIN_RPM, BETA * min(self._rate, self._ceiling))

    def _count_since(self, start: float) -> int:
        return sum(1 for t in self._log if t > start)

    def _ready_at(self, now: float) -> float:
        """The earliest time the next permit may be granted."""
        horizon = self._window_s + self._margin_s
        while self._log and self._log[0] <= now - horizon:
            self._log.popleft()
        ready = max(now, self._paused_until)
        if self._last_grant is not None:
            ready = max(ready, self._last_grant + self._window_s / self._rate)
        if self._ceiling is not None:
            limit = max(1, math.floor(self._ceiling + _EPSILON_S))
            if len(self._log) >= limit:
                ready = max(ready, self._log[-limit] + horizon)
        return ready
