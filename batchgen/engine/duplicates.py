"""After the stages: what the in-doubt submits that were sent again really cost.

An in-doubt submit is sent again only when the history showed no job for it; a lagging
history may have hidden one, and then it was paid for twice. Once the run is done, the
history is asked once more for each item sent again: every job with its model and body,
created since its first intent, that no item holds, is a duplicate that was billed and
will never be delivered. Its credits are counted as spent (``credits_deduction``, else
the price learned), so the bill in the summary is the account's.
"""

from __future__ import annotations

import logging

import anyio

from batchgen.engine.context import JobContext
from batchgen.errors import ApiError

log = logging.getLogger(__name__)

# Items looked at, at most, and the time the look may take in all.
MAX_ITEMS = 100
TIME_LIMIT_S = 60.0


async def count_duplicates(ctx: JobContext) -> None:
    """Count the jobs of items sent again that nobody holds; best effort, bounded."""
    resent = ctx.counters.resent[:MAX_ITEMS]
    if not resent:
        return
    with anyio.move_on_after(TIME_LIMIT_S):
        for item, since in resent:
            if await ctx.items.unsettled_twins(item):
                continue  # an identical item may still claim one of those jobs
            try:
                found = await ctx.calls.find(item, since_wall=since)
            except ApiError as exc:
                log.warning("cannot count duplicate charges: %s", exc,
                            extra={"event": "run.duplicates_unknown"})
                return
            claimed = await ctx.items.claimed([job.request_id for job in found])
            for job in found:
                if job.request_id in claimed or job.status == "FAILED":
                    continue
                cost = job.cost if job.cost is not None else ctx.budget.price(item)
                ctx.counters.duplicates_found += 1
                ctx.counters.duplicate_credits += cost or 0.0
                log.warning("item %s: job %s was created by a submit whose answer was lost "
                            "and is paid for without being delivered", item.id,
                            job.request_id, extra={"event": "item.duplicate_charge",
                                                   "item_id": item.id,
                                                   "request_id": job.request_id})
