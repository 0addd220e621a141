"""``--max-cost``: never let this run's spent plus in-flight expected cost pass the cap.

The cap is per run, so a nightly job into a fixed OUT gets it every night. The price of
an image is the last one the store knows, else learned from the first finished job's
``metrics.cost`` (API-FACTS, "Money"). Until it is known, at most one job is in flight,
so the cap can be passed by at most that one job's price, which nothing could have told
us in advance.
A submit reserves its expected cost before it goes out and gives it back when the job
ends (when the real cost is charged instead) or when no job was created. A submit that
would pass the cap only because of other jobs' reservations waits for them to end: a
job that ends FAILED costs nothing, and its reservation is free again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one submit set aside: its expected cost, and whether the price was unknown."""

    cost: float = 0.0
    unpriced: bool = False


class Budget:
    """Spent credits, reservations of jobs in flight, and the learned price per image."""

    def __init__(self, max_cost: float | None, *, price: float | None = None) -> None:
        self.max_cost = max_cost
        self.spent = 0.0
        self.cost_per_image: float | None = price
        self.reserved = 0.0
        self._unpriced = 0
        self._price_unreported = False
        self._changed = anyio.Event()

    async def reserve(self, samples: int) -> Reservation | None:
        """Set aside the expected cost of one job; None when it would pass the cap."""
        if self.max_cost is None:
            return Reservation()
        while True:
            while (self.cost_per_image is None and self._unpriced > 0
                   and not self._price_unreported):
                await self._changed.wait()
            price = self.cost_per_image
            expected = (price or 0.0) * samples
            if self.spent + expected > self.max_cost:
                return None
            if self.spent + self.reserved + expected <= self.max_cost:
                break
            await self._changed.wait()  # in-flight jobs hold the rest: wait for one to end
        reservation = Reservation(expected, price is None)
        self.reserved += reservation.cost
        self._unpriced += reservation.unpriced
        return reservation

    def release(self, reservation: Reservation) -> None:
        """The job ended or was never created: its reservation is free again."""
        self.reserved = max(0.0, self.reserved - reservation.cost)
        self._unpriced -= reservation.unpriced
        self._changed.set()
        self._changed = anyio.Event()

    def unpriced_job_done(self) -> None:
        """A job completed without a ``metrics.cost``: the price cannot be learned, so
        stop holding jobs back for it (the cap then counts only reported costs)."""
        if self.max_cost is not None and self.cost_per_image is None and not self._price_unreported:
            log.warning("the API reports no cost for this model: --max-cost counts only "
                        "costs it reports")
            self._price_unreported = True
            self._changed.set()
            self._changed = anyio.Event()

    def charge(self, cost: float, samples: int) -> None:
        """A job completed and was billed ``cost``: count it and learn the price."""
        self.spent += cost
        self.cost_per_image = cost / max(1, samples)
        self._changed.set()
        self._changed = anyio.Event()
