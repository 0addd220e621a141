"""Following a job the API accepted: poll its status, fetch its result, and recover it
from the account history when its v2 record expired.

Polls are timed to when the job should be done: once finished jobs have taught how
long a job takes, the first poll lands when most such jobs are done
(``POLL_FIRST_QUANTILE``), later ones step by a share of the median, growing. Before
that they back off from ``poll_first_s`` and re-plan as soon as a time is known. A job
still QUEUED needs at least a whole inference more. Every wait is jittered so jobs
submitted together do not poll together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from batchgen.api.results import JobResult, Output, Submitted
from batchgen.engine.context import JobContext
from batchgen.errors import ApiError, BadResponseError, JobFailedError, RequestExpiredError
from batchgen.manifest.item import Item

log = logging.getLogger(__name__)

# The first poll lands when this share of recent jobs had finished: past the median,
# because a poll that finds the job still running costs a request (and, if polls count
# against the rate limit, a submit), while a late one only delays the download a little.
# Against durations spread +-50% this gives about 1.45 polls per job (the median: 2.0).
POLL_FIRST_QUANTILE = 0.65
# Later polls step by this share of the median duration, growing by POLL_GROWTH.
POLL_STEP_SHARE = 0.25
POLL_GROWTH = 1.5


class Undecided(Exception):
    """The history cannot say what became of a job (unreadable, or still PENDING): leave
    it for the next run rather than guess, since a guess may pay twice."""


class ResultMismatch(BadResponseError):
    """Raised when a result describes another request than the one sent (prompt, seed or
    image count differ): it is not this item's job, so it is not delivered."""


@dataclass(frozen=True, slots=True)
class Harvest:
    """A finished, paid-for job whose images are to be written to disk."""

    item: Item
    request_id: str | None
    outputs: tuple[Output, ...]
    result: dict[str, Any]  # what the store keeps: seed, metrics, outputs
    cost: float | None


async def poll_until_done(ctx: JobContext, sub: Submitted, submitted_at: float) -> None:
    """Poll the light status until COMPLETED, as few times as the job's timing allows.

    Raises JobFailedError, or RequestExpiredError when the record is gone or would be.
    """
    cfg, clock, estimate = ctx.cfg, ctx.clock, ctx.estimate
    give_up_at = submitted_at + cfg.record_retention_s
    planned = False  # whether the schedule is based on learned job times yet
    delay = step = cfg.poll_first_s
    while True:
        if estimate.known and not planned:
            planned = True
            first = estimate.expected_s(POLL_FIRST_QUANTILE)
            delay = max(cfg.poll_min_s, first - (clock.wall() - submitted_at))
            step = max(cfg.poll_min_s, POLL_STEP_SHARE * estimate.expected_s())
        await clock.sleep(ctx.jitter(delay))
        if clock.wall() >= give_up_at:
            raise RequestExpiredError("the job did not finish before its record expires")
        status = await ctx.calls.status(sub)
        if status.status == "COMPLETED":
            return
        delay = step
        step = min(cfg.poll_cap_s, step * POLL_GROWTH)
        inference = estimate.inference_s()
        if status.status == "QUEUED" and inference is not None:
            delay = max(delay, inference)


def mismatch(item: Item, result: JobResult) -> str | None:
    """How ``result`` contradicts what ``item`` sent, or None (missing fields say nothing)."""
    sent = item.params
    if result.prompt is not None and isinstance(sent.get("prompt"), str) \
            and result.prompt != sent["prompt"]:
        return "the result's prompt is not the one sent"
    seed = sent.get("seed")
    if isinstance(seed, int) and seed >= 0 and result.seed is not None and result.seed != seed:
        return f"the result's seed {result.seed} is not the {seed} sent"
    images = result.raw.get("images")
    if isinstance(images, list) and len(result.outputs) != item.samples:
        return f"the result has {len(result.outputs)} images for {item.samples} samples"
    return None


async def fetch(ctx: JobContext, item: Item, sub: Submitted, submitted_at: float, *,
                charge: bool = True) -> Harvest:
    """GET the full result once, check it, learn from its metrics, and make it durable.

    ``charge`` is False when this job's cost was already counted (a result fetched
    again on resume): it is learned from, not paid twice.
    """
    result = await ctx.calls.result(sub)
    if not result.outputs:
        raise BadResponseError("the COMPLETED result names no image", url=sub.response_url)
    wrong = mismatch(item, result)
    if wrong is not None:
        raise ResultMismatch(wrong, url=sub.response_url)
    metrics = result.metrics
    now = ctx.clock.wall()
    ctx.estimate.observe(metrics, now - submitted_at)
    took = metrics.total_time
    if charge:  # a result fetched again on resume carries an old balance
        ctx.counters.credits_left(metrics.remaining_credits,
                                  submitted_at + took if took is not None else now)
    _charge(ctx, item, metrics.cost, charge)
    keep = {"seed": result.seed, "metrics": metrics.raw,
            "outputs": [{"url": o.url, "content_type": o.content_type}
                        for o in result.outputs]}
    await ctx.life.fire("fetched", item, request_id=sub.request_id, result=keep,
                        cost=metrics.cost)
    return Harvest(item, sub.request_id, result.outputs, keep, metrics.cost)


def _charge(ctx: JobContext, item: Item, cost: float | None, charge: bool) -> None:
    if not charge:
        return
    if cost is not None:
        # Spent from here on: the job completed, so it is billed (API-FACTS, "Money").
        ctx.counters.cost += cost
        ctx.budget.charge(item, cost)
    else:
        ctx.budget.unpriced_job_done(item)


async def from_history(ctx: JobContext, item: Item, sub: Submitted, submitted_at: float, *,
                       charge: bool) -> Harvest | None:
    """An expired job's outputs from the account history: no new charge.

    None when the history has no output for it. Raises JobFailedError when the history
    says the job FAILED, and Undecided when it cannot be read or still shows the job
    PENDING: the job exists and will be billed, so it must not be paid for twice.
    """
    give_up = ctx.clock.now() + ctx.cfg.record_retention_s
    delay = ctx.cfg.poll_min_s
    while True:
        try:
            found = await ctx.calls.recover(item, sub.request_id, since_wall=submitted_at)
        except ApiError as exc:
            raise Undecided(f"the history cannot be read: {exc}") from exc
        if found is None or found.status != "PENDING":
            break
        if ctx.clock.now() + delay > give_up:
            raise Undecided("the history still shows the job PENDING")
        await ctx.clock.sleep(ctx.jitter(delay))
        delay = min(ctx.cfg.poll_cap_s, delay * 2)
    if found is None:
        return None
    if found.status == "FAILED":
        raise JobFailedError(found.error or "the job FAILED (from the history)")
    if found.status != "COMPLETED" or not found.urls:
        return None
    ctx.counters.recovered_from_history += 1
    log.info("item %s: recovered job %s from the history", item.id, sub.request_id,
             extra={"event": "item.recovered", "item_id": item.id,
                    "request_id": sub.request_id})
    outputs = tuple(Output(url=url) for url in found.urls)
    keep = {"seed": None, "metrics": {"cost": found.cost}, "from_history": True,
            "outputs": [{"url": url, "content_type": None} for url in found.urls]}
    _charge(ctx, item, found.cost, charge)
    await ctx.life.fire("fetched", item, request_id=sub.request_id, result=keep,
                        cost=found.cost)
    return Harvest(item, sub.request_id, outputs, keep, found.cost)
