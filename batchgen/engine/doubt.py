"""The in-doubt procedure, written once: did the POST create a job?

A submit whose outcome is unknown (the connection died after the body was sent, a 2xx
without a request id, a run killed mid-POST) is looked up in the account history: any
job with the item's model and body created since its first intent, and held by no other
item, is what it asked for, and it is adopted. The history may lag behind, so an empty
answer is asked again with doubling waits for ``history_wait_s``. Only then may the item
be sent again, by policy (``lifecycle.may_pay_again``), counted as a possible duplicate
charge. When the history cannot be read, nothing is decided: the item stays in doubt
for the next run, since a wrong guess either pays twice or loses a paid job.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal

from batchgen.api.results import Submitted
from batchgen.engine.context import JobContext
from batchgen.engine.runstate import STOP_FATAL
from batchgen.errors import ApiError, FatalApiError
from batchgen.lifecycle import IN_DOUBT, may_pay_again
from batchgen.manifest.item import Item

log = logging.getLogger(__name__)


async def resolve(ctx: JobContext, item: Item) -> Submitted | Literal["resend"] | None:
    """The adopted job, "resend" (policy allows it), or None (failed, or left in doubt)."""
    record = await ctx.items.get(item.id)
    since = (record.intent_at if record else None) or ctx.clock.wall()
    give_up = ctx.clock.now() + ctx.cfg.history_wait_s
    delay = min(1.0, ctx.cfg.history_wait_s / 4)
    while True:
        try:
            adopted = await _adopt_one(ctx, item, since)
        except FatalApiError as exc:
            # The history refuses the key just as a submit would (401): stop the run.
            ctx.stop.stop(STOP_FATAL, exc)
            leave_in_doubt(ctx, item, f"the history refused the key: {exc}")
            return None
        except ApiError as exc:
            leave_in_doubt(ctx, item, f"the history cannot be read: {exc}")
            return None
        if adopted is not None:
            return adopted
        if ctx.clock.now() + delay > give_up:
            break
        await ctx.clock.sleep(delay)
        delay *= 2
    times = record.in_doubt if record else 1
    why_not = may_pay_again(IN_DOUBT, "in_doubt", in_doubt=times, policy=ctx.policy)
    if why_not is not None:
        await ctx.life.fire("failed", item, message=f"submit outcome unknown; not sent "
                            f"again: {why_not}", error_class="in_doubt")
        return None
    ctx.counters.possible_duplicates += 1
    ctx.counters.resent.append((item, since))
    ctx.budget.charge_lost(item)  # it may have been billed: --max-cost counts it
    log.warning("item %s: no job found for the in-doubt submit; sending again "
                "(a possible duplicate charge)", item.id,
                extra={"event": "item.resend", "item_id": item.id})
    return "resend"


async def _adopt_one(ctx: JobContext, item: Item, since: float) -> Submitted | None:
    """Claim the oldest matching job no item holds; identical POSTs wait meanwhile."""
    async with ctx.twins.looking(item):
        found = await ctx.calls.find(item, since_wall=since)
        claimed = await ctx.items.claimed([f.request_id for f in found])
        for job in found:
            if job.request_id in claimed:
                continue
            sub = dataclasses.replace(ctx.calls.submitted(job.request_id),
                                      created_at=ctx.calls.local_time(job.created_at))
            if await ctx.life.fire("adopted", item, request_id=sub.request_id,
                                   status_url=sub.status_url, response_url=sub.response_url,
                                   submitted_at=sub.created_at):
                return sub
    return None


def leave_in_doubt(ctx: JobContext, item: Item, why: str) -> None:
    """Neither adopt nor resend: the item stays in doubt, and the next run asks again."""
    ctx.counters.unfinished += 1
    ctx.counters.errors["in_doubt_undecided"] += 1
    log.warning("item %s: submit outcome still unknown (%s); left for the next run",
                item.id, why, extra={"event": "item.left_in_doubt", "item_id": item.id})
