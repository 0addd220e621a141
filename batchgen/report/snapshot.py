"""What a run has done so far, as plain numbers: the one input of progress lines, the
ETA and the metrics file, so that none of them reads the engine's objects.

The engine fills a ``RunSnapshot`` whenever asked (every progress tick); ``Bounds`` are
the limits the user set. ``from_summary`` makes one from a finished run's summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The item states a snapshot counts, in a fixed order (the metrics file's labels).
ITEM_STATES = ("completed", "failed", "in_flight", "pending")


@dataclass(frozen=True, kw_only=True, slots=True)
class Bounds:
    """The limits of a run (``--max-items``, ``--max-cost``, the submit deadline)."""

    max_items: int | None = None
    max_cost: float | None = None
    deadline_wall: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSnapshot:
    """A run's figures at one moment. "This run" counts what this process did; the item
    counts include what earlier runs into the same OUT finished."""

    elapsed_s: float  # since this run started (monotonic)
    wall: float  # epoch seconds now
    total: int  # items in the manifest
    completed: int  # items done, earlier runs included
    failed: int  # items failed, earlier runs included
    in_flight: int  # jobs started and not finished
    in_flight_target: int = 0  # how many may be (engine/inflight.py)
    completed_this_run: int = 0
    failed_this_run: int = 0
    started_new: int = 0  # new items posted this run: what --max-items counts
    images: int = 0  # images written this run
    submits: int = 0
    polls: int = 0
    rate_limited: int = 0  # answers 429
    retries: int = 0
    in_doubt: int = 0  # submits whose outcome was unknown
    credits_spent: float = 0.0  # this run
    credits_reserved: float = 0.0  # expected cost of jobs in flight (--max-cost)
    cost_per_item: float | None = None  # the price learned so far
    paused_s: float = 0.0  # seconds left of a 429 pause on submits
    stop_reason: str | None = None  # set once submitting has stopped

    @property
    def queued(self) -> int:
        """Items of the manifest not started yet (nor finished by an earlier run)."""
        return max(0, self.total - self.completed - self.failed - self.in_flight)

    @property
    def items(self) -> dict[str, int]:
        """Items per state of ``ITEM_STATES``."""
        return {"completed": self.completed, "failed": self.failed,
                "in_flight": self.in_flight, "pending": self.queued}

    @property
    def images_per_min(self) -> float:
        return self.images * 60 / self.elapsed_s if self.elapsed_s > 0 else 0.0


# The snapshot's counts in a summary (report/summary.py): field -> (section, key); the
# empty section is the summary's top level.
_SUMMARY_COUNTS = {
    "total": ("items", "in_manifest"),
    "completed": ("items", "completed"),
    "failed": ("items", "failed"),
    "in_flight": ("items", "unfinished"),
    "completed_this_run": ("this_run", "completed"),
    "failed_this_run": ("this_run", "failed"),
    "images": ("this_run", "images"),
    "submits": ("this_run", "submits"),
    "polls": ("this_run", "status_polls"),
    "rate_limited": ("this_run", "rate_limited_429"),
    "retries": ("this_run", "retries"),
    "in_doubt": ("", "in_doubt_submits"),
}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else (
        None)


def from_summary(summary: Mapping[str, Any]) -> RunSnapshot:
    """The figures of a finished run, from its ``summary.json`` dict (missing: 0)."""
    counts: dict[str, int] = {}
    for name, (section, key) in _SUMMARY_COUNTS.items():
        part = (summary.get(section) or {}) if section else summary
        counts[name] = int(_number(part.get(key)) or 0)
    ended = summary.get("ended_at")
    return RunSnapshot(
        elapsed_s=_number(summary.get("duration_s")) or 0.0,
        wall=datetime.fromisoformat(ended).timestamp() if isinstance(ended, str) else 0.0,
        credits_spent=_number((summary.get("credits") or {}).get("spent_this_run")) or 0.0,
        stop_reason=summary.get("stop_reason"),
        **counts,
    )
