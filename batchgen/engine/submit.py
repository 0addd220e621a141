"""Submitting one item: intent first, then the POST, and what to do when its fate is unknown.

There is no idempotency key (API-FACTS, "Money"): a POST whose connection died after
the body left may have created a billed job. Such a submit is *in doubt*: recorded,
then looked up in the account history before anything is sent again, and resent only
by policy, counted as a possible duplicate charge.
"""

from __future__ import annotations

import logging
from typing import Any

from batchgen.api import reconcile
from batchgen.api.client import Submitted
from batchgen.engine.budget import Reservation
from batchgen.engine.runstate import STOP_BUDGET, STOP_DEADLINE, STOP_FATAL, STOP_UNREACHABLE
from batchgen.engine.runtime import Runtime, Undecided, call_api, fail, submitted_for
from batchgen.errors import (
    ApiError,
    BadResponseError,
    FatalApiError,
    RateLimitedError,
    RejectedError,
    TransportError,
)
from batchgen.manifest.item import Item
from batchgen.store import db as st

log = logging.getLogger(__name__)

# How many times one item may go in doubt before the policy stops resending it.
MAX_IN_DOUBT = 3
# Submits in a row that could not reach the API, each after its own retries, before the
# run stops submitting: the API is down, and every further item would only wait.
UNREACHABLE_STREAK = 3


async def submit(rt: Runtime, item: Item) -> tuple[Submitted, Reservation] | None:
    """POST the item once it may go; None when it was not sent or ended here."""
    while True:
        if rt.stop.stopped:
            return None
        deadline = rt.cfg.submit_until_wall
        if deadline is not None and rt.clock.wall() >= deadline:
            rt.stop.stop(STOP_DEADLINE)
            return None
        reservation = await rt.budget.reserve(item.samples)
        if reservation is None:
            rt.stop.stop(STOP_BUDGET)
            return None
        if rt.stop.stopped:
            rt.budget.release(reservation)
            return None
        outcome: Submitted | object | None = None
        try:
            outcome = await _post(rt, item)
        finally:
            if not isinstance(outcome, Submitted):
                rt.budget.release(reservation)
        if isinstance(outcome, Submitted):
            return outcome, reservation
        if outcome is not _AGAIN:
            return None


_AGAIN = object()


async def _post(rt: Runtime, item: Item) -> Submitted | object | None:
    """One submit with its retries: the job, _AGAIN (in doubt, send again) or None."""
    intent_at = rt.clock.wall()
    await rt.store.update(item.id, intent_at, state=st.SUBMITTING, intent_at=intent_at)
    posts = 0

    def count_post() -> None:
        nonlocal posts
        posts += 1
        rt.counters.submits += 1

    try:
        submitted = await call_api(
            rt, "submit", lambda: rt.client.submit(item.model, item.params),
            limited=True, on_attempt=count_post,
        )
    except TransportError as exc:
        if not exc.maybe_sent:
            await _unsent(rt, item, posts, "transport", str(exc))
            rt.unreachable_streak += 1
            if rt.unreachable_streak >= UNREACHABLE_STREAK:
                rt.stop.stop(STOP_UNREACHABLE)
            return None
        return await _in_doubt(rt, item, posts, intent_at, str(exc))
    except BadResponseError as exc:
        # A 2xx we cannot read (no request_id, not JSON) may still have created a job.
        return await _in_doubt(rt, item, posts, intent_at, str(exc))
    except RateLimitedError as exc:
        # Still limited past every retry: no job was created, and the item is not at
        # fault; it stays pending for the next run.
        await _unsent(rt, item, posts, "rate_limited", str(exc))
        return None
    except RejectedError as exc:
        await rt.store.write(_counted_op(item.id, rt.clock.wall(), posts))
        await fail(rt, item, "rejected", str(exc))
        return None
    except FatalApiError as exc:
        await _unsent(rt, item, posts, "fatal", str(exc))
        rt.stop.stop(STOP_FATAL, exc)
        return None
    except ApiError as exc:
        # 5xx past every retry: no job was created (API-FACTS); the item fails and
        # --retry-failed runs it again.
        await rt.store.write(_counted_op(item.id, rt.clock.wall(), posts))
        await fail(rt, item, "server_error", str(exc))
        return None
    rt.unreachable_streak = 0
    await rt.store.write(_submitted_op(item.id, rt.clock.wall(), submitted, posts))
    return submitted


async def _unsent(rt: Runtime, item: Item, posts: int, error_class: str, message: str) -> None:
    """The POST was refused or never left: no job exists; the item goes back to pending."""
    rt.counters.errors[error_class] += 1
    log.warning("item %s not submitted (%s): %s", item.id, error_class, message)
    await rt.store.write(_counted_op(item.id, rt.clock.wall(), posts, state=st.PENDING,
                                     last_error=message, error_class=error_class))


