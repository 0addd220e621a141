"""Time as an injected dependency: the real clock, and a manual one for tests.

Code that waits or reads the time takes a ``Clock``; tests pass a ``ManualClock`` and
move time forward with ``advance`` instead of sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Protocol

import anyio


class Clock(Protocol):
    """Monotonic time for intervals, wall time for timestamps, and sleeping."""

    def now(self) -> float:
        """Monotonic seconds, for measuring intervals."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (UTC), for timestamps and server reset times."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


# Deadlines this close to the manual clock's time are due (float rounding, not time).
RESOLUTION_S = 1e-9


class ManualClock:
    """A clock that moves only when told; sleepers wake when ``advance`` passes their deadline."""

    def __init__(self, start: float = 0.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock."""
        return len(self._sleepers)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), event))
        await event.wait()

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come.

        A deadline within ``RESOLUTION_S`` counts as come: a sleep computed as
        ``ready - now`` must not miss its step by a rounding error (and so wait a whole
        step more, which would drift a paced sender off its rate).
        """
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now + RESOLUTION_S:
            _, _, event = heapq.heappop(self._sleepers)
            event.set()
