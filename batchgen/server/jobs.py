"""The job book: accepted jobs, the simulated worker pool, and lazy job states.

No task runs per job. On submit the job's start and end are computed from a heap of the
times at which each worker becomes free (start = max(now, earliest free worker)); its
state at any moment is derived from the clock when asked. That scales to thousands of
jobs and makes ManualClock tests exact. Jobs are kept in creation order until their
history retention ends, then forgotten; v2 lookups stop earlier, at ``retention_s``.

Money follows the same clock: a job's price is reserved when it is accepted (so credits
cannot be overdrawn by a burst of submits, 406 otherwise), and charged to the balance
when it ends, in order of end time; its ``remaining_credits`` is the balance right after
its own charge, so the newest value by completion time is the account's current one.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from .config import ServerConfig

JobState = Literal["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]


@dataclass(slots=True)
class Job:
    """One accepted request; every time is on the server clock's monotonic scale.

    A server keeps every job for days (history), so a job is kept small: the body as its
    canonical JSON text, parsed when asked for, and no URL (answers build URLs from the
    address each client used).
    """

    request_id: str
    slug: str
    body_json: str
    seed: int
    samples: int
    width: int
    height: int
    base64: bool
    created: float
    created_wall: float
    start: float
    end: float
    error: str | None
    cost: float
    # The balance right after this job was charged; set by ``JobBook.settle`` at its end.
    remaining_credits: float | None = None
    file_sizes: list[int | None] | None = None
    # A status or result answer has told a client that this job ended (``Stats.detect``).
    detected: bool = False

    @property
    def body(self) -> dict[str, Any]:
        """The request body as sent."""
        body: dict[str, Any] = json.loads(self.body_json)
        return body

    @property
    def prompt(self) -> str:
        prompt = self.body.get("prompt")
        return prompt if isinstance(prompt, str) else ""

    def state_at(self, now: float) -> JobState:
        """The job's state at monotonic time ``now``."""
        if now < self.start:
            return "QUEUED"
        if now < self.end:
            return "PROCESSING"
        return "FAILED" if self.error is not None else "COMPLETED"

    def metrics_at(self, now: float) -> dict[str, float]:
        """The ``metrics`` object: empty while running, full once terminal."""
        if now < self.end:
            return {}
        metrics = {
            "inference_time": round(self.end - self.start, 3),
            "queue_time": round(self.start - self.created, 3),
            "total_time": round(self.end - self.created, 3),
            "cost": self.cost,
        }
        if self.remaining_credits is not None:
            metrics["remaining_credits"] = round(self.remaining_credits, 6)
        return metrics

    def wall_at(self, mono: float) -> float:
        """The wall time of monotonic instant ``mono``."""
        return self.created_wall + (mono - self.created)


class JobBook:
    """Accepted jobs, the worker-free heap, and completion counters."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._jobs: dict[str, Job] = {}
        self._order: deque[Job] = deque()
        self._free_at: list[float] = [0.0] * config.workers
        # (end, seq, job) of jobs not yet counted as finished.
        self._pending: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self.completed = 0
        self.failed = 0
        # What new submits may still spend (the balance less the prices of jobs in flight),
        # and the account's balance as charged so far.
        self.available = config.credits
        self.balance = config.credits
        # Accepted submits per (slug, body) among the kept jobs (``/__stats``).
        self.bodies: Counter[tuple[str, str]] = Counter()

    def restore(self, jobs: list[Job], available: float) -> None:
        """Take back the jobs of a state directory (``journal.py``), oldest first;
        ``available`` is what new submits could spend after the newest job was accepted.

        Each job is charged again when ``settle`` passes its end, in end order, from the
        balance before the first of them, so ``remaining_credits`` come out as they did;
        the workers are busy until the latest ends, as they were.
        """
        self.available = self.balance = available + sum(job.cost for job in jobs)
        for job in jobs:
            self.add(job)
        # A worker is free at the end of its last job, and jobs run one after another on
        # a worker, so the workers' free times are the latest ends.
        workers = len(self._free_at)
        self._free_at = heapq.nlargest(workers, [*self._free_at, *(job.end for job in jobs)])
        heapq.heapify(self._free_at)

    def schedule(self, now: float, duration_s: float) -> tuple[float, float]:
        """Reserve the earliest free worker for ``duration_s``; returns (start, end)."""
        free = heapq.heappop(self._free_at)
        start = max(now, free)
        end = start + duration_s
        heapq.heappush(self._free_at, end)
        return start, end

    def add(self, job: Job) -> None:
        """Record an accepted job and reserve its price."""
        self._jobs[job.request_id] = job
        self._order.append(job)
        self.bodies[job.slug, job.body_json] += 1
        self.available -= job.cost
        heapq.heappush(self._pending, (job.end, next(self._seq), job))

    def settle(self, now: float) -> None:
        """Charge and count finished jobs; forget those past their history retention."""
        while self._pending and self._pending[0][0] <= now:
            _, _, job = heapq.heappop(self._pending)
            self.balance -= job.cost
            job.remaining_credits = self.balance
            if job.error is not None:
                self.failed += 1
            else:
                self.completed += 1
        horizon = self._config.retention_s + self._config.history_retention_s
        while self._order and self._order[0].created + horizon <= now:
            self._forget(self._order.popleft())

    def _forget(self, job: Job) -> None:
        del self._jobs[job.request_id]
        key = (job.slug, job.body_json)
        self.bodies[key] -= 1
        if self.bodies[key] <= 0:
            del self.bodies[key]

    def live(self, request_id: str, now: float) -> Job | None:
        """The job behind a v2 record, or None when unknown or expired."""
        job = self._jobs.get(request_id)
        if job is None or now >= job.created + self._config.retention_s:
            return None
        return job

    def any_age(self, request_id: str) -> Job | None:
        """The job from account history, of any age still kept."""
        return self._jobs.get(request_id)

    def newest_first(self) -> Iterator[Job]:
        """Every kept job, newest first (do not await while iterating)."""
        return reversed(self._order)

    @property
    def in_flight(self) -> int:
        """Jobs accepted but not finished."""
        return len(self._pending)

    def __len__(self) -> int:
        return len(self._jobs)
