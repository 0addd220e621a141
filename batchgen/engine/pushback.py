"""When the API pushes back on the jobs in flight, and by how much to hold back.

Two signs (issue 12): 5xx answers for more than SERVER_ERROR_SHARE of the recent calls
(below that they are the odd failure that retries absorb), and a provider queue that
grows while the inference time stays flat (its queue is full: more jobs in flight would
only wait longer in it). Either cuts ``factor`` by BETA, at most once per guard time
(the caller's: a hold, or for the queue the time a backlogged job takes, since a queue
time is only learned when its job ends); RECOVERY of it comes back per hold's worth of
finished jobs. The in-flight target (``engine.inflight``) is multiplied by ``factor``.
A 429 is not judged here: the limiter cuts its rate for it, and the target follows.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, deque
from typing import Literal

from batchgen.clock import Clock

BETA = 0.7
MIN_FACTOR = 0.1
RECOVERY = 0.1
SERVER_ERROR_SHARE = 0.1
ANSWERS_KEPT = 50
ANSWERS_JUDGED = 20
# Queue time is judged per window of finished jobs, against the lowest window median of
# the last QUEUE_WINDOWS_KEPT: it has grown when it rose by more than QUEUE_GROWTH_S and
# QUEUE_GROWTH_SHARE of an inference, while the inference time rose by less than
# INFERENCE_FLAT times.
QUEUE_WINDOW = 20
QUEUE_WINDOWS_KEPT = 8
QUEUE_GROWTH_S = 0.5
QUEUE_GROWTH_SHARE = 0.25
INFERENCE_FLAT = 1.2

Answer = Literal["ok", "5xx", "429"]
_REASONS = {"5xx": "5xx answers", "queue": "queue time growing"}


class Pushback:
    """The pushback factor, its reason, and what it was learned from."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.factor = 1.0
        self.reason = ""
        self.counts: Counter[str] = Counter()
        self._guard_until = -math.inf
        self._answers: deque[bool] = deque(maxlen=ANSWERS_KEPT)
        self._server_errors = 0
        self._window: list[tuple[float, float]] = []
        self._medians: deque[tuple[float, float]] = deque(maxlen=QUEUE_WINDOWS_KEPT)
        self.queue_floor = math.inf  # the lowest window median of queue time so far

    def answered(self, answer: Answer, *, guard_s: float) -> None:
        """One API answer: 5xx beyond their share cut; 429s are only counted."""
        if answer == "429":
            self.counts["429"] += 1
            return
        error = answer == "5xx"
        if len(self._answers) == self._answers.maxlen:
            self._server_errors -= self._answers[0]
        self._answers.append(error)
        self._server_errors += error
        if error and len(self._answers) >= ANSWERS_JUDGED \
                and self._server_errors > SERVER_ERROR_SHARE * len(self._answers):
            self.cut("5xx", guard_s=guard_s)

    def backlog_s(self, queue_s: float | None) -> float:
        """Queue time above the lowest this run has seen: the provider's backlog."""
        return max(0.0, queue_s - self.queue_floor) if queue_s is not None else 0.0

    def finished(self, queue_s: float | None, inference_s: float | None, *, guard_s: float,
                 jobs_per_hold: float) -> None:
        """A job ended: watch the queue, and grow the factor back when no cut is recent."""
        if queue_s is not None and inference_s is not None:
            self._watch_queue(queue_s, inference_s, guard_s)
        if self.factor < 1 and self._clock.now() >= self._guard_until:
            self.factor = min(1.0, self.factor + RECOVERY / max(1.0, jobs_per_hold))

    def _watch_queue(self, queue_s: float, inference_s: float, guard_s: float) -> None:
        self._window.append((queue_s, inference_s))
        if len(self._window) < QUEUE_WINDOW:
            return
        queue = statistics.median(q for q, _ in self._window)
        inference = statistics.median(i for _, i in self._window)
        self._window.clear()
        earlier = list(self._medians)
        self._medians.append((queue, inference))
        self.queue_floor = min(self.queue_floor, queue)
        if not earlier:
            return
        lowest = min(q for q, _ in earlier)
        grew = queue - lowest > max(QUEUE_GROWTH_S, QUEUE_GROWTH_SHARE * inference)
        if grew and queue > earlier[-1][0] and inference <= INFERENCE_FLAT * earlier[-1][1]:
            self.cut("queue", guard_s=guard_s)

    def cut(self, kind: str, *, guard_s: float) -> None:
        """Cut the factor, unless a cut was made within the guard time."""
        self.counts[kind] += 1
        now = self._clock.now()
        if now < self._guard_until:
            return
        self.factor = max(MIN_FACTOR, self.factor * BETA)
        self.reason = _REASONS.get(kind, kind)
        self._guard_until = now + guard_s
