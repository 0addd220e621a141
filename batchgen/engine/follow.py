"""Following a job the API accepted: poll its status, fetch its result, and recover it
from the account history when its v2 record expired.

Polls are timed to when the job should be done. Once finished jobs have taught how long
a job takes, the first poll lands when a share of such jobs are done, and later ones
step by a share of the median; how far depends on what a poll costs (``PollPlan``, by
``--rate-scope``). Past the longest recent job the steps grow. Before any job time is
known polls back off from ``poll_first_s`` and re-plan as soon as one is. A job still
QUEUED needs at least a whole inference more. Every wait is jittered so jobs submitted
together do not poll together.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from batchgen.api.results import JobResult, Output, Submitted
from batchgen.engine.context import JobContext
from batchgen.errors import ApiError, BadResponseError, JobFailedError, RequestExpiredError
from batchgen.manifest.item import Item

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PollPlan:
    """When to poll a job whose time is known: the first poll when ``first_quantile`` of
    recent jobs had finished, then every ``step_share`` of the median job time, each
    step ``growth`` times the last. Before any job time is known: at ``poll_first_s``,
    then steps of ``unknown_step_share`` of it, growing by BACKOFF up to
    ``unknown_cap_share`` of it (so a job re-plans soon after the first one ends)."""

    first_quantile: float
    step_share: float
    growth: float
    unknown_step_share: float
    unknown_cap_share: float


# Polls free (``--rate-scope submits``): detect promptly. The first poll at the median
# finds half the jobs done; the rest are found within a tenth of a job time, so the
# median detection delay stays under a tenth of the job time, for about 2.5 polls a job
# when job times spread +-50% (fewer when they spread less).
PROMPT = PollPlan(first_quantile=0.5, step_share=0.1, growth=1.0, unknown_step_share=0.25,
                  unknown_cap_share=1.0)
# Polls counted (``--rate-scope all``): every poll takes a permit a submit could use, so
# the first poll waits until most jobs are done and later steps widen: about 1.25 polls
# a job at +-50%, at the price of a later detection (about a quarter of the job time).
FRUGAL = PollPlan(first_quantile=0.75, step_share=0.25, growth=1.5, unknown_step_share=1.0,
                  unknown_cap_share=math.inf)
# Steps grow by this much before job times are known, and once a job has outlived
# every recent one (it is not where the others were).
BACKOFF = 1.5


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
    with ctx.inflight.running(submitted_at):
        await _poll(ctx, sub, submitted_at)


async def _poll(ctx: JobContext, sub: Submitted, submitted_at: float) -> None:
    cfg, clock, estimate = ctx.cfg, ctx.clock, ctx.estimate
    plan = FRUGAL if cfg.rate_scope == "all" else PROMPT
    give_up_at = submitted_at + cfg.record_retention_s
    planned = False  # whether the schedule is based on learned job times yet
    delay, step = cfg.poll_first_s, plan.unknown_step_share * cfg.poll_first_s
    growth, longest = BACKOFF, float("inf")
    while True:
        if estimate.known and not planned:
            planned = True
            first = estimate.expected_s(plan.first_quantile)
            delay = max(cfg.poll_min_s, first - (clock.wall() - submitted_at))
            step = max(cfg.poll_min_s, plan.step_share * estimate.expected_s())
            growth, longest = plan.growth, estimate.expected_s(1.0)
        await clock.sleep(ctx.jitter(delay))
        if clock.wall() >= give_up_at:
            raise RequestExpiredError("the job did not finish before its record expires")
        status = await ctx.calls.status(sub)
        if status.status == "COMPLETED":
            return
        if clock.wall() - submitted_at > longest:
            growth = BACKOFF
        delay = step
        cap = cfg.poll_cap_s if planned else plan.unknown_cap_share * cfg.poll_first_s
        step = min(cfg.poll_cap_s, cap, step * growth)
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
    ctx.inflight.finished(submitted_at, metrics)
    if charge:  # a result fetched again on resume carries an old balance
        ctx.counters.credits_left(metrics.remaining_credits)
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
