"""``--submit-for`` durations and ``--stop-submitting-at`` clock times."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from batchgen import errors

# A --stop-submitting-at time that passed less than this long ago has passed (a late or
# delayed start); an older one means its next occurrence (an evening start).
PASSED_WITHIN_S = 6 * 3600.0


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90``, ``45m``, ``7h30m`` or ``1h5m30s``."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
                         r"(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not match or not any(match.groups()):
        raise errors.UsageError(f"--submit-for: not a duration: {text!r} (try 7h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def next_clock_time(text: str, now: float) -> float:
    """The local wall time ``HH:MM`` that bounds a run started at ``now``, as epoch
    seconds: the coming one, unless the last one passed less than ``PASSED_WITHIN_S``
    ago. A late start at 07:05 (or 09:00, after a boot) with 07:00 finds the time passed
    (submit nothing, drain, exit 0), where a start at 18:30 or 23:00 submits until the
    next morning's 07:00."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise errors.UsageError(f"--stop-submitting-at: not a time HH:MM: {text!r}")
    current = datetime.fromtimestamp(now)
    target = current.replace(hour=int(match[1]), minute=int(match[2]), second=0,
                             microsecond=0)
    if target.timestamp() <= now - PASSED_WITHIN_S:
        target += timedelta(days=1)
    elif (target - timedelta(days=1)).timestamp() > now - PASSED_WITHIN_S:
        target -= timedelta(days=1)  # yesterday's passed only a little while ago
    return target.timestamp()


def deadline(stop_submitting_at: str | None, submit_for: str | None,
             now: float) -> float | None:
    """The submit deadline the flags give, as epoch seconds; None without one."""
    if stop_submitting_at:
        return next_clock_time(stop_submitting_at, now)
    if submit_for:
        return now + parse_duration(submit_for)
    return None
