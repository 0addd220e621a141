"""Asking the account history what the v2 records cannot tell (API-FACTS, "Account history").

Two questions, both answered without paying again:

* **recover**: a job whose v2 record expired (404 after the retention hour): its output
  URLs and cost, looked up by request id, of any age.
* **find**: a submit whose outcome is unknown (the connection died after the body was
  sent): did it create a job? Look for requests of the same model whose
  ``request_body`` equals what we sent, created in the time window of our intent; the
  caller adopts one only when exactly one is not claimed by another item.

The list's envelope is not documented, so rows are taken by ``history.history_rows``;
``request_body`` may come as an object or as a JSON string.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from batchgen.api.client import ApiClient
from batchgen.api.results import number
from batchgen.manifest.ids import canonical_json

log = logging.getLogger(__name__)

PER_PAGE = 100
# Pages read at most per look-up: 5,000 rows, newest first, is hours of a busy account.
MAX_PAGES = 50
# Our wall clock and the server's may disagree a little; widen windows by this much.
SKEW_S = 120.0


@dataclass(frozen=True, slots=True)
class Found:
    """A request the history knows: its id, state, outputs and cost."""

    request_id: str
    status: str
    urls: tuple[str, ...]
    cost: float | None
    error: str | None


def parse_when(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp (or a number), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / (1000 if value > 1e11 else 1)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def body_of(row: dict[str, Any]) -> dict[str, Any] | None:
    body = row.get("request_body")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    return body if isinstance(body, dict) else None


def _status(row: dict[str, Any]) -> str:
    return str(row.get("model_status") or row.get("status") or "").upper()


def _urls(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for row in rows:
        many = row.get("generation_urls")
        for url in [*(many if isinstance(many, list) else []), row.get("generation_url")]:
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                seen.setdefault(url, None)
    return tuple(seen)


def _found(request_id: str, rows: list[dict[str, Any]]) -> Found:
    first = rows[0]
    error = first.get("error")
    return Found(request_id=request_id, status=_status(first), urls=_urls(rows),
                 cost=number(first.get("credits_deduction")),
                 error=str(error) if error else None)


async def _pages(client: ApiClient, *, model: str, since: float, until: float,
                 keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Rows of ``model`` created in [since, until] that ``keep`` accepts, newest first."""
    start = datetime.fromtimestamp(since - SKEW_S, UTC).date()
    end = datetime.fromtimestamp(until + SKEW_S, UTC).date()
    start = max(start, end - timedelta(days=31))  # the API's window is at most 31 days
    kept: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        rows = await client.history_page(page=page, per_page=PER_PAGE, from_date=start,
                                         to_date=end, model_name=model)
        if not rows:
            break
        oldest = None
        for row in rows:
            created = parse_when(row.get("created_at"))
            if created is not None:
                oldest = created if oldest is None else min(oldest, created)
                if not since - SKEW_S <= created <= until + SKEW_S:
                    continue
            if keep(row):
                kept.append(row)
        if oldest is not None and oldest < since - SKEW_S:
            break  # newest first: everything further is older than the window
    return kept


async def recover(client: ApiClient, request_id: str, *, model: str, samples: int,
                  submitted_at: float, now: float) -> Found | None:
    """What the history knows of ``request_id``; every output URL when it can find them."""
    row = await client.history_request(request_id)
    if row is None:
        return None
    found = _found(request_id, [row])
    if found.status != "COMPLETED" or len(found.urls) >= samples:
        return found
    rows = await _pages(client, model=model, since=submitted_at, until=now,
                        keep=lambda r: r.get("request_id") == request_id)
    return _found(request_id, [row, *rows])


async def find(client: ApiClient, *, model: str, params: dict[str, Any], intent_at: float,
               now: float) -> list[Found]:
    """Every request of ``model`` with our exact body created since ``intent_at``.

    The caller removes the ones other items have claimed and adopts only a sole survivor.
    """
    wanted = canonical_json(params)

    def same(row: dict[str, Any]) -> bool:
        body = body_of(row)
        return (body is not None and isinstance(row.get("request_id"), str)
                and canonical_json(body) == wanted)

    rows = await _pages(client, model=model, since=intent_at, until=now, keep=same)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_id.setdefault(str(row["request_id"]), []).append(row)
    return [_found(request_id, matched) for request_id, matched in by_id.items()]
