"""One item's life on the API: submit, poll, fetch the result, hand the outputs on.

Each step keeps the store ahead of the network: the intent is durable before the POST
and the request id before the first poll, so a crash anywhere can be resumed without
paying twice (see store.py). Retries are decided by ``retry.should_retry``; the error
policy per status is API-FACTS' table.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import anyio

from . import store as st
from .budget import Budget, Reservation
from .client import ApiClient, Submitted
from .clock import Clock
from .config import RunConfig
from .errors import (
    ApiError,
    BadResponseError,
    FatalApiError,
    JobFailedError,
    RateLimitedError,
    RejectedError,
    RequestExpiredError,
    TransportError,
)
from .models import Item
from .ratelimit import RateLimiter
from .retry import RetryPolicy, retrying
from .runstate import STOP_BUDGET, STOP_DEADLINE, STOP_FATAL, Counters, DurationEstimate, StopSwitch
from .store import ItemRecord, Store

log = logging.getLogger("batchgen.jobs")
T = TypeVar("T")

# Later polls step by this share of the expected duration, growing by POLL_GROWTH.
POLL_STEP_SHARE = 0.15
POLL_GROWTH = 1.5
# Spread polls by +-JITTER so jobs submitted together do not poll together.
JITTER = 0.1
# How many times one item may go in doubt before the policy stops resubmitting it.
MAX_IN_DOUBT = 3


@dataclass(frozen=True, slots=True)
class Output:
    """One image of a finished job: a URL to download, or inline base64 data."""

    url: str | None = None
    data: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Harvest:
    """A finished, paid-for job whose images are to be written to disk."""

    item: Item
    request_id: str | None
    outputs: tuple[Output, ...]
    result: dict[str, Any]
    cost: float | None


@dataclass
class Runtime:
    """What every stage of one run shares."""

    cfg: RunConfig
    clock: Clock
    client: ApiClient
    store: Store
    limiter: RateLimiter
    rng: random.Random
    get_policy: RetryPolicy
    submit_policy: RetryPolicy
    download_policy: RetryPolicy
    counters: Counters = field(default_factory=Counters)
    stop: StopSwitch = field(default_factory=StopSwitch)
    estimate: DurationEstimate = field(default_factory=lambda: DurationEstimate(1.0))
    budget: Budget = field(default_factory=lambda: Budget(None))
    stages_scope: anyio.CancelScope | None = None

    def jitter(self, seconds: float) -> float:
        return seconds * self.rng.uniform(1 - JITTER, 1 + JITTER)


Operation = Literal["submit", "get", "download"]


async def call_api(
    rt: Runtime,
    operation: Operation,
    call: Callable[[], Awaitable[T]],
    *,
    limited: bool,
    on_attempt: Callable[[], None] | None = None,
) -> T:
    """Run ``call`` under the retry policy; ``limited`` calls take a rate permit each try."""
    policy = {"submit": rt.submit_policy, "get": rt.get_policy,
              "download": rt.download_policy}[operation]

    async def attempt() -> T:
        if limited:
            await rt.limiter.acquire()
        if on_attempt is not None:
            on_attempt()
        try:
            value = await call()
        except RateLimitedError as exc:
            rt.counters.rate_limited += 1
            rt.limiter.on_rate_limited(exc.retry_after_s)
            raise
        if limited:
            rt.limiter.on_success()
        return value

    def count_retry(exc: BaseException, attempt: int, delay_s: float) -> None:
        rt.counters.retries += 1

    return await retrying(attempt, policy=policy, operation=operation, clock=rt.clock,
                          rng=rt.rng, on_retry=count_retry)


async def fail(rt: Runtime, item: Item, error_class: str, message: str) -> None:
    """Record the item as failed for good (until --retry-failed)."""
    rt.counters.failed += 1
    rt.counters.errors[error_class] += 1
    log.warning("item %s failed (%s): %s", item.id, error_class, message)
    await rt.store.update(item.id, rt.clock.wall(), state=st.FAILED, last_error=message,
                          error_class=error_class)


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
    now = rt.clock.wall()
    await rt.store.update(item.id, now, state=st.SUBMITTING, intent_at=now)
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
            return None
        return _AGAIN if await _in_doubt(rt, item, posts, str(exc)) else None
    except RejectedError as exc:
        await rt.store.write(_counted_op(item.id, rt.clock.wall(), posts))
        await fail(rt, item, "rejected", str(exc))
        return None
    except FatalApiError as exc:
        await _unsent(rt, item, posts, "fatal", str(exc))
        rt.stop.stop(STOP_FATAL, exc)
        return None
    except ApiError as exc:
        await _unsent(rt, item, posts, "server_error", str(exc))
        return None
    await rt.store.write(_submitted_op(item.id, rt.clock.wall(), submitted, posts))
    return submitted


async def _unsent(rt: Runtime, item: Item, posts: int, error_class: str, message: str) -> None:
    """The POST was refused or never left: no job exists; the item goes back to pending."""
    rt.counters.errors[error_class] += 1
    log.warning("item %s not submitted (%s): %s", item.id, error_class, message)
    await rt.store.write(_counted_op(item.id, rt.clock.wall(), posts, state=st.PENDING,
                                     last_error=message, error_class=error_class))


async def _in_doubt(rt: Runtime, item: Item, posts: int, message: str) -> bool:
    """Record a submit whose outcome is unknown; True when policy says send it again."""
    rt.counters.in_doubt += 1
    rt.counters.errors["in_doubt"] += 1
    record = await rt.store.get(item.id)
    times = (record.in_doubt if record else 0) + 1
    await rt.store.write(_counted_op(item.id, rt.clock.wall(), posts, state=st.IN_DOUBT,
                                     in_doubt=times, last_error=message,
                                     error_class="in_doubt"))
    if rt.cfg.on_in_doubt == "fail" or times >= MAX_IN_DOUBT:
        await fail(rt, item, "in_doubt", f"submit outcome unknown: {message}")
        return False
    rt.counters.possible_duplicates += 1
    log.warning("item %s: submit outcome unknown (%s); sending again, a possible duplicate",
                item.id, message)
    return True


def _counted_op(item_id: str, now: float, posts: int, **fields: Any) -> st.Op:
    update = st.update_op(item_id, now, fields)

    def op(conn: Any) -> None:
        conn.execute("UPDATE items SET submits = submits + ? WHERE id = ?", (posts, item_id))
        update(conn)

    return op


def _submitted_op(item_id: str, now: float, sub: Submitted, posts: int) -> st.Op:
    return _counted_op(item_id, now, posts, state=st.SUBMITTED, request_id=sub.request_id,
                       status_url=sub.status_url, response_url=sub.response_url,
                       submitted_at=now, last_error=None, error_class=None)


async def poll_until_done(rt: Runtime, sub: Submitted, submitted_at: float) -> None:
    """Poll the light status until COMPLETED; the first poll lands when the job should be done.

    Raises JobFailedError, or RequestExpiredError when the record is gone or would be.
    """
    expected = rt.estimate.expected_s()
    elapsed = rt.clock.wall() - submitted_at
    delay = max(rt.cfg.poll_min_s, expected - elapsed)
    step = max(rt.cfg.poll_min_s, POLL_STEP_SHARE * expected)
    give_up_at = submitted_at + rt.cfg.record_retention_s
    limited = rt.cfg.rate_scope == "all"
    while True:
        await rt.clock.sleep(rt.jitter(delay))
        if rt.clock.wall() >= give_up_at:
            raise RequestExpiredError("the job did not finish before its record expires")
        rt.counters.polls += 1
        status = await call_api(rt, "get", lambda: rt.client.status(sub), limited=limited)
        if status.status == "COMPLETED":
            return
        delay = step
        step = min(rt.cfg.poll_cap_s, step * POLL_GROWTH)


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


def _cost(metrics: Any) -> tuple[float | None, float | None]:
    if not isinstance(metrics, dict):
        return None, None
    cost, remaining = metrics.get("cost"), metrics.get("remaining_credits")
    number = (int, float)
    return (float(cost) if isinstance(cost, number) else None,
            float(remaining) if isinstance(remaining, number) else None)


async def fetch(rt: Runtime, item: Item, sub: Submitted, submitted_at: float) -> Harvest:
    """GET the full result once, learn from its metrics, and make it durable."""
    limited = rt.cfg.rate_scope == "all"
    rt.counters.result_fetches += 1
    result = await call_api(rt, "get", lambda: rt.client.result(sub.response_url),
                            limited=limited)
    outputs = outputs_of(result)
    if not outputs:
        raise BadResponseError("the COMPLETED result names no image", url=sub.response_url)
    metrics = result.get("metrics") if isinstance(result.get("metrics"), dict) else {}
    assert isinstance(metrics, dict)
    rt.estimate.observe(metrics, rt.clock.wall() - submitted_at)
    cost, remaining = _cost(metrics)
    if remaining is not None:
        rt.counters.remaining_credits = remaining
    if cost is not None:
        # Spent from here on: the job completed, so it is billed (API-FACTS, "Money").
        rt.counters.cost += cost
        rt.budget.charge(cost, item.samples)
    keep = {"seed": result.get("seed"), "metrics": metrics,
            "outputs": [{"url": o.url, "content_type": o.content_type} for o in outputs]}
    await rt.store.update(item.id, rt.clock.wall(), state=st.FETCHED, result=keep, cost=cost)
    return Harvest(item, sub.request_id, outputs, keep, cost)


def resumed(record: ItemRecord) -> Submitted | None:
    """The job a stored row already has on the server, if any."""
    if record.state not in (st.SUBMITTED, st.FETCHED) or not record.request_id:
        return None
    return Submitted(request_id=record.request_id, status_url=record.status_url or "",
                     response_url=record.response_url or "", raw={})


async def run_job(rt: Runtime, item: Item, record: ItemRecord | None,
                  deliver: Callable[[Harvest], Awaitable[None]]) -> None:
    """Carry one item from wherever it stands to a harvest, or record why it cannot."""
    sub = resumed(record) if record else None
    submitted_at = (record.submitted_at or rt.clock.wall()) if sub and record else 0.0
    failures = record.job_failures if record else 0
    reservation = Reservation()
    if sub is not None:
        rt.counters.resumed_jobs += 1
    while True:
        if sub is None:
            posted = await submit(rt, item)
            if posted is None:
                return
            sub, reservation = posted
            submitted_at = rt.clock.wall()
        try:
            await poll_until_done(rt, sub, submitted_at)
            harvest = await fetch(rt, item, sub, submitted_at)
        except RequestExpiredError as exc:
            rt.counters.expired += 1
            if rt.cfg.on_expired == "fail":
                await fail(rt, item, "expired", str(exc))
                return
            rt.counters.resubmits += 1
            await rt.store.bump(item.id, rt.clock.wall(), "resubmits", state=st.PENDING,
                                request_id=None, last_error=str(exc), error_class="expired")
            sub = None
            continue
        except JobFailedError as exc:
            failures += 1
            await rt.store.bump(item.id, rt.clock.wall(), "job_failures")
            if failures <= rt.cfg.retry_failed_jobs:
                log.info("item %s: job FAILED (%s); trying again", item.id, exc)
                sub = None
                continue
            await fail(rt, item, _failure_class(exc), str(exc))
            return
        except (RejectedError, BadResponseError, FatalApiError) as exc:
            await fail(rt, item, "bad_result", str(exc))
            return
        finally:
            # After fetch() charged the real cost, so the budget never undercounts.
            rt.budget.release(reservation)
            reservation = Reservation()
        await deliver(harvest)
        return


def _failure_class(exc: JobFailedError) -> str:
    text = str(exc).lower()
    if any(word in text for word in ("safety", "nsfw", "blocked", "content policy", "rai")):
        return "safety_block"
    return "job_failed"
