"""The API as the engine calls it: each call under its retry policy, rate permits where
they count, and counted. The HTTP itself is ``api.client``'s and ``api.download``'s.

A submit is not retried here: ``engine.submit`` tries one POST at a time, because every
attempt must pass the gate and record its intent first.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal, TypeVar

from batchgen.api import reconcile
from batchgen.api.client import ApiClient
from batchgen.api.download import Downloaded, Files
from batchgen.api.ratelimit import RateLimiter
from batchgen.api.reconcile import Window
from batchgen.api.results import Found, HistoryRow, JobResult, JobStatus, Output, Submitted
from batchgen.api.retry import Operation, RetryPolicy, retrying
from batchgen.api.urls import rebase
from batchgen.clock import Clock
from batchgen.config import RunConfig
from batchgen.engine.inflight import InFlight
from batchgen.engine.runstate import Counters
from batchgen.errors import RateLimitedError, ServerError
from batchgen.manifest.item import Item

T = TypeVar("T")

# Our clock against the server's, when no ``Date`` header has told the difference yet.
UNKNOWN_SKEW_S = 120.0
# ``Date`` has a resolution of a second, and history times may be rounded.
DATE_SLACK_S = 2.0


class Calls:
    """Every API call of a run, with its retries and its rate permits."""

    def __init__(self, client: ApiClient, files: Files, *, limiter: RateLimiter,
                 counters: Counters, clock: Clock, rng: random.Random, cfg: RunConfig,
                 inflight: InFlight | None = None) -> None:
        self.client = client
        self.files = files
        self.limiter = limiter
        # Told of every API answer: pushback sizes the jobs in flight down.
        self._inflight = inflight
        self._counters = counters
        self._clock = clock
        self._rng = rng
        self._polls_limited = cfg.rate_scope == "all"
        self._rebase = cfg.rebase_stored_urls
        base = cfg.retry_base_delay_s
        self.submit_policy = RetryPolicy(max_attempts=6, max_elapsed_s=600.0, base_delay_s=base)
        self._policies: dict[Operation, RetryPolicy] = {
            "get": RetryPolicy(max_attempts=8, max_elapsed_s=600.0, base_delay_s=base),
            "download": RetryPolicy(max_attempts=6, max_elapsed_s=600.0, base_delay_s=base),
        }

    # -- submits (one attempt; the caller has passed the gate) ------------------------

    async def post(self, item: Item) -> Submitted:
        try:
            submitted = await self.client.submit(item.model, item.params)
        except RateLimitedError as exc:
            self.rate_limited(exc)
            raise
        except ServerError:
            self._answered("5xx")
            raise
        self.limiter.on_success()
        self._answered("ok")
        return submitted

    def rate_limited(self, exc: RateLimitedError) -> None:
        self._counters.rate_limited += 1
        self.limiter.on_rate_limited(exc.retry_after_s)
        self._answered("429")

    def _answered(self, answer: Literal["ok", "5xx", "429"]) -> None:
        if self._inflight is not None:
            self._inflight.answered(answer)

    # -- reads ------------------------------------------------------------------------

    async def status(self, sub: Submitted) -> JobStatus:
        self._counters.polls += 1
        return await self._retried("get", lambda: self.client.status(sub),
                                   limited=self._polls_limited, urgent=True)

    async def result(self, sub: Submitted) -> JobResult:
        self._counters.result_fetches += 1
        return await self._retried("get", lambda: self.client.result(sub.response_url),
                                   limited=self._polls_limited, urgent=True)

    async def find(self, item: Item, *, since_wall: float) -> list[Found]:
        """Jobs in the history with ``item``'s model and body created since ``since_wall``."""
        window = self.window(since_wall)
        return await self._retried(
            "get", lambda: reconcile.find(self.client, model=item.model, params=item.params,
                                          window=window), limited=self._polls_limited)

    async def jobs_since(self, model: str, *, since_wall: float) -> list[HistoryRow]:
        """Every job of ``model`` the history shows created since ``since_wall``."""
        window = self.window(since_wall)
        return await self._retried(
            "get", lambda: reconcile.jobs_since(self.client, model=model, window=window),
            limited=self._polls_limited)

    async def recover(self, item: Item, request_id: str, *, since_wall: float) -> Found | None:
        window = self.window(since_wall)
        return await self._retried(
            "get", lambda: reconcile.recover(self.client, request_id, model=item.model,
                                             samples=item.samples, window=window),
            limited=self._polls_limited)

    def window(self, since_wall: float) -> Window:
        """From ``since_wall`` (our clock) to now, in the server's time (its ``Date``)."""
        offset = self.client.server_offset_s
        slack = UNKNOWN_SKEW_S if offset is None else DATE_SLACK_S
        shift = offset or 0.0
        return Window(since_wall + shift - slack, self._clock.wall() + shift + slack)

    def local_time(self, server_time: float | None) -> float:
        """A time of the server's (a job's creation) on our clock; now when unknown."""
        if server_time is None:
            return self._clock.wall()
        return min(self._clock.wall(), server_time - (self.client.server_offset_s or 0.0))

    def submitted(self, request_id: str, status_url: str | None = None,
                  response_url: str | None = None) -> Submitted:
        """A job known by id only: its URLs are the API's documented ones where not stored."""
        base = f"{self.client.base_url}/v2/requests/{request_id}"
        return Submitted(request_id, self.stored(status_url) or f"{base}/status",
                         self.stored(response_url) or base)

    def stored(self, url: str | None) -> str | None:
        """A URL kept in the store, moved to the current server when it was an embedded
        one's (``rebase_stored_urls``): same path, today's origin."""
        if url is None or not self._rebase:
            return url
        return rebase(url, self.client.base_url)

    async def image(self, output: Output, dest: Path) -> Downloaded:
        """One output written to ``dest`` (downloaded, or decoded when inline), retried."""
        async def attempt() -> Downloaded:
            # Both remove ``dest`` themselves when they fail, cancelled or not.
            if output.url is not None:
                return await self.files.download(output.url, dest)
            return await self.files.decode(output.data or "", dest)

        return await self._retried("download", attempt, limited=False)

    async def _retried(self, operation: Operation, call: Callable[[], Awaitable[T]], *,
                       limited: bool, urgent: bool = False) -> T:
        api = operation != "download"  # image hosts are not the API: no pushback from them

        async def attempt() -> T:
            if limited:
                await self.limiter.acquire(urgent=urgent)
            try:
                value = await call()
            except RateLimitedError as exc:
                self.rate_limited(exc)
                raise
            except ServerError:
                if api:
                    self._answered("5xx")
                raise
            if limited:
                self.limiter.on_success()
            if api:
                self._answered("ok")
            return value

        def count_retry(exc: BaseException, attempt: int, delay_s: float) -> None:
            self._counters.retries += 1

        return await retrying(attempt, policy=self._policies[operation], operation=operation,
                              clock=self._clock, rng=self._rng, on_retry=count_retry)
