"""What every stage of one run shares, and the one way stages call the API."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import anyio

from batchgen.api.client import ApiClient, Submitted
from batchgen.api.ratelimit import RateLimiter
from batchgen.api.retry import RetryPolicy, retrying
from batchgen.clock import Clock
from batchgen.config import RunConfig
from batchgen.engine.budget import Budget
from batchgen.engine.runstate import Counters, DurationEstimate, StopSwitch
from batchgen.errors import RateLimitedError
from batchgen.manifest.item import Item
from batchgen.store import db as st
from batchgen.store.db import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

# Spread waits by +-JITTER so jobs submitted together do not poll together.
JITTER = 0.1


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
    unreachable_streak: int = 0

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


class Undecided(Exception):
    """The history could not say whether a job exists (it cannot be read, still shows the
    job PENDING, or a twin item's submit is in flight): leave the item for the next run
    rather than guess, since a wrong guess either pays twice or loses a paid job."""


def submitted_for(rt: Runtime, request_id: str, status_url: str | None = None,
                  response_url: str | None = None) -> Submitted:
    """A job known by id only: its URLs are the API's documented ones where not stored."""
    base = f"{rt.client.base_url}/v2/requests/{request_id}"
    return Submitted(request_id=request_id, status_url=status_url or f"{base}/status",
                     response_url=response_url or base, raw={})


async def fail(rt: Runtime, item: Item, error_class: str, message: str) -> None:
    """Record the item as failed for good (until --retry-failed)."""
    rt.counters.failed += 1
    rt.counters.errors[error_class] += 1
    log.warning("item %s failed (%s): %s", item.id, error_class, message)
    await rt.store.update(item.id, rt.clock.wall(), state=st.FAILED, last_error=message,
                          error_class=error_class)


