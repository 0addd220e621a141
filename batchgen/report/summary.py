"""The end-of-run summary (``OUT/summary.json``) and the exit code it implies."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from batchgen.engine.runstate import LIMIT_STOPS, STOP_FATAL, STOP_INTERRUPTED, STOP_TERMINATED
from batchgen.report.morning import morning_report, report_text
from batchgen.store import db as st

if TYPE_CHECKING:
    from batchgen.config import RunConfig
    from batchgen.engine.runtime import Runtime

EXIT_OK, EXIT_ITEMS_FAILED, EXIT_FATAL_API = 0, 1, 3
# A run that ended on an unexpected error: its summary says so, with the error.
EXIT_CRASHED = EXIT_ITEMS_FAILED
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[min(98, max(0, round(share * 100) - 1))]


def exit_code(rt: Runtime, counts: dict[str, int]) -> int:
    """0 all done; 1 some items failed or undelivered; 3 fatal API answer; 130/143 signal."""
    if rt.stop.reason == STOP_TERMINATED:
        return EXIT_TERMINATED
    if rt.stop.reason == STOP_INTERRUPTED:
        return EXIT_INTERRUPTED
    if rt.stop.reason == STOP_FATAL:
        return EXIT_FATAL_API
    if counts.get(st.FAILED, 0) or rt.counters.not_delivered or rt.counters.unfinished:
        return EXIT_ITEMS_FAILED
    # Jobs started but not finished (in doubt, submitted, paid and not written): never
    # "done", whatever stopped the run.
    started = sum(counts.get(s, 0) for s in (st.SUBMITTING, st.IN_DOUBT, st.SUBMITTED,
                                             st.FETCHED))
    if started or (counts.get(st.PENDING, 0) and rt.stop.reason not in LIMIT_STOPS):
        return EXIT_ITEMS_FAILED  # not everything done, and not because the user said so
    return EXIT_OK


def build_summary(cfg: RunConfig, rt: Runtime, *, counts: dict[str, int],
                  totals: dict[str, float], started: float, ended: float,
                  manifest_items: int) -> dict[str, Any]:
    """Everything a person checks in the morning, as one JSON-ready dict."""
    c = rt.counters
    stored = sum(counts.values())
    in_flight = sum(counts.get(s, 0) for s in (st.SUBMITTING, st.IN_DOUBT, st.SUBMITTED,
                                               st.FETCHED))
    jobs_polled = max(1, c.result_fetches)
    return {
        "manifest": str(cfg.manifest),
        "out": str(cfg.out),
        "started_at": iso(started),
        "ended_at": iso(ended),
        "duration_s": round(ended - started, 3),
        "stop_reason": rt.stop.reason,
        "fatal_error": str(rt.stop.fatal) if rt.stop.fatal else None,
        "items": {
            "in_manifest": manifest_items,
            "completed": counts.get(st.COMPLETED, 0),
            "failed": counts.get(st.FAILED, 0),
            "pending": counts.get(st.PENDING, 0),
            "unfinished": in_flight,
            "not_in_manifest": max(0, stored - manifest_items),
        },
        "this_run": {
            "completed": c.completed,
            "failed": c.failed,
            "skipped_done": c.skipped_done,
            "skipped_failed": c.skipped_failed,
            "resumed_jobs": c.resumed_jobs,
            "redownloads": c.redownloads,
            "submits": c.submits,
            "images": c.images,
            "image_bytes": c.image_bytes,
            "status_polls": c.polls,
            "polls_per_job": round(c.polls / jobs_polled, 3),
            "result_fetches": c.result_fetches,
            "rate_limited_429": c.rate_limited,
            "retries": c.retries,
            "expired": c.expired,
            "resubmitted_after_expiry": c.resubmits,
            "not_delivered": c.not_delivered,
            "left_unfinished": c.unfinished,
        },
        "credits": {
            "spent_this_run": round(c.cost, 6),
            "spent_total": round(float(totals.get("cost", 0.0)), 6),
            "remaining": c.remaining_credits,
        },
        "in_doubt_submits": c.in_doubt,
        "adopted_from_history": c.adopted,
        "recovered_from_history": c.recovered_from_history,
        "possible_duplicate_charges": c.possible_duplicates,
        "errors_by_cause": dict(c.errors.most_common()),
        "timing": {
            "queue_time_p50": percentile(c.queue_times.values, 0.5),
            "queue_time_p95": percentile(c.queue_times.values, 0.95),
            "inference_time_p50": percentile(c.inference_times.values, 0.5),
            "inference_time_p95": percentile(c.inference_times.values, 0.95),
        },
        "rate": {"rpm_limit": cfg.rpm, "rpm_at_end": rt.limiter.current_rpm},
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
