"""Counters a test reads instead of mocks (``GET /__stats`` and ``LocalServer.stats()``).

``accepted_by_body`` counts accepted submits per (slug, canonical body as sent), so a test
can prove that nothing was submitted twice: ``duplicate_bodies`` must stay 0. It covers
the jobs the server keeps (the job book's ``bodies``), so it shrinks as history retention
forgets them and a server that runs for days does not grow without end.

``detection_delay_s`` measures how soon clients learn a job ended: for each job, the time
from its end to the first status or result GET that answered it terminal (``count`` of
every job, percentiles over the most recent ``DELAYS_KEPT``).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..manifest.ids import canonical_json
from ..report.summary import percentile

if TYPE_CHECKING:
    from .jobs import Job

DELAYS_KEPT = 100_000


def body_key(slug: str, body: Any) -> str:
    """The ``accepted_by_body`` key of a submit of ``body`` to ``slug``."""
    return f"{slug} {canonical_json(body)}"


@dataclass(slots=True)
class Stats:
    """Mutable counters; ``snapshot`` gives the JSON-ready view."""

    requests: int = 0
    submits_accepted: int = 0
    submits_rejected: Counter[int] = field(default_factory=Counter)
    polls: Counter[str] = field(default_factory=Counter)
    result_fetches: int = 0
    downloads: int = 0
    history: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    detections: int = 0
    detection_delays_s: deque[float] = field(default_factory=lambda: deque(maxlen=DELAYS_KEPT))

    def detect(self, job: Job, delay_s: float) -> None:
        """Record the first terminal answer for ``job``, ``delay_s`` after it ended."""
        if not job.detected:
            job.detected = True
            self.detections += 1
            self.detection_delays_s.append(delay_s)

    def snapshot(
        self,
        *,
        completed: int,
        failed: int,
        in_flight: int,
        bodies: Mapping[tuple[str, str], int],
    ) -> dict[str, Any]:
        """Every counter as plain JSON types (status codes become string keys)."""
        delays = list(self.detection_delays_s)
        return {
            "requests": self.requests,
            "submits_accepted": self.submits_accepted,
            "submits_rejected": {str(k): v for k, v in sorted(self.submits_rejected.items())},
            "polls": dict(self.polls),
            "result_fetches": self.result_fetches,
            "downloads": self.downloads,
            "history": dict(self.history),
            "faults": dict(self.faults),
            "rate_limited": self.rate_limited,
            "jobs_completed": completed,
            "jobs_failed": failed,
            "jobs_in_flight": in_flight,
            "accepted_by_body": {f"{slug} {body}": n for (slug, body), n in bodies.items()},
            "duplicate_bodies": sum(1 for n in bodies.values() if n > 1),
            "detection_delay_s": {
                "count": self.detections,
                "p50": percentile(delays, 0.5),
                "p95": percentile(delays, 0.95),
            },
        }
