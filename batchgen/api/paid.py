"""What the account's recent jobs of a model cost, from the account history (API-FACTS,
"Account history"): each completed request's ``credits_deduction`` with the
``request_body`` it was sent, so that ``batchgen plan`` can fit a price that depends on
the parameters.

A request with several outputs has one row per output, each repeating the cost: rows are
de-duplicated on ``request_id``. The list's envelope is not documented: rows come through
``history.history_rows`` (inside ``ApiClient.history_page``) and ``results.HistoryRow``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from batchgen.api.client import ApiClient
from batchgen.api.results import HistoryRow

PER_PAGE = 100
# The API's date window is at most 31 days.
WINDOW_DAYS = 30
MAX_PAGES = 20


@dataclass(frozen=True, slots=True)
class PaidRequest:
    """One completed request of the account: the body sent and what it cost."""

    request_id: str
    params: dict[str, Any]
    cost: float


async def paid_requests(client: ApiClient, *, model: str, today: date,
                        want: int = 500) -> list[PaidRequest]:
    """Up to ``want`` of the newest completed requests of ``model`` in the last 30 days,
    each once, with a body and a cost."""
    seen: set[str] = set()
    found: list[PaidRequest] = []
    start = today - timedelta(days=WINDOW_DAYS)
    for page in range(1, MAX_PAGES + 1):
        rows = await client.history_page(page=page, per_page=PER_PAGE, from_date=start,
                                         to_date=today, model_name=model, status="COMPLETED")
        if not rows:
            break
        for raw in rows:
            row = HistoryRow.parse(raw)
            if row is None or row.request_id in seen:
                continue
            seen.add(row.request_id)
            cost = row.cost
            # The filter on model_name may match by part of the name: check it again.
            if (row.status not in ("", "COMPLETED") or row.body is None or cost is None
                    or (row.model is not None and row.model != model)):
                continue
            found.append(PaidRequest(row.request_id, row.body, cost))
            if len(found) >= want:
                return found
    return found
