"""``batchgen plan``: what a run of a manifest would do against OUT's store, sending nothing.

The manifest is streamed and each chunk looked up in the store, as the run's read stage
does (``engine/read.py``), and every item is sorted by what the run would do with it:

- not in the store, or ``pending``: submitted (new);
- ``completed``: skipped, unless the manifest changed its parameters (the engine's
  ``_changed``: another body or model than the stored one): then generated again, unless
  ``--keep-changed``;
- ``failed``: left alone, unless its parameters changed or ``--retry-failed``;
- begun (``submitting``, ``in_doubt``, ``submitted``, ``fetched``): finished with the
  parameters it was sent with; the jobs not billed yet will be.

Credits are the price model (``report.prices``) applied to the units of the items to
send and of the jobs in flight; time is the requests that count against the rate limit
(submits; polls and result GETs too with ``--rate-scope all``) at the rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from batchgen.config import DEFAULT_START_RPM
from batchgen.lifecycle import COMPLETED, FAILED, FETCHED, PENDING, STARTED
from batchgen.manifest.item import Item
from batchgen.prices import DESCRIPTIONS, NO_UNITS, PriceModel, Units, add, units_of
from batchgen.store.planning import PlanStore, Stored

CHUNK = 1024
# Status polls per job when no run into OUT has measured it: the poll schedule of
# ``engine/follow.py`` aims at about 1.45 for job times spread +-50%.
ASSUMED_POLLS_PER_JOB = 1.5


@dataclass(slots=True)
class Tally:
    """The manifest's items sorted by what a run would do with them."""

    in_manifest: int = 0
    new: int = 0  # not in the store
    pending: int = 0  # stored, never sent (or sent back by an expiry, a FAILED job)
    done: int = 0
    failed: int = 0
    in_flight: int = 0
    changed: int = 0  # stored with other parameters: generated again
    changed_kept: int = 0  # the same, kept by --keep-changed
    to_send: int = 0
    images: int = 0
    failed_left: int = 0  # failed items no submit is planned for
    unpaid_jobs: int = 0  # in flight and not billed yet
    send_units: dict[str, Units] = field(default_factory=dict)  # per model
    unpaid_units: dict[str, Units] = field(default_factory=dict)

    def _send(self, item: Item) -> None:
        self.to_send += 1
        self.images += item.samples
        self.send_units[item.model] = add(self.send_units.get(item.model, NO_UNITS),
                                          units_of(item.model, item.params))

    def models(self) -> list[str]:
        return sorted(set(self.send_units) | set(self.unpaid_units))

    def count(self, item: Item, stored: Stored | None, *, retry_failed: bool,
              keep_changed: bool) -> None:
        """Sort one item (with its stored row) the way ``engine/read.py`` routes it."""
        self.in_manifest += 1
        if stored is None:
            self.new += 1
            self._send(item)
            return
        if stored.state in STARTED:
            self.in_flight += 1
            if stored.state != FETCHED:  # a fetched job is paid for already
                self.unpaid_jobs += 1
                self.unpaid_units[stored.model] = add(
                    self.unpaid_units.get(stored.model, NO_UNITS),
                    units_of(stored.model, stored.params))
            return
        state = stored.state
        self.pending += state == PENDING
        self.done += state == COMPLETED
        self.failed += state == FAILED
        changed = stored.params != item.params or stored.model != item.model
        if changed and state != PENDING and keep_changed:
            self.changed_kept += 1
        elif changed:
            self.changed += 1
            self._send(item)
            return
        if state == PENDING or (state == FAILED and retry_failed):
            self._send(item)
        elif state == FAILED:
            self.failed_left += 1


def _chunks(items: Iterable[Item]) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def tally(items: Iterable[Item], store: PlanStore, *, retry_failed: bool = False,
          keep_changed: bool = False) -> Tally:
    """Stream ``items`` against ``store``. Blocking."""
    result = Tally()
    for chunk in _chunks(items):
        stored = store.lookup([item.id for item in chunk])
        for item in chunk:
            result.count(item, stored.get(item.id), retry_failed=retry_failed,
                         keep_changed=keep_changed)
    return result


@dataclass(frozen=True, slots=True)
class Rate:
    """The rate the run would go at, and what counts against it."""

    rpm: float
    rpm_source: str
    scope: str  # "submits" or "all"
    polls_per_job: float
    polls_source: str


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return float(value) if ok else None


