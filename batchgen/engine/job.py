"""One item's life on the API, from wherever it stands to a harvest (or why not).

Where it stands is its stored state (``lifecycle``): new or pending items are submitted;
an interrupted submit is settled first (``engine.doubt``); a known job is followed by
its request id; a paid job whose images are lost is fetched again, never paid again.
Each outcome is one lifecycle event; whether to pay again is ``may_pay_again``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from batchgen.api.results import Submitted
from batchgen.engine import doubt
from batchgen.engine.budget import Reservation
from batchgen.engine.context import JobContext
from batchgen.engine.follow import (
    Harvest,
    ResultMismatch,
    Undecided,
    fetch,
    from_history,
    poll_until_done,
)
from batchgen.engine.runstate import STOP_FATAL
from batchgen.engine.submit import submit
from batchgen.errors import (
    ApiError,
    BadResponseError,
    FatalApiError,
    JobFailedError,
    RejectedError,
    RequestExpiredError,
)
from batchgen.lifecycle import (
    FETCHED,
    HAS_JOB,
    OUTCOME_UNKNOWN,
    PAID,
    SUBMITTED,
    SUBMITTING,
    State,
    may_pay_again,
)
from batchgen.manifest.item import Item
from batchgen.store.items import ItemRecord

log = logging.getLogger(__name__)

Deliver = Callable[[Harvest], Awaitable[None]]
# Words of a FAILED job's error that mean a content/safety block (API-FACTS: "A
# content/safety block is also FAILED"); "RAI" is Azure's "Responsible AI" filter.
_SAFETY = re.compile(r"\b(safety|nsfw|blocked|content policy|rai)\b", re.IGNORECASE)


def failure_class(exc: JobFailedError) -> str:
    return "safety_block" if _SAFETY.search(str(exc)) else "job_failed"


async def run_job(ctx: JobContext, item: Item, record: ItemRecord | None,
                  deliver: Deliver) -> None:
    """Carry one item from wherever it stands to a harvest, or record why it cannot."""
    state = record.state if record else State.PENDING
    sub: Submitted | None = None
    submitted_at = ctx.clock.wall()
    if record is not None and record.request_id and state in HAS_JOB:
        ctx.counters.resumed_jobs += 1
        sub = ctx.calls.submitted(record.request_id, record.status_url, record.response_url)
        submitted_at = record.submitted_at or submitted_at
    elif state in OUTCOME_UNKNOWN:
        # A run died between intent and answer: did that POST create a job?
        if state == SUBMITTING:
            await ctx.life.fire("doubted", item, message="the run stopped mid-submit",
                                error_class="in_doubt")
        found = await doubt.resolve(ctx, item)
        if found is None:
            return
        if isinstance(found, Submitted):
            sub = found
            submitted_at = found.created_at or submitted_at
    await _drive(ctx, item, sub, submitted_at, paid=state in PAID, deliver=deliver)


async def _drive(ctx: JobContext, item: Item, sub: Submitted | None, submitted_at: float,
                 *, paid: bool, deliver: Deliver) -> None:
    reservation = Reservation()
    while True:
        if sub is None:
            posted = await submit(ctx, item)
            if posted is None:
                return
            sub, reservation = posted
            submitted_at, paid = sub.created_at or ctx.clock.wall(), False
        try:
            harvest = await _follow(ctx, item, sub, submitted_at, charge=not paid)
        except RequestExpiredError as exc:
            if not await _expired(ctx, item, str(exc), paid=paid):
                return
            sub = None
            continue
        except JobFailedError as exc:
            if not await _job_failed(ctx, item, sub, exc):
                return
            sub = None
            continue
        except Undecided as exc:
            await _unfinished(ctx, item, "history", str(exc))
            return
        except FatalApiError as exc:
            # The key stopped working mid-run: stop submitting; the job stays recorded.
            ctx.stop.stop(STOP_FATAL, exc)
            await _unfinished(ctx, item, "fatal", str(exc))
            return
        except (ResultMismatch, RejectedError) as exc:
            await ctx.life.fire("failed", item, message=str(exc), error_class="bad_result")
            return
        except (BadResponseError, ApiError) as exc:
            # Polls or the result GET kept failing past every retry (a GET is safe to
            # repeat). The job may well be done: it keeps its request id for the next run.
            await _unfinished(ctx, item, "poll", str(exc))
            return
        finally:
            # After fetch() charged the real cost, so the budget never undercounts.
            ctx.budget.release(reservation)
            reservation = Reservation()
        await deliver(harvest)
        return


async def _follow(ctx: JobContext, item: Item, sub: Submitted, submitted_at: float, *,
                  charge: bool) -> Harvest:
    """Poll to COMPLETED and fetch; an expired record is recovered from the history.

    Raises RequestExpiredError when neither the v2 record nor the history has it.
    """
    try:
        await poll_until_done(ctx, sub, submitted_at)
        return await fetch(ctx, item, sub, submitted_at, charge=charge)
    except RequestExpiredError:
        ctx.counters.expired += 1
        harvest = await from_history(ctx, item, sub, submitted_at, charge=charge)
        if harvest is None:
            raise
        return harvest


async def _expired(ctx: JobContext, item: Item, message: str, *, paid: bool) -> bool:
    """The record and the history have nothing: resubmit by policy (True) or fail."""
    record = await ctx.items.get(item.id)
    state = FETCHED if paid else SUBMITTED
    why_not = may_pay_again(state, "expired", resubmits=record.resubmits if record else 0,
                            policy=ctx.policy)
    if why_not is not None:
        error_class = "download" if paid else "expired"
        await ctx.life.fire("failed", item, message=f"{message}; not paid for again: {why_not}",
                            error_class=error_class)
        return False
    await ctx.life.fire("expired", item, message=message, error_class="expired")
    return True


async def _job_failed(ctx: JobContext, item: Item, sub: Submitted,
                      exc: JobFailedError) -> bool:
    """A FAILED job (not billed): send again by policy (True), else the item fails."""
    kind = failure_class(exc)
    await ctx.life.fire("job_failed", item, message=str(exc), error_class=kind,
                        job=sub.request_id)
    record = await ctx.items.get(item.id)
    failures = record.job_failures if record else 1
    if may_pay_again(State.PENDING, "job_failed", job_failures=failures,
                     policy=ctx.policy) is None:
        log.info("item %s: its job FAILED (%s); trying again", item.id, exc,
                 extra={"event": "item.retry_job", "item_id": item.id})
        return True
    await ctx.life.fire("failed", item, message=str(exc), error_class=kind)
    return False


async def _unfinished(ctx: JobContext, item: Item, error_class: str, message: str) -> None:
    ctx.counters.unfinished += 1
    ctx.counters.errors[error_class] += 1
    log.warning("item %s: left unfinished (%s): %s; the next run resumes it", item.id,
                error_class, message, extra={"event": "item.unfinished", "item_id": item.id})
