"""Submitting one item: through the gate, intent recorded, one POST, and what came of it.

There is no idempotency key (API-FACTS, "Money"): a POST whose connection died after the
body left may have created a billed job. Such a submit is *in doubt*
(``engine.doubt``). Every other failure is known to have created no job: the item goes
back to pending (``unsent``) and is tried again after a backoff, through the gate again,
so a stop during the wait leaves it pending, never in doubt.
"""

from __future__ import annotations

import logging
from typing import Literal

from batchgen.api.results import Submitted
from batchgen.api.retry import should_retry
from batchgen.engine import doubt
from batchgen.engine.budget import Reservation
from batchgen.engine.context import JobContext
from batchgen.engine.runstate import STOP_FATAL
from batchgen.errors import (
    ApiError,
    BadResponseError,
    FatalApiError,
    ModelRefusedError,
    RateLimitedError,
    RejectedError,
    ServerError,
    TransportError,
)
from batchgen.manifest.item import Item

log = logging.getLogger(__name__)

Next = Submitted | float | Literal["doubt"] | None


async def submit(ctx: JobContext, item: Item) -> tuple[Submitted, Reservation] | None:
    """POST ``item`` (pending, or in doubt with a resend allowed) once it may go; the job
    and its budget reservation, or None when it did not leave or ended here (its state
    says which)."""
    attempt, started = 0, ctx.clock.now()
    while True:
        refusal = ctx.counters.refused_models.get(item.model)
        if refusal is not None:
            await ctx.life.fire("failed", item, message=f"model refused earlier: {refusal}",
                                error_class="model_refused")
            return None
        reservation = await ctx.gate.enter(item)
        if reservation is None:
            return None
        outcome = await _post(ctx, item, attempt=attempt, elapsed_s=ctx.clock.now() - started)
        if isinstance(outcome, Submitted):
            return outcome, reservation
        ctx.budget.release(reservation)
        attempt += 1
        if outcome == "doubt":
            found = await doubt.resolve(ctx, item)
            if isinstance(found, Submitted):
                ctx.counters.adopted_own += 1  # this run's POST made it: a submit of this run
                return found, Reservation()
            if found is None:
                return None
            attempt, started = 0, ctx.clock.now()  # "resend": allowed by policy
        elif outcome is None or not await ctx.gate.pause(outcome):
            return None


async def _post(ctx: JobContext, item: Item, *, attempt: int, elapsed_s: float) -> Next:
    """One POST: the job, "doubt", a delay before trying again, or None (it ended here)."""
    life = ctx.life
    async with ctx.gate.first_of(item.model), ctx.twins.posting(item):
        if item.model in ctx.counters.refused_models:
            return 0.0  # refused while this one waited: the loop fails it unsent
        await life.fire("intend", item, intent_at=ctx.clock.wall())
        try:
            submitted = await ctx.calls.post(item)
        except (BadResponseError, TransportError) as exc:
            if isinstance(exc, BadResponseError) or exc.maybe_sent:
                # A 2xx we cannot read, or a connection lost after the body left: a job
                # may exist.
                await life.fire("doubted", item, posts=1, message=str(exc),
                                error_class="in_doubt")
                return "doubt"
            return await _unsent(ctx, item, exc, attempt=attempt, elapsed_s=elapsed_s)
        except (RateLimitedError, ServerError) as exc:
            return await _unsent(ctx, item, exc, attempt=attempt, elapsed_s=elapsed_s)
        except ModelRefusedError as exc:
            ctx.counters.refused_models.setdefault(item.model, str(exc))
            await life.fire("rejected", item, posts=1, message=str(exc),
                            error_class="model_refused")
            return None
        except FatalApiError as exc:  # key, credits: nothing more can be submitted
            await life.fire("unsent", item, posts=1, message=str(exc), error_class="fatal")
            ctx.counters.errors["fatal"] += 1
            ctx.stop.stop(STOP_FATAL, exc)
            return None
        except (RejectedError, ApiError) as exc:
            kind = "rejected" if isinstance(exc, RejectedError) else "server_error"
            await life.fire("rejected", item, posts=1, message=str(exc), error_class=kind)
            return None
        ctx.gate.reached(True)
        ctx.gate.proven(item.model)
        await life.fire("accepted", item, posts=1, request_id=submitted.request_id,
                        status_url=submitted.status_url, response_url=submitted.response_url,
                        submitted_at=ctx.clock.wall())
        return submitted


_CLASSES = {RateLimitedError: "rate_limited", ServerError: "server_error",
            TransportError: "transport"}


async def _unsent(ctx: JobContext, item: Item, exc: ApiError, *, attempt: int,
                  elapsed_s: float) -> Next:
    """No job was created: back to pending, then a delay to try again, or None."""
    kind = next(name for cls, name in _CLASSES.items() if isinstance(exc, cls))
    await ctx.life.fire("unsent", item, posts=1, message=str(exc), error_class=kind)
    delay = should_retry(exc, attempt=attempt, elapsed_s=elapsed_s,
                         policy=ctx.calls.submit_policy, operation="submit", rng=ctx.rng)
    if delay is not None:
        # After a 429 the rate limiter holds every sender until the reset.
        return 0.0 if isinstance(exc, RateLimitedError) else delay
    if isinstance(exc, TransportError):
        ctx.counters.errors[kind] += 1
        ctx.gate.reached(False)
    elif isinstance(exc, RateLimitedError):
        ctx.counters.errors[kind] += 1  # still limited past every retry: stays pending
    else:
        # 5xx past every retry: no job was created (API-FACTS); the item fails and
        # --retry-failed runs it again.
        await ctx.life.fire("failed", item, message=str(exc), error_class="server_error")
    return None

