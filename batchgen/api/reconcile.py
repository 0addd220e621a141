"""Asking the account history what the v2 records cannot tell (API-FACTS, "Account history").

Two questions, both answered without paying again:

* **recover**: a job whose v2 record expired (404 after the retention hour): its output
  URLs and cost, looked up by request id, of any age.
* **find**: a submit whose outcome is unknown (the connection died after the body was
  sent): did it create a job? Look for requests of the same model whose
  ``request_body`` equals what we sent, created in the window since the item's first
  intent (in the server's time). Any of them gives the item what it asked for; the
  caller claims one that no other item holds.

The list's envelope is not documented, so rows are taken by ``history.history_rows``
and parsed by ``results.HistoryRow``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from batchgen.api.client import ApiClient
from batchgen.api.results import Found, HistoryRow
from batchgen.manifest.ids import canonical_json

PER_PAGE = 100
# Pages read at most per look-up: 5,000 rows, newest first, is hours of a busy account.
MAX_PAGES = 50


@dataclass(frozen=True, slots=True)
class Window:
    """Creation times to look at, in the server's epoch seconds, both ends included."""

    since: float
    until: float

    def holds(self, when: float | None) -> bool:
        return when is None or self.since <= when <= self.until


async def _rows(client: ApiClient, *, model: str, window: Window) -> list[HistoryRow]:
    """Rows of ``model`` created in ``window``, newest first."""
    end = datetime.fromtimestamp(window.until, UTC).date()
    start = max(datetime.fromtimestamp(window.since, UTC).date(),
                end - timedelta(days=31))  # the API's window is at most 31 days
    kept: list[HistoryRow] = []
    for page in range(1, MAX_PAGES + 1):
        rows = await client.history_page(page=page, per_page=PER_PAGE, from_date=start,
                                         to_date=end, model_name=model)
        if not rows:
            break
        oldest = None
        for raw in rows:
            row = HistoryRow.parse(raw)
            if row is None:
                continue
            if row.created_at is not None:
                oldest = row.created_at if oldest is None else min(oldest, row.created_at)
            if window.holds(row.created_at):
                kept.append(row)
        if oldest is not None and oldest < window.since:
            break  # newest first: everything further is older than the window
    return kept


async def jobs_since(client: ApiClient, *, model: str, window: Window) -> list[HistoryRow]:
    """Every request of ``model`` created in ``window`` that names its body, one row each."""
    seen: dict[str, HistoryRow] = {}
    for row in await _rows(client, model=model, window=window):
        if row.body is not None:
            seen.setdefault(row.request_id, row)
    return list(seen.values())


async def recover(client: ApiClient, request_id: str, *, model: str, samples: int,
                  window: Window) -> Found | None:
    """What the history knows of ``request_id``; every output URL when it can find them."""
    raw = await client.history_request(request_id)
    row = HistoryRow.parse({"request_id": request_id, **(raw or {})}) if raw else None
    if row is None:
        return None
    found = Found.merge([row])
    if found.status != "COMPLETED" or len(found.urls) >= samples:
        return found
    more = [r for r in await _rows(client, model=model, window=window)
            if r.request_id == request_id]
    return Found.merge([row, *more])


async def find(client: ApiClient, *, model: str, params: dict[str, Any],
               window: Window) -> list[Found]:
    """Every request of ``model`` with our exact body created in ``window``, oldest first."""
    wanted = canonical_json(params)
    by_id: dict[str, list[HistoryRow]] = {}
    for row in await _rows(client, model=model, window=window):
        if row.body is not None and canonical_json(row.body) == wanted:
            by_id.setdefault(row.request_id, []).append(row)
    found = [Found.merge(rows) for rows in by_id.values()]
    return sorted(found, key=lambda f: f.created_at or 0.0)
