"""Whether and when to try a call again: one decision function and a loop around it.

``should_retry`` is the only place that knows which failures are worth another attempt
(the table in /work/shared/segmind/API-FACTS.md, "Errors"); the shape follows
openai-python's ``_should_retry`` and stamina: bounded in attempts and total time,
exponential backoff with full jitter, server-given waits honoured only up to a cap.

It also parses the 429 wait: ``x-rate-limit-reset-at-utc`` (Segmind) or ``Retry-After``.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, TypeVar

from batchgen.clock import Clock
from batchgen.errors import (
    ApiError,
    BadResponseError,
    DownloadError,
    RateLimitedError,
    ServerError,
    TransportError,
)

log = logging.getLogger(__name__)

Operation = Literal["submit", "get", "download"]
T = TypeVar("T")

_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
# A bare number below this is a count of seconds, not an epoch time (1973-03-03).
_EPOCH_FLOOR = 1e8
# An epoch number above this is in milliseconds (year 5138 in seconds).
_EPOCH_MS_FLOOR = 1e11


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Bounds of the retry loop; every field is validated when built."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_elapsed_s: float = 300.0
    max_server_delay_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("base_delay_s", "max_delay_s", "max_elapsed_s", "max_server_delay_s"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")


def backoff_s(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Full-jitter backoff (AWS "Exponential Backoff and Jitter"): U(0, min(cap, base * 2**n)).

    ``attempt`` is the 0-based index of the attempt that just failed.
    """
    exponent = min(max(attempt, 0), 62)
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2.0**exponent)
    return (rng or random).uniform(0.0, ceiling)


def retry_reason(exc: BaseException) -> str | None:
    """Why ``exc`` is worth another attempt, or None; ignores attempt and time bounds."""
    if isinstance(exc, RateLimitedError):
        return "rate limited (429)"
    if isinstance(exc, ServerError):
        return f"server error ({exc.status})"
    if isinstance(exc, TransportError):
        return "transport error"
    if isinstance(exc, DownloadError):
        return "download failed" if exc.retryable else None
    if isinstance(exc, BadResponseError):
        return "unusable answer"
    return None


def should_retry(
    exc: BaseException,
    *,
    attempt: int,
    elapsed_s: float,
    policy: RetryPolicy,
    operation: Operation,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, or None: do not retry.

    ``attempt`` is the 0-based index of the attempt that just failed (0 after the first
    failure), so ``attempt + 1`` attempts have been made. A submit is
    retried only when it surely never reached the server: there is no idempotency key,
    so a resent POST can create (and bill) a second job.
    """
    if not isinstance(exc, ApiError) or retry_reason(exc) is None:
        return None
    if operation == "submit":
        if isinstance(exc, TransportError) and exc.maybe_sent:
            return None  # in doubt: a job may exist; the caller must look before resending
        if isinstance(exc, BadResponseError):
            return None  # a 2xx we cannot read may still have created a job
    if attempt + 1 >= policy.max_attempts:
        return None
    if isinstance(exc, RateLimitedError) and exc.retry_after_s is not None:
        delay = min(max(exc.retry_after_s, 0.0), policy.max_server_delay_s)
    else:
        delay = backoff_s(attempt, policy, rng)
    if elapsed_s + delay > policy.max_elapsed_s:
        return None
    return delay


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    operation: Operation,
    clock: Clock,
    rng: random.Random | None = None,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
) -> T:
    """Await ``call()`` until it succeeds or ``should_retry`` says no; then re-raise.

    ``on_retry(exc, attempt, delay_s)`` runs before each wait (e.g. to slow a rate limiter);
    ``attempt`` is the 0-based index of the attempt that failed.
    """
    started = clock.now()
    attempt = -1
    while True:
        attempt += 1
        try:
            return await call()
        except ApiError as exc:
            delay = should_retry(
                exc, attempt=attempt, elapsed_s=clock.now() - started, policy=policy,
                operation=operation, rng=rng,
            )
            if delay is None:
                raise
            log.info(
                "retrying %s in %.2fs after attempt %d: %s: %s",
                operation, delay, attempt + 1, retry_reason(exc), exc,
            )
            if on_retry is not None:
                on_retry(exc, attempt, delay)
        await clock.sleep(delay)


def parse_time(value: str) -> float | None:
    """An absolute time as epoch seconds from ISO 8601, epoch (s or ms) or HTTP-date; else None."""
    text = value.strip()
    if not text:
        return None
    if _NUMBER.match(text):
        number = float(text)
        return number / 1000.0 if number > _EPOCH_MS_FLOOR else number
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def server_wait_s(headers: Mapping[str, str], *, local_wall: float) -> float | None:
    """Seconds the server asks us to wait, from a 429's headers; None if it says nothing.

    Segmind sends ``x-rate-limit-reset-at-utc`` (an absolute time). The wait is measured
    against the response's ``Date`` when present, so a skewed local clock does not matter.
    ``Retry-After`` (seconds or HTTP-date, RFC 9110 10.2.3) is honoured for other servers.
    """
    date_header = headers.get("Date")
    server_now = parse_time(date_header) if date_header else None
    now = local_wall if server_now is None else server_now
    for name in ("x-rate-limit-reset-at-utc", "Retry-After"):
        raw = headers.get(name)
        if raw is None:
            continue
        text = raw.strip()
        if _NUMBER.match(text) and (name == "Retry-After" or float(text) < _EPOCH_FLOOR):
            return max(0.0, float(text))  # a relative number of seconds
        reset = parse_time(text)
        if reset is not None:
            return max(0.0, reset - now)
    return None