def rate(*, rpm: float | None, scope: str, summaries: list[dict[str, Any]]) -> Rate:
    """``--rpm``, else what the last run into OUT was given or found, else the Pro plan's
    documented limit; polls per job as the last runs measured them, else assumed."""
    rpm_source = "--rpm"
    if rpm is None:
        last = (summaries[0].get("rate") or {}) if summaries else {}
        given, found = _number(last.get("rpm_limit")), _number(last.get("rpm_at_end"))
        rpm, rpm_source = ((given, "the last run's --rpm") if given else
                           (found, "the rate the last run found") if found else
                           (DEFAULT_START_RPM, "no --rpm: the Pro plan's documented limit"))
    polls = fetches = 0.0
    for summary in summaries:
        this_run = summary.get("this_run") or {}
        polls += _number(this_run.get("status_polls")) or 0.0
        fetches += _number(this_run.get("result_fetches")) or 0.0
    if fetches:
        per_job, source = polls / fetches, f"measured over {int(fetches)} jobs of the last runs"
    else:
        per_job, source = ASSUMED_POLLS_PER_JOB, "assumed (no run into OUT measured it)"
    return Rate(rpm, rpm_source, scope, per_job, source)


def timing(t: Tally, r: Rate, submit_for_s: float | None) -> dict[str, Any]:
    """Requests counted against the rate limit, and how long they take at the rate."""
    counted = float(t.to_send)
    if r.scope == "all":  # each job is polled, then its result read
        counted += (t.to_send + t.unpaid_jobs) * (r.polls_per_job + 1)
    hours = counted / r.rpm / 60
    nights = None if not submit_for_s else hours * 3600 / submit_for_s
    return {
        "rpm": r.rpm, "rpm_source": r.rpm_source, "rate_scope": r.scope,
        "polls_per_job": round(r.polls_per_job, 3), "polls_source": r.polls_source,
        "requests": math.ceil(counted), "hours": round(hours, 3),
        "submit_for_h": None if not submit_for_s else round(submit_for_s / 3600, 3),
        "nights": None if nights is None else round(nights, 3),
        "nights_needed": None if nights is None else math.ceil(nights - 1e-9),
    }


def items_figures(t: Tally) -> dict[str, int]:
    return {"in_manifest": t.in_manifest, "new": t.new, "pending": t.pending, "done": t.done,
            "failed": t.failed, "in_flight": t.in_flight, "changed": t.changed,
            "changed_kept": t.changed_kept}


def send_figures(t: Tally) -> dict[str, int]:
    return {"requests": t.to_send, "images": t.images, "failed_left": t.failed_left,
            "jobs_in_flight_unpaid": t.unpaid_jobs}


@dataclass(frozen=True, slots=True)
class Pricing:
    """Where a model's price came from, and the model fitted to it."""

    source: str  # "store" (OUT's paid jobs), "history" (the account's), "option" (--price)
    jobs: int
    model: PriceModel


SOURCES = {"store": "this OUT's finished jobs", "history": "the account history",
           "option": "--price"}


def credits_figures(t: Tally, prices: dict[str, Pricing | None]) -> dict[str, Any]:
    """Credits expected for the items to send and the unpaid jobs in flight, per model
    priced; ``expected`` is None while a model with work has no price."""
    to_send = in_flight = low = 0.0
    described: dict[str, Any] = {}
    unpriced = []
    for model in t.models():
        pricing = prices.get(model)
        if pricing is None:
            unpriced.append(model)
            described[model] = None
            continue
        new = pricing.model.estimate(t.send_units.get(model, NO_UNITS))
        begun = pricing.model.estimate(t.unpaid_units.get(model, NO_UNITS))
        to_send += new.credits
        in_flight += begun.credits
        low += new.low + begun.low
        # The candidate applied (the best, or the dearest of those tied with it).
        used = pricing.model.get(new.kind if model in t.send_units else begun.kind)
        described[model] = {
            "source": pricing.source, "jobs": pricing.jobs, "kind": used.kind,
            "description": DESCRIPTIONS[used.kind],
            "per_reference_image": round(used.rate, 9), "error": round(used.error, 6),
            "tied": [f.kind for f in pricing.model.tied],
        }
    known = not unpriced
    return {
        "expected": round(to_send + in_flight, 6) if known else None,
        "to_send": round(to_send, 6), "in_flight": round(in_flight, 6),
        "low": round(low, 6) if known else None,
        "unpriced_models": unpriced, "prices": described,
    }
