"""Shared state of one run: counters, the stop switch, and what was learned on the way."""

from __future__ import annotations

import random
import statistics
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from batchgen.api.results import Metrics
from batchgen.errors import BatchgenError
from batchgen.manifest.item import Item

T = TypeVar("T")

# Why submitting stopped; the summary reports it.
STOP_INTERRUPTED = "interrupted"
STOP_TERMINATED = "terminated"
STOP_FATAL = "fatal_api_error"
STOP_BUDGET = "max_cost"
STOP_DEADLINE = "deadline"
STOP_MAX_ITEMS = "max_items"
STOP_UNREACHABLE = "api_unreachable"
STOP_UNWRITABLE = "images_unwritable"
# Stops the user asked for: the run did what it was told, exit 0 if nothing failed.
LIMIT_STOPS = (STOP_BUDGET, STOP_DEADLINE, STOP_MAX_ITEMS)


class DurationEstimate:
    """Expected seconds from submit to COMPLETED, learned from finished jobs' metrics.

    The median of recent jobs: robust to the odd slow job, and it follows the queue
    time as load changes.
    """

    def __init__(self, initial_s: float, window: int = 50) -> None:
        self._initial = initial_s
        self._recent: deque[float] = deque(maxlen=window)
        self._inference: deque[float] = deque(maxlen=window)

    @property
    def known(self) -> bool:
        return bool(self._recent)

    def expected_s(self, share: float = 0.5) -> float:
        """The ``share`` quantile of recent durations (the median by default)."""
        if not self._recent:
            return self._initial
        ordered = sorted(self._recent)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def inference_s(self) -> float | None:
        """Median time a job runs once started (``metrics.inference_time``), if reported."""
        return statistics.median(self._inference) if self._inference else None

    def observe(self, metrics: Metrics, measured_s: float) -> None:
        """Learn from a finished job: the server's own times when given, else our measure."""
        total, inference, queue = metrics.total_time, metrics.inference_time, metrics.queue_time
        if inference is not None and inference >= 0:
            self._inference.append(inference)
        if total is None:
            total = queue + inference if queue is not None and inference is not None else None
        self._recent.append(total if total is not None and total >= 0 else measured_s)


class Reservoir:
    """A uniform sample of at most ``size`` values (Vitter's algorithm R), for percentiles
    of a million-item run in constant memory."""

    def __init__(self, size: int = 10_000, seed: int = 0) -> None:
        self.size = size
        self.values: list[float] = []
        self.seen = 0
        self._rng = random.Random(seed)

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.size:
            self.values[slot] = value


@dataclass
class Counters:
    """What this run did; every field ends up in the summary. The lifecycle's events
    count themselves here (``lifecycle._COUNTS``); the stages count the rest."""

    submit_attempts: int = 0  # POSTs tried, whatever came of them
    new_items: int = 0  # new items taken for a first POST (what --max-items counts)
    accepted: int = 0  # POSTs answered with a job
    completed: int = 0
    failed: int = 0
    skipped_done: int = 0
    skipped_failed: int = 0
    redownloads: int = 0
    resumed_jobs: int = 0
    in_doubt: int = 0
    adopted: int = 0
    adopted_own: int = 0  # ... of them, jobs this run's own POSTs created
    possible_duplicates: int = 0
    expired: int = 0
    recovered_from_history: int = 0
    resubmits: int = 0
    retried: int = 0
    changed: int = 0  # finished items regenerated because their parameters changed
    changed_kept: int = 0  # ... and kept as they were (--keep-changed)
    rebuilt: bool = False  # the checkpoint was rebuilt from OUT's files at the start
    changed_in_flight: int = 0  # ... whose job was in flight: done as sent, redone next run
    polls: int = 0
    result_fetches: int = 0
    rate_limited: int = 0
    retries: int = 0
    images: int = 0
    image_bytes: int = 0
    not_delivered: int = 0
    unfinished: int = 0
    in_flight: int = 0
    cost: float = 0.0
    remaining_credits: float | None = None
    errors: Counter[str] = field(default_factory=Counter)
    refused_models: dict[str, str] = field(default_factory=dict)
    # In-doubt items sent again, with their first intent (engine.duplicates looks).
    resent: list[tuple[Item, float]] = field(default_factory=list)
    duplicates_found: int = 0
    duplicate_credits: float = 0.0
    queue_times: Reservoir = field(default_factory=Reservoir)
    inference_times: Reservoir = field(default_factory=Reservoir)

    def credits_left(self, remaining: float | None) -> None:
        """Keep the newest balance a job of this run reported. A run only spends, so the
        newest is the lowest: results fetched out of the order their jobs ended carry
        older, higher balances, and a completion time guessed from our clock and the
        job's metrics cannot order jobs that end a few milliseconds apart. (A top-up
        during the run shows from the next run on.)"""
        if remaining is not None and (self.remaining_credits is None
                                      or remaining < self.remaining_credits):
            self.remaining_credits = remaining


class StopSwitch:
    """Closes the door on new submits; jobs already in flight carry on.

    Waits that only lead to a submit (a rate permit, a budget reservation, a retry's
    backoff) run under ``unless_stopped``, so a stop cancels them at once instead of
    letting their POST leave after it.
    """

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.reason: str | None = None
        self.fatal: BatchgenError | None = None
        self._waits: set[anyio.CancelScope] = set()
        self._enough = False

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    @property
    def wants_new(self) -> bool:
        """Whether new items are still wanted (false once stopped or a limit is reached)."""
        return not (self._enough or self.stopped)

    def enough(self, reason: str) -> None:
        """A limit on new items is reached: none is taken any more, but the items already
        on their way to a POST still go (unlike ``stop``)."""
        self._enough = True
        if self.reason is None:
            self.reason = reason

    @property
    def interrupted(self) -> bool:
        return self.reason in (STOP_INTERRUPTED, STOP_TERMINATED)

    def stop(self, reason: str, fatal: BatchgenError | None = None) -> None:
        """Stop submitting; the first reason given is the one reported."""
        if not self.stopped:
            self.reason = reason
            self.fatal = fatal
            self.event.set()
            for scope in self._waits:
                scope.cancel()

    def interrupt(self, reason: str) -> None:
        """A signal: stop submitting, and report the signal over any softer reason."""
        self.stop(reason)
        if not self.interrupted:
            self.reason = reason

    async def unless_stopped(self, wait: Callable[[], Awaitable[T]]) -> T | None:
        """``await wait()``, or None when the switch is (or gets) thrown first."""
        if self.stopped:
            return None
        with anyio.CancelScope() as scope:
            self._waits.add(scope)
            try:
                return await wait()
            finally:
                self._waits.discard(scope)
        return None
