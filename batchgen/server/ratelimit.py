"""The server side of rate limiting: a sliding 60-second window per API key.

The window's length is a setting only so tests can watch a whole limit-pause-resume
cycle in seconds; the real API's is a minute (API-FACTS, "Rate limits").

Only accepted requests enter the window (API-FACTS: a rejected request is not billed and,
here, not counted). When the window is full the answer is 429 with the moment the oldest
request leaves it, in ``x-rate-limit-reset-at-utc``, and no Retry-After.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import UTC, datetime

WINDOW_S = 60.0


class SlidingWindow:
    """At most ``limit`` accepted requests per key in any ``window_s`` seconds."""

    def __init__(self, limit: int | None, window_s: float = WINDOW_S) -> None:
        self._limit = limit
        self._window_s = window_s
        self._hits: dict[str, deque[float]] = {}

    def blocked_until(self, key: str, now: float) -> float | None:
        """None when a request may pass now, else the monotonic time a slot frees."""
        if self._limit is None:
            return None
        hits = self._hits.get(key)
        if hits is None:
            return None
        while hits and hits[0] + self._window_s <= now:
            hits.popleft()
        if len(hits) < self._limit:
            return None
        return hits[0] + self._window_s

    def record(self, key: str, now: float) -> None:
        """Count an accepted request."""
        if self._limit is not None:
            self._hits.setdefault(key, deque()).append(now)


def reset_header(wall_s: float) -> str:
    """ISO 8601 UTC, whole seconds rounded up so waiting until then is always enough."""
    moment = datetime.fromtimestamp(math.ceil(wall_s), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
