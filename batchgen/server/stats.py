"""Counters a test reads instead of mocks (``GET /__stats`` and ``LocalServer.stats()``).

``accepted_by_body`` counts accepted submits per (slug, canonical body as sent), so a test
can prove that nothing was submitted twice: ``duplicate_bodies`` must stay 0.

``detection_delay_s`` measures how soon clients learn a job ended: for each job, the time
from its end to the first status or result GET that answered it terminal.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..manifest.ids import canonical_json
from ..report.summary import percentile


def body_key(slug: str, body: Any) -> str:
    """The ``accepted_by_body`` key of one submit."""
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
    accepted_by_body: Counter[str] = field(default_factory=Counter)
    detected: set[str] = field(default_factory=set)
    detection_delays_s: list[float] = field(default_factory=list)

    def detect(self, request_id: str, delay_s: float) -> None:
        """Record the first terminal answer for a job, ``delay_s`` after it ended."""
        if request_id not in self.detected:
            self.detected.add(request_id)
            self.detection_delays_s.append(delay_s)

    def accept(self, slug: str, body: Any) -> None:
        self.submits_accepted += 1
        self.accepted_by_body[body_key(slug, body)] += 1

    def snapshot(self, *, completed: int, failed: int, in_flight: int) -> dict[str, Any]:
        """Every counter as plain JSON types (status codes become string keys)."""
        delays = self.detection_delays_s
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
            "accepted_by_body": dict(self.accepted_by_body),
            "duplicate_bodies": sum(1 for n in self.accepted_by_body.values() if n > 1),
            "detection_delay_s": {
                "count": len(delays),
                "p50": percentile(delays, 0.5),
                "p95": percentile(delays, 0.95),
            },
        }