async def _in_doubt(rt: Runtime, item: Item, posts: int, intent_at: float,
                    message: str) -> Submitted | object | None:
    """Record the doubt, look in the history, and resend only by policy."""
    await _record_in_doubt(rt, item, posts, message)
    try:
        adopted = await adopt(rt, item, intent_at)
    except Undecided as exc:
        await leave_in_doubt(rt, item, str(exc))
        return None
    if adopted is not None:
        return adopted
    return _AGAIN if await resend_allowed(rt, item, message) else None


async def leave_in_doubt(rt: Runtime, item: Item, why: str) -> None:
    """Neither adopt nor resend: the item stays in doubt, and the next run asks again."""
    rt.counters.unfinished += 1
    rt.counters.errors["in_doubt_undecided"] += 1
    log.warning("item %s: submit outcome still unknown (%s); left for the next run",
                item.id, why)


async def _record_in_doubt(rt: Runtime, item: Item, posts: int, message: str) -> None:
    rt.counters.in_doubt += 1
    log.warning("item %s: submit outcome unknown (%s); looking in the history", item.id,
                message)
    await rt.store.write(_counted_op(item.id, rt.clock.wall(), posts, doubts=1,
                                     state=st.IN_DOUBT, last_error=message,
                                     error_class="in_doubt"))


async def resend_allowed(rt: Runtime, item: Item, message: str) -> bool:
    """The history found no job for an in-doubt submit: may it be sent again?"""
    record = await rt.store.get(item.id)
    times = record.in_doubt if record else 1
    if rt.cfg.on_in_doubt == "fail" or times >= MAX_IN_DOUBT:
        await fail(rt, item, "in_doubt", f"submit outcome unknown: {message}")
        return False
    rt.counters.possible_duplicates += 1
    log.warning("item %s: no job found for the in-doubt submit; sending again "
                "(a possible duplicate charge)", item.id)
    return True


async def adopt(rt: Runtime, item: Item, intent_at: float) -> Submitted | None:
    """The job an in-doubt submit created, from the history, waiting a bounded time for it.

    None when the history shows no such job (or several), so that policy may resend.
    The history may lag behind the submit, so an empty answer is asked again, with
    doubling waits, until ``history_wait_s`` has passed. Raises Undecided when the
    history cannot be read, or when an identical item's submit is still in flight (its
    job would look like ours).
    """
    give_up = rt.clock.now() + rt.cfg.history_wait_s
    delay = min(1.0, rt.cfg.history_wait_s / 4)
    while True:
        try:
            found = await call_api(
                rt, "get",
                lambda: reconcile.find(rt.client, model=item.model, params=item.params,
                                       intent_at=intent_at, now=rt.clock.wall()),
                limited=rt.cfg.rate_scope == "all",
            )
        except ApiError as exc:
            raise Undecided(f"the history cannot be read: {exc}") from exc
        claimed = await rt.store.claimed([f.request_id for f in found], but=item.id)
        free = [f for f in found if f.request_id not in claimed]
        twins = await rt.store.twins_in_flight(item) if free else 0
        if len(free) == 1 and not twins:
            return await _adopt(rt, item, free[0].request_id)
        if len(free) > 1 and not twins:
            log.warning("item %s: %d jobs in the history match; adopting none", item.id,
                        len(free))
            return None
        if rt.clock.now() + delay > give_up:
            if twins:
                raise Undecided("an identical item's submit is still in flight")
            return None
        await rt.clock.sleep(delay)
        delay *= 2


async def _adopt(rt: Runtime, item: Item, request_id: str) -> Submitted:
    rt.counters.adopted += 1
    log.info("item %s: adopted job %s from the history; nothing sent again", item.id,
             request_id)
    sub = submitted_for(rt, request_id)
    await rt.store.update(item.id, rt.clock.wall(), state=st.SUBMITTED, request_id=request_id,
                          status_url=sub.status_url, response_url=sub.response_url,
                          submitted_at=rt.clock.wall(), last_error=None, error_class=None)
    return sub


def _counted_op(item_id: str, now: float, posts: int, *, doubts: int = 0,
                **fields: Any) -> st.Op:
    """Add the POSTs sent (and in-doubt outcomes) to the row, and set ``fields``."""
    update = st.update_op(item_id, now, fields)

    def op(conn: Any) -> None:
        conn.execute("UPDATE items SET submits = submits + ?, in_doubt = in_doubt + ?"
                     " WHERE id = ?", (posts, doubts, item_id))
        update(conn)

    return op


def _submitted_op(item_id: str, now: float, sub: Submitted, posts: int) -> st.Op:
    return _counted_op(item_id, now, posts, state=st.SUBMITTED, request_id=sub.request_id,
                       status_url=sub.status_url, response_url=sub.response_url,
                       submitted_at=now, last_error=None, error_class=None)


