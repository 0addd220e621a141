"""One item's life on the API: submit, poll, fetch the result, hand the outputs on.

Each step keeps the store ahead of the network: the intent is durable before the POST
and the request id before the first poll, so a crash anywhere can be resumed without
paying twice (see store/db.py). Retries are decided by ``retry.should_retry``; the error
policy per status is API-FACTS' table.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from batchgen.api import reconcile
from batchgen.api.client import Submitted
from batchgen.api.results import number
from batchgen.engine.budget import Reservation
from batchgen.engine.runstate import STOP_FATAL
from batchgen.engine.runtime import (
    Harvest,
    Output,
    Runtime,
    Undecided,
    call_api,
    fail,
    submitted_for,
)
from batchgen.engine.submit import adopt, leave_in_doubt, resend_allowed, submit
from batchgen.errors import (
    ApiError,
    BadResponseError,
    FatalApiError,
    JobFailedError,
    RejectedError,
    RequestExpiredError,
)
from batchgen.manifest.item import Item
from batchgen.store import db as st
from batchgen.store.db import ItemRecord

log = logging.getLogger(__name__)

# The first poll lands when this share of recent jobs had finished: past the median,
# because a poll that finds the job still running costs a request (and, if polls count
# against the rate limit, a submit), while a late one only delays the download a little.
# Against durations spread +-50% this gives about 1.45 polls per job (the median: 2.0).
POLL_FIRST_QUANTILE = 0.65
# Later polls step by this share of the median duration, growing by POLL_GROWTH.
POLL_STEP_SHARE = 0.25
# Resubmits of one item after its job's record expired with nothing in the history: a
# job that keeps not finishing within the hour is not worth paying for again and again.
MAX_EXPIRED_RESUBMITS = 2
POLL_GROWTH = 1.5


async def poll_until_done(rt: Runtime, sub: Submitted, submitted_at: float) -> None:
    """Poll the light status until COMPLETED, as few times as the job's timing allows.

    Once finished jobs have taught how long a job takes, the first poll lands when most
    such jobs are done (``POLL_FIRST_QUANTILE``), and later ones step by a share of the
    median time, growing. Before
    that, polls back off from ``poll_first_s``, and re-plan as soon as a time is known.
    A job still QUEUED needs at least a whole inference more, so the next poll waits
    that long. Every wait is jittered so jobs submitted together do not poll together.

    Raises JobFailedError, or RequestExpiredError when the record is gone or would be.
    """
    give_up_at = submitted_at + rt.cfg.record_retention_s
    limited = rt.cfg.rate_scope == "all"
    floor = rt.cfg.poll_min_s
    planned = False  # whether the schedule is based on learned job times yet
    delay = step = rt.cfg.poll_first_s
    while True:
        if rt.estimate.known and not planned:
            planned = True
            first = rt.estimate.expected_s(POLL_FIRST_QUANTILE)
            delay = max(floor, first - (rt.clock.wall() - submitted_at))
            step = max(floor, POLL_STEP_SHARE * rt.estimate.expected_s())
        await rt.clock.sleep(rt.jitter(delay))
        if rt.clock.wall() >= give_up_at:
            raise RequestExpiredError("the job did not finish before its record expires")
        rt.counters.polls += 1
        status = await call_api(rt, "get", lambda: rt.client.status(sub), limited=limited)
        if status.status == "COMPLETED":
            return
        delay = step
        step = min(rt.cfg.poll_cap_s, step * POLL_GROWTH)
        inference = rt.estimate.inference_s()
        if status.status == "QUEUED" and inference is not None:
            delay = max(delay, inference)


def outputs_of(result: dict[str, Any]) -> tuple[Output, ...]:
    """The images of a result: ``images[]`` URLs or data, else ``output`` (URL or base64)."""
    found: list[Output] = []
    images = result.get("images")
    if isinstance(images, list):
        for image in images:
            if not isinstance(image, dict):
                continue
            kind = image.get("content_type")
            ctype = kind if isinstance(kind, str) else None
            url = image.get("url")
            data = next((image[k] for k in ("data", "base64", "b64_json")
                         if isinstance(image.get(k), str)), None)
            if isinstance(url, str) and url:
                found.append(Output(url=url, content_type=ctype))
            elif data:
                found.append(Output(data=data, content_type=ctype))
    if found:
        return tuple(found)
    output = result.get("output")
    for value in output if isinstance(output, list) else [output]:
        if isinstance(value, str) and value:
            is_url = value.startswith(("http://", "https://"))
            found.append(Output(url=value) if is_url else Output(data=value))
    return tuple(found)


async def fetch(rt: Runtime, item: Item, sub: Submitted, submitted_at: float, *,
                charge: bool = True) -> Harvest:
    """GET the full result once, learn from its metrics, and make it durable.

    ``charge`` is False when this job's cost was already counted (a result fetched
    again on resume): it is learned from, not paid twice.
    """
    limited = rt.cfg.rate_scope == "all"
    rt.counters.result_fetches += 1
    result = await call_api(rt, "get", lambda: rt.client.result(sub.response_url),
                            limited=limited)
    outputs = outputs_of(result)
    if not outputs:
        raise BadResponseError("the COMPLETED result names no image", url=sub.response_url)
    metrics = result.get("metrics")
    if not isinstance(metrics, dict):
        metrics = {}
    rt.estimate.observe(metrics, rt.clock.wall() - submitted_at)
    cost, remaining = number(metrics.get("cost")), number(metrics.get("remaining_credits"))
    if remaining is not None:
        rt.counters.remaining_credits = remaining
    if cost is not None and charge:
        # Spent from here on: the job completed, so it is billed (API-FACTS, "Money").
        rt.counters.cost += cost
        rt.budget.charge(cost, item.samples)
    elif charge:
        rt.budget.unpriced_job_done()
    keep = {"seed": result.get("seed"), "metrics": metrics,
            "outputs": [{"url": o.url, "content_type": o.content_type} for o in outputs]}
    await rt.store.update(item.id, rt.clock.wall(), state=st.FETCHED, result=keep, cost=cost)
    return Harvest(item, sub.request_id, outputs, keep, cost)


def resumed(rt: Runtime, record: ItemRecord) -> Submitted | None:
    """The job a stored row already has on the server, if any."""
    if record.state not in (st.SUBMITTED, st.FETCHED, st.COMPLETED) or not record.request_id:
        return None
    return submitted_for(rt, record.request_id, record.status_url, record.response_url)


async def run_job(rt: Runtime, item: Item, record: ItemRecord | None,
                  deliver: Callable[[Harvest], Awaitable[None]]) -> None:
    """Carry one item from wherever it stands to a harvest, or record why it cannot."""
    sub = resumed(rt, record) if record else None
    submitted_at = (record.submitted_at or rt.clock.wall()) if sub and record else 0.0
    failures = record.job_failures if record else 0
    expiries = record.resubmits if record else 0
    # A job fetched (and counted) before: its cost is not counted again on a re-fetch,
    # and if its output is lost with its record, it is not quietly paid for again.
    paid = record is not None and record.state in (st.FETCHED, st.COMPLETED)
    reservation = Reservation()
    if sub is not None:
        rt.counters.resumed_jobs += 1
    elif record is not None and record.state in (st.SUBMITTING, st.IN_DOUBT):
        # A run died between intent and answer: did that POST create a job?
        rt.counters.in_doubt += 1
        try:
            sub = await adopt(rt, item, record.intent_at or rt.clock.wall())
        except Undecided as exc:
            await leave_in_doubt(rt, item, str(exc))
            return
        if sub is None and not await resend_allowed(rt, item, "the run stopped mid-submit"):
            return
        submitted_at = rt.clock.wall()
    while True:
        if sub is None:
            posted = await submit(rt, item)
            if posted is None:
                return
            sub, reservation = posted
            submitted_at = rt.clock.wall()
            paid = False
        try:
            harvest = await _follow(rt, item, sub, submitted_at, charge=not paid)
        except RequestExpiredError as exc:
            if paid:
                await fail(rt, item, "download", f"paid for, but its output is lost: {exc}")
                return
            if rt.cfg.on_expired == "fail" or expiries >= MAX_EXPIRED_RESUBMITS:
                await fail(rt, item, "expired", str(exc))
                return
            expiries += 1
            rt.counters.resubmits += 1
            await rt.store.bump(item.id, rt.clock.wall(), "resubmits", state=st.PENDING,
                                request_id=None, last_error=str(exc), error_class="expired")
            sub = None
            continue
        except Undecided as exc:
            await _unfinished(rt, item, "history", str(exc))
            return
        except JobFailedError as exc:
            failures += 1
            await rt.store.bump(item.id, rt.clock.wall(), "job_failures")
            if failures <= rt.cfg.retry_failed_jobs:
                log.info("item %s: job FAILED (%s); trying again", item.id, exc)
                sub = None
                continue
            await fail(rt, item, _failure_class(exc), str(exc))
            return
        except FatalApiError as exc:
            # The key stopped working mid-run: stop submitting; the job stays recorded.
            rt.stop.stop(STOP_FATAL, exc)
            await _unfinished(rt, item, "fatal", str(exc))
            return
        except (RejectedError, BadResponseError) as exc:
            await fail(rt, item, "bad_result", str(exc))
            return
        except ApiError as exc:
            # Polls kept failing past every retry. The job may well finish: it stays
            # SUBMITTED with its request id, and the next run picks it up.
            await _unfinished(rt, item, "poll", str(exc))
            return
        finally:
            # After fetch() charged the real cost, so the budget never undercounts.
            rt.budget.release(reservation)
            reservation = Reservation()
        await deliver(harvest)
        return


async def _follow(rt: Runtime, item: Item, sub: Submitted, submitted_at: float, *,
                  charge: bool) -> Harvest:
    """Poll a job to COMPLETED and fetch it; an expired record is recovered from history.

    Raises RequestExpiredError when neither the v2 record nor the history has it,
    JobFailedError when either says it FAILED, and Undecided when the history cannot
    tell.
    """
    try:
        await poll_until_done(rt, sub, submitted_at)
        return await fetch(rt, item, sub, submitted_at, charge=charge)
    except RequestExpiredError:
        rt.counters.expired += 1
        harvest = await _from_history(rt, item, sub, submitted_at, charge=charge)
        if harvest is None:
            raise
        return harvest


async def _unfinished(rt: Runtime, item: Item, error_class: str, message: str) -> None:
    rt.counters.unfinished += 1
    rt.counters.errors[error_class] += 1
    log.warning("item %s: left unfinished (%s): %s; the next run resumes it", item.id,
                error_class, message)
    await rt.store.update(item.id, rt.clock.wall(), last_error=message,
                          error_class=error_class)


async def _from_history(rt: Runtime, item: Item, sub: Submitted, submitted_at: float, *,
                        charge: bool) -> Harvest | None:
    """An expired job's outputs from the account history: no new charge.

    None when the history has no output for it. Raises JobFailedError when the history
    says the job FAILED, and Undecided when it cannot be read or still shows the job
    PENDING: the job exists and will be billed, so it must not be paid for twice.
    """
    # A job the history still shows PENDING exists and will be billed: wait for it
    # (bounded) rather than pay for a second one.
    give_up = rt.clock.now() + rt.cfg.record_retention_s
    delay = rt.cfg.poll_min_s
    while True:
        try:
            found = await call_api(
                rt, "get",
                lambda: reconcile.recover(rt.client, sub.request_id, model=item.model,
                                          samples=item.samples, submitted_at=submitted_at,
                                          now=rt.clock.wall()),
                limited=rt.cfg.rate_scope == "all",
            )
        except ApiError as exc:
            raise Undecided(f"the history cannot be read: {exc}") from exc
        if found is None or found.status != "PENDING":
            break
        if rt.clock.now() + delay > give_up:
            raise Undecided("the history still shows the job PENDING")
        await rt.clock.sleep(rt.jitter(delay))
        delay = min(rt.cfg.poll_cap_s, delay * 2)
    if found is None:
        return None
    if found.status == "FAILED":
        raise JobFailedError(found.error or "the job FAILED (from the history)")
    if found.status != "COMPLETED" or not found.urls:
        return None
    rt.counters.recovered_from_history += 1
    log.info("item %s: recovered job %s from the history", item.id, sub.request_id)
    outputs = tuple(Output(url=url) for url in found.urls)
    keep = {"seed": None, "metrics": {"cost": found.cost}, "from_history": True,
            "outputs": [{"url": url, "content_type": None} for url in found.urls]}
    if found.cost is not None and charge:
        rt.counters.cost += found.cost
        rt.budget.charge(found.cost, item.samples)
    await rt.store.update(item.id, rt.clock.wall(), state=st.FETCHED, result=keep,
                          cost=found.cost)
    return Harvest(item, sub.request_id, outputs, keep, found.cost)


def _failure_class(exc: JobFailedError) -> str:
    text = str(exc).lower()
    if any(word in text for word in ("safety", "nsfw", "blocked", "content policy", "rai")):
        return "safety_block"
    return "job_failed"
