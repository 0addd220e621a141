"""The end-of-run summary (``OUT/summary.json``) and the exit code it implies."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from batchgen import lifecycle as lc
from batchgen.engine.runstate import LIMIT_STOPS, STOP_FATAL, STOP_INTERRUPTED, STOP_TERMINATED
from batchgen.exits import (
    EXIT_FATAL_API,
    EXIT_INTERRUPTED,
    EXIT_ITEMS_FAILED,
    EXIT_OK,
    EXIT_TERMINATED,
)
from batchgen.report.morning import morning_report, report_text

if TYPE_CHECKING:
    from batchgen.config import RunConfig
    from batchgen.engine.context import JobContext



def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[min(98, max(0, round(share * 100) - 1))]


def exit_code(ctx: JobContext, counts: dict[str, int]) -> int:
    """0 all done; 1 some items failed or undelivered; 3 fatal API answer, or every model
    refused; 130/143 signal."""
    c, reason = ctx.counters, ctx.stop.reason
    if reason == STOP_TERMINATED:
        return EXIT_TERMINATED
    if reason == STOP_INTERRUPTED:
        return EXIT_INTERRUPTED
    if reason == STOP_FATAL:
        return EXIT_FATAL_API
    if c.refused_models and not (c.accepted or c.adopted or c.resumed_jobs or c.completed):
        return EXIT_FATAL_API  # the refusals left nothing that could run
    if counts.get(lc.FAILED, 0) or c.not_delivered or c.unfinished:
        return EXIT_ITEMS_FAILED
    # Jobs started but not finished (in doubt, submitted, paid and not written): never
    # "done", whatever stopped the run.
    started = sum(counts.get(s, 0) for s in lc.STARTED)
    if started or (counts.get(lc.PENDING, 0) and reason not in LIMIT_STOPS):
        return EXIT_ITEMS_FAILED  # not everything done, and not because the user said so
    return EXIT_OK


def build_summary(cfg: RunConfig, ctx: JobContext, *, counts: dict[str, int],
                  stored: int, spent_before: float, started: float, ended: float,
                  manifest_items: int) -> dict[str, Any]:
    """Everything a person checks in the morning, as one JSON-ready dict.

    ``counts`` are the states of the manifest's items (those this run read); ``stored``
    counts every item in the store, the manifest's or not.
    """
    c = ctx.counters
    seen = sum(counts.values())
    in_flight = sum(counts.get(s, 0) for s in lc.STARTED)
    jobs_polled = max(1, c.result_fetches)
    return {
        "manifest": str(cfg.manifest),
        "out": str(cfg.out),
        "started_at": iso(started),
        "ended_at": iso(ended),
        "duration_s": round(ended - started, 3),
        "stop_reason": ctx.stop.reason,
        "fatal_error": str(ctx.stop.fatal) if ctx.stop.fatal else None,
        "items": {
            "in_manifest": manifest_items,
            "completed": counts.get(lc.COMPLETED, 0),
            "failed": counts.get(lc.FAILED, 0),
            # Items a stopped run never read are pending too.
            "pending": counts.get(lc.PENDING, 0) + max(0, manifest_items - seen),
            "unfinished": in_flight,
            "not_in_manifest": max(0, stored - seen),
        },
        "this_run": {
            "completed": c.completed,
            "failed": c.failed,
            "skipped_done": c.skipped_done,
            "skipped_failed": c.skipped_failed,
            "resumed_jobs": c.resumed_jobs,
            "redownloads": c.redownloads,
            # Jobs the API accepted from this run's POSTs, the ones adopted after a lost
            # answer too (not those of earlier runs adopted on resume).
            "submits": c.accepted + c.adopted_own,
            "submit_attempts": c.submit_attempts,
            "images": c.images,
            "image_bytes": c.image_bytes,
            "status_polls": c.polls,
            "polls_per_job": round(c.polls / jobs_polled, 3),
            "result_fetches": c.result_fetches,
            "rate_limited_429": c.rate_limited,
            "retries": c.retries,
            "expired": c.expired,
            "resubmitted_after_expiry": c.resubmits,
            "retried_failed": c.retried,
            "changed": c.changed,
            "changed_kept": c.changed_kept,
            "changed_in_flight": c.changed_in_flight,
            "not_delivered": c.not_delivered,
            "left_unfinished": c.unfinished,
        },
        "credits": {
            # Duplicates: jobs of lost submits found in the history, paid and undelivered.
            "spent_this_run": round(c.cost + c.duplicate_credits, 6),
            # The store's credits (this run's jobs included) and this run's duplicates.
            "spent_total": round(spent_before + c.duplicate_credits, 6),
            "duplicates": round(c.duplicate_credits, 6),
            "remaining": c.remaining_credits,
        },
        "in_doubt_submits": c.in_doubt,
        "adopted_from_history": c.adopted,
        "recovered_from_history": c.recovered_from_history,
        "possible_duplicate_charges": c.possible_duplicates,
        "duplicate_charges_found": c.duplicates_found,
        "refused_models": dict(c.refused_models),
        "errors_by_cause": dict(c.errors.most_common()),
        "timing": {
            "queue_time_p50": percentile(c.queue_times.values, 0.5),
            "queue_time_p95": percentile(c.queue_times.values, 0.95),
            "inference_time_p50": percentile(c.inference_times.values, 0.5),
            "inference_time_p95": percentile(c.inference_times.values, 0.95),
        },
        "rate": {"rpm_limit": cfg.rpm, "rpm_at_end": ctx.gate.limiter.current_rpm},
        # The in-flight target at the end and why (engine/inflight.py), with its peaks.
        "concurrency": ctx.inflight.summary(),
    }


def describe(summary: dict[str, Any]) -> str:
    """What the terminal or the cron log shows at the end: the morning report (counts,
    credits, timing, top errors) and a line on what this run itself did."""
    run = summary["this_run"]
    report = summary.get("report") or morning_report(summary)
    this_run = (f"this run: {run['completed']} completed, {run['failed']} failed, "
                f"{run['skipped_done']} already done, {run['submits']} submits, "
                f"{run['images']} images, {run['status_polls']} status polls, "
                f"{run['rate_limited_429']} answered 429")
    fatal = f"fatal: {summary['fatal_error']}\n" if summary.get("fatal_error") else ""
    return report_text(report) + this_run + "\n" + fatal
