"""``--max-cost``: never let this run's spent plus in-flight expected cost pass the cap.

The cap is per run, so a nightly job into a fixed OUT gets it every night. A job's
expected cost comes from a price model (``batchgen.prices``) fitted, per model slug, to
the jobs already paid for: the store's from earlier runs, then this run's as they
finish (``metrics.cost``, API-FACTS "Money"). The price may depend on the parameters
(steps, size, samples): a job is priced by its own, never by the last job's price per
image. Until a model's price is known, at most one of its jobs is in flight, so the cap
can be passed by at most that one job's price, which nothing could have told us.

A submit reserves its expected cost before it goes out and gives it back when the job
ends (when the real cost is charged instead) or when no job was created. A submit that
would pass the cap only because of other jobs' reservations waits for them to end: a
job that ends FAILED costs nothing, and its reservation is free again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from batchgen.manifest.item import Item
from batchgen.prices import PriceModel, Units, fit, units_of

log = logging.getLogger(__name__)

# Paid jobs remembered per model to fit its price: recent ones, where a price change
# shows first.
WINDOW = 200
# A model's price is fitted again once this share of its remembered jobs is new (after
# each job while few are known): a fit walks every remembered job, five times, which was
# 13% of the client's CPU when done after every job (issue 12, py-spy).
REFIT_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one submit set aside: its expected cost, and the model it waits a price for."""

    cost: float = 0.0
    unpriced: str | None = None  # the model slug, when its price was not known yet


class Budget:
    """Spent credits, reservations of jobs in flight, and the learned prices."""

    def __init__(self, max_cost: float | None, *,
                 paid: Iterable[tuple[str, Mapping[str, Any], float]] = ()) -> None:
        self.max_cost = max_cost
        self.spent = 0.0
        self.reserved = 0.0
        self._jobs: dict[str, deque[tuple[Units, float]]] = {}
        self._models: dict[str, PriceModel] = {}
        self._unpriced: dict[str, int] = {}
        self._unreported: set[str] = set()
        self._changed = anyio.Event()
        self._unfitted: dict[str, int] = {}  # jobs observed since the model's last fit
        for model, params, cost in paid:
            self._jobs.setdefault(model, deque(maxlen=WINDOW)).append(
                (units_of(model, params), cost))
        for model in self._jobs:
            self._refit(model)

    def price(self, item: Item) -> float | None:
        """The expected cost of ``item``'s job, or None while its model's is unknown."""
        model = self._models.get(item.model)
        return None if model is None else model.estimate(units_of(item.model,
                                                                  item.params)).credits

    @property
    def cost_per_image(self) -> float | None:
        """The most recent per-image price of any model (for progress figures)."""
        rates = [m.get("image").rate for m in self._models.values()]
        return rates[-1] if rates else None

    async def reserve(self, item: Item) -> Reservation | None:
        """Set aside the expected cost of ``item``'s job; None when it would pass the cap."""
        if self.max_cost is None:
            return Reservation()
        model = item.model
        while True:
            while (model not in self._models and self._unpriced.get(model, 0) > 0
                   and model not in self._unreported):
                await self._wait()
            price = self.price(item)
            expected = price or 0.0
            if self.spent + expected > self.max_cost:
                return None
            if self.spent + self.reserved + expected <= self.max_cost:
                break
            await self._wait()  # in-flight jobs hold the rest: wait for one to end
        reservation = Reservation(expected, model if price is None else None)
        self.reserved += reservation.cost
        if reservation.unpriced:
            self._unpriced[model] = self._unpriced.get(model, 0) + 1
        return reservation

    def release(self, reservation: Reservation) -> None:
        """The job ended or was never created: its reservation is free again."""
        self.reserved = max(0.0, self.reserved - reservation.cost)
        if reservation.unpriced:
            self._unpriced[reservation.unpriced] -= 1
        self._notify()

    def unpriced_job_done(self, item: Item) -> None:
        """A job completed without a ``metrics.cost``: the model's price cannot be learned,
        so stop holding its jobs back for it (the cap then counts only reported costs)."""
        if self.max_cost is not None and item.model not in self._models \
                and item.model not in self._unreported:
            log.warning("the API reports no cost for %s: --max-cost counts only costs it "
                        "reports", item.model, extra={"event": "budget.unpriced"})
            self._unreported.add(item.model)
            self._notify()

    def charge(self, item: Item, cost: float) -> None:
        """A job of ``item`` completed and was billed ``cost``: count it, learn from it."""
        self.spent += cost
        self._observe(item.model, units_of(item.model, item.params), cost)
        self._notify()

    def charge_lost(self, item: Item) -> None:
        """A POST whose job may exist and will not be fetched (it is sent again): count its
        expected cost as spent, so that --max-cost holds even if it was billed."""
        self.spent += self.price(item) or 0.0
        self._notify()

    def _observe(self, model: str, units: Units, cost: float) -> None:
        jobs = self._jobs.setdefault(model, deque(maxlen=WINDOW))
        jobs.append((units, cost))
        self._unfitted[model] = self._unfitted.get(model, 0) + 1
        if model not in self._models or self._unfitted[model] >= REFIT_SHARE * len(jobs):
            self._refit(model)

    def _refit(self, model: str) -> None:
        self._unfitted[model] = 0
        fitted = fit(list(self._jobs[model]))
        if fitted is not None:
            self._models[model] = fitted

    async def _wait(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
