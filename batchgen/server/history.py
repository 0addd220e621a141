"""The account-history API (API-FACTS "Account history"), served on the same host.

Rows outlive the v2 records by ``history_retention_s``; a job shows up only
``history_lag_s`` after its submit, so clients can be tested against a lagging history.
A request with several outputs appears once per output, each row repeating the cost.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from .api import base_url, file_url
from .jobs import Job
from .keys import STATE
from .responses import json_error
from .state import ServerState

MAX_WINDOW_DAYS = 31
DEFAULT_WINDOW_DAYS = 7
MAX_PER_PAGE = 100
HISTORY_STATUSES = ("COMPLETED", "FAILED", "PENDING")


def iso(wall_s: float) -> str:
    """An ISO 8601 UTC timestamp with milliseconds."""
    stamp = datetime.fromtimestamp(wall_s, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _status(job: Job, now: float) -> str:
    state = job.state_at(now)
    return "PENDING" if state in ("QUEUED", "PROCESSING") else state


def _row_count(job: Job, now: float) -> int:
    return job.samples if job.state_at(now) == "COMPLETED" else 1


def rows_of(job: Job, now: float, base: str) -> list[dict[str, Any]]:
    """The history rows of one job: one per output once COMPLETED, else one."""
    status = _status(job, now)
    done = status != "PENDING"
    row = {
        "request_id": job.request_id,
        "model_name": job.slug,
        "model_status": status,
        "credits_deduction": job.cost if status == "COMPLETED" else 0.0,
        "request_body": job.body,
        "generation_url": None,
        "latency_ms": round((job.end - job.created) * 1000) if done else None,
        "created_at": iso(job.created_wall),
        "updated_at": iso(job.wall_at(job.end if done else job.created)),
        "error": job.error if status == "FAILED" else None,
    }
    if status != "COMPLETED":
        return [row]
    return [{**row, "generation_url": file_url(base, job, k)} for k in range(job.samples)]


def _visible(state: ServerState, job: Job, now: float) -> bool:
    return now >= job.created + state.config.history_lag_s


def _int_arg(query: Any, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    value = int(raw)
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return value


def _date_arg(query: Any, name: str, default: date) -> date:
    raw = query.get(name)
    return default if raw is None else date.fromisoformat(raw)


async def list_history(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.history["list"] += 1
    now = state.now()
    query = request.query
    today = datetime.fromtimestamp(state.clock.wall(), UTC).date()
    try:
        page = _int_arg(query, "page", 1, 1, 1_000_000)
        per_page = _int_arg(query, "per_page", 20, 1, MAX_PER_PAGE)
        to_date = _date_arg(query, "to_date", today)
        from_date = _date_arg(query, "from_date", to_date - timedelta(DEFAULT_WINDOW_DAYS))
    except ValueError as exc:
        return json_error(state, 400, f"Invalid query: {exc}")
    if from_date > to_date or (to_date - from_date).days > MAX_WINDOW_DAYS:
        return json_error(state, 400, f"Date window must span 0..{MAX_WINDOW_DAYS} days")
    status = query.get("status")
    if status is not None and status not in HISTORY_STATUSES:
        return json_error(state, 400, f"status must be one of {', '.join(HISTORY_STATUSES)}")
    model = query.get("model_name")
    # Rows are built for the requested page only: a server that keeps days of history
    # scans its jobs once per page, and makes dictionaries for a hundred rows at most.
    first, total = (page - 1) * per_page, 0
    rows: list[dict[str, Any]] = []
    for job in state.book.newest_first():
        created = datetime.fromtimestamp(job.created_wall, UTC).date()
        if not _visible(state, job, now) or not from_date <= created <= to_date:
            continue
        if model and model not in job.slug:
            continue
        if status is not None and _status(job, now) != status:
            continue
        count = _row_count(job, now)
        if total + count > first and len(rows) < per_page:
            skip = max(0, first - total)
            rows.extend(rows_of(job, now, base_url(request))[skip : skip + per_page - len(rows)])
        total += count
    return web.json_response({"data": rows, "page": page, "per_page": per_page, "total": total})


async def get_history(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.history["get"] += 1
    now = state.now()
    job = state.book.any_age(request.match_info["request_id"])
    if job is None or not _visible(state, job, now):
        return json_error(state, 404, "Request not found")
    rows = rows_of(job, now, base_url(request))
    return web.json_response(
        {**rows[0], "generation_urls": [r["generation_url"] for r in rows if r["generation_url"]]}
    )
