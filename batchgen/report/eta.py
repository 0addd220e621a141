"""How long a run still has to go, and how many items it will still finish.

A pure function of a ``RunSnapshot`` and the run's ``Bounds``, so that it is tested on
plain numbers. The pace is this run's own (items finished by this process per second
of its life), never the store's lifetime. The work left is what this run will really
do, not the whole manifest:

- items not yet started, cut to what ``--max-items`` still allows (``started_new``
  counts against it) and to what ``--max-cost`` still affords at the price learned so
  far (spent and reserved credits counted); nothing once submitting has stopped;
- plus the jobs in flight.

Finishing takes the rest of a 429 pause (only while something is left to submit), then
the time to submit what is left at the pace, then a drain of the jobs in flight. By
Little's law, jobs in flight divided by throughput is the time one job spends in
flight, so ``in_flight / pace`` is that drain. A submit deadline cuts the submitting
short: what can be submitted before it, then the drain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from batchgen.report.snapshot import Bounds, RunSnapshot

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Eta:
    """Items this run will still finish, and in how long (None until a pace is known).

    ``bound`` names what ends the run before the manifest does (``max_items``,
    ``max_cost``, ``deadline``, or the reason submitting already stopped); ``paused_s``
    is the part of ``seconds`` spent waiting out a 429.
    """

    left: int
    seconds: float | None
    bound: str | None = None
    paused_s: float = 0.0


def estimate(snap: RunSnapshot, bounds: Bounds) -> Eta:
    """The ETA of ``snap`` under ``bounds``; see the module docstring."""
    bound = snap.stop_reason
    to_submit = 0 if snap.stop_reason else snap.queued
    if bounds.max_items is not None and to_submit:
        allowed = max(0, bounds.max_items - snap.started_new)
        if allowed < to_submit:
            to_submit, bound = allowed, "max_items"
    if bounds.max_cost is not None and snap.cost_per_item and to_submit:
        room = bounds.max_cost - snap.credits_spent - snap.credits_reserved
        affordable = max(0, math.floor(room / snap.cost_per_item + _EPSILON))
        if affordable < to_submit:
            to_submit, bound = affordable, "max_cost"
    pause = snap.paused_s if to_submit else 0.0
    if to_submit + snap.in_flight == 0:
        return Eta(0, 0.0, bound)
    finished = snap.completed_this_run + snap.failed_this_run
    if finished == 0 or snap.elapsed_s <= 0:
        return Eta(to_submit + snap.in_flight, None, bound, pause)
    pace = finished / snap.elapsed_s
    submitting_s = pause + to_submit / pace
    if bounds.deadline_wall is not None and to_submit:
        window = max(0.0, bounds.deadline_wall - snap.wall)
        if submitting_s > window:
            to_submit = math.floor(pace * max(0.0, window - pause))
            bound = "deadline"
            pause = pause if to_submit else 0.0
            submitting_s = window if to_submit else 0.0
    drain_s = snap.in_flight / pace
    return Eta(to_submit + snap.in_flight, submitting_s + drain_s, bound, pause)


def format_duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``; ``-`` when unknown. Never ``0 min`` for work
    that is left."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{math.ceil(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
