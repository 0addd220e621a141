"""The gate every POST passes: the stop switch, the deadline, the budget, a rate permit.

An item's intent is recorded only once it is through, right before its POST leaves, so
an item still waiting here when the run stops never comes back "in doubt". A stop (a
signal, the deadline, ``--max-cost``, a fatal answer) cancels every wait at the gate at
once, so no POST leaves after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from batchgen.api.ratelimit import RateLimiter
from batchgen.clock import Clock
from batchgen.engine.budget import Budget, Reservation
from batchgen.engine.runstate import (
    STOP_BUDGET,
    STOP_DEADLINE,
    STOP_UNREACHABLE,
    STOP_UNWRITABLE,
    StopSwitch,
)
from batchgen.manifest.item import Item

# Submits in a row that could not reach the API, each after its own retries, before the
# gate closes: the API is down, and every further item would only wait.
UNREACHABLE_STREAK = 3
# Paid jobs in a row whose images could not be written to disk before the gate closes:
# every further job would be paid for and not delivered (they stay resumable).
UNWRITABLE_STREAK = 3


class Gate:
    """Decides whether, and when, the next POST may leave."""

    def __init__(self, *, stop: StopSwitch, clock: Clock, limiter: RateLimiter,
                 budget: Budget, deadline_wall: float | None) -> None:
        self.stop = stop
        self.budget = budget
        self.limiter = limiter
        self._clock = clock
        self._deadline = deadline_wall
        self._unreachable = 0
        self._unwritable = 0
        self._proven: set[str] = set()
        self._trying: dict[str, anyio.Lock] = {}

    def closed(self) -> bool:
        """True once nothing more may be submitted (passing the deadline closes it)."""
        if not self.stop.stopped and self._deadline is not None \
                and self._clock.wall() >= self._deadline:
            self.stop.stop(STOP_DEADLINE)
        return self.stop.stopped

    async def enter(self, item: Item) -> Reservation | None:
        """Wait until ``item``'s POST may leave; None when none may."""
        if self.closed():
            return None
        reservation = await self.stop.unless_stopped(lambda: self.budget.reserve(item))
        if reservation is None:
            if not self.stop.stopped:
                self.stop.stop(STOP_BUDGET)
            return None
        granted = await self.stop.unless_stopped(self._permit)
        if granted is None or self.closed():
            self.budget.release(reservation)
            return None
        return reservation

    def reached(self, reached: bool) -> None:
        """Whether a submit reached the API; a streak of failures closes the gate."""
        self._unreachable = 0 if reached else self._unreachable + 1
        if self._unreachable >= UNREACHABLE_STREAK:
            self.stop.stop(STOP_UNREACHABLE)

    @asynccontextmanager
    async def first_of(self, model: str) -> AsyncIterator[None]:
        """Until a model's first submit is accepted, its POSTs go one at a time: a
        misspelled or retired slug then costs one refused POST, not one per item in
        flight."""
        if model in self._proven:
            yield
            return
        async with self._trying.setdefault(model, anyio.Lock()):
            yield

    def proven(self, model: str) -> None:
        """A submit of ``model`` was accepted: its POSTs need not wait for each other."""
        self._proven.add(model)
        self._trying.pop(model, None)

    def written(self, written: bool) -> None:
        """Whether a paid job's images could be written; a streak of failures closes it."""
        self._unwritable = 0 if written else self._unwritable + 1
        if self._unwritable >= UNWRITABLE_STREAK:
            self.stop.stop(STOP_UNWRITABLE)

    async def _permit(self) -> bool:
        await self.limiter.acquire()
        return True

    async def pause(self, seconds: float) -> bool:
        """Back off before a retried submit; False when a stop came first."""
        return await self.stop.unless_stopped(lambda: self._sleep(seconds)) is not None

    async def _sleep(self, seconds: float) -> bool:
        await self._clock.sleep(seconds)
        return True

    async def watch_deadline(self) -> None:
        """Close the gate at the deadline, waking every waiter (run beside the stages)."""
        if self._deadline is None:
            return
        await self._clock.sleep(max(0.0, self._deadline - self._clock.wall()))
        self.closed()
