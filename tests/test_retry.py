"""should_retry decision table, backoff bounds, 429 header parsing and the retrying loop."""

from __future__ import annotations

import logging
import random

import anyio
import pytest

from batchgen.api.retry import (
    Operation,
    RetryPolicy,
    backoff_s,
    parse_time,
    retrying,
    server_wait_s,
    should_retry,
)
from batchgen.clock import ManualClock
from batchgen.errors import (
    ApiError,
    BadResponseError,
    DownloadError,
    FatalApiError,
    JobFailedError,
    RateLimitedError,
    RejectedError,
    RequestExpiredError,
    ServerError,
    TransportError,
)

POLICY = RetryPolicy(
    max_attempts=4, base_delay_s=1.0, max_delay_s=8.0, max_elapsed_s=100.0,
    max_server_delay_s=30.0,
)


def decide(exc: BaseException, operation: Operation, attempt: int = 0,
           elapsed_s: float = 0.0) -> float | None:
    return should_retry(exc, attempt=attempt, elapsed_s=elapsed_s, policy=POLICY,
                        operation=operation, rng=random.Random(1))


RETRYABLE: list[tuple[ApiError, Operation]] = [
    (ServerError("x", status=500), "submit"),
    (ServerError("x", status=503), "get"),
    (ServerError("x", status=502), "download"),
    (RateLimitedError("x", retry_after_s=None), "submit"),
    (TransportError("x", maybe_sent=False), "submit"),
    (TransportError("x", maybe_sent=True), "get"),
    (TransportError("x", maybe_sent=True), "download"),
    (DownloadError("truncated", retryable=True), "download"),
    (BadResponseError("x"), "get"),
]

NOT_RETRYABLE: list[tuple[BaseException, Operation]] = [
    (TransportError("x", maybe_sent=True), "submit"),
    (BadResponseError("no request_id"), "submit"),
    (RejectedError("x", status=400), "submit"),
    (FatalApiError("x", status=401), "submit"),
    (FatalApiError("x", status=403), "get"),
    (FatalApiError("x", status=404), "submit"),
    (FatalApiError("x", status=405), "submit"),
    (FatalApiError("x", status=406), "submit"),
    (FatalApiError("x", status=410), "submit"),
    (RequestExpiredError("x", status=404), "get"),
    (JobFailedError("x", status=422), "get"),
    (DownloadError("too large", retryable=False), "download"),
    (ApiError("x", status=418), "get"),
    (ValueError("x"), "get"),
]


@pytest.mark.parametrize(("exc", "operation"), RETRYABLE)
def test_retryable_failures_get_a_delay(exc: ApiError, operation: Operation) -> None:
    """Retryable failures get a delay within the first backoff step."""
    delay = decide(exc, operation)
    assert delay is not None and 0.0 <= delay <= POLICY.base_delay_s


@pytest.mark.parametrize(("exc", "operation"), NOT_RETRYABLE)
def test_final_failures_are_not_retried(exc: BaseException, operation: Operation) -> None:
    """Client errors, failed jobs and in-doubt submits are never retried."""
    assert decide(exc, operation) is None


def test_rate_limit_uses_server_wait() -> None:
    """A 429 with a server wait retries after exactly that wait."""
    assert decide(RateLimitedError("x", retry_after_s=12.5), "submit") == 12.5


def test_rate_limit_server_wait_is_capped() -> None:
    """A server wait above max_server_delay_s is cut to the cap."""
    assert decide(RateLimitedError("x", retry_after_s=1e6), "get") == POLICY.max_server_delay_s


def test_attempts_are_bounded() -> None:
    """After max_attempts attempts there is no further retry."""
    exc = ServerError("x", status=500)
    assert decide(exc, "get", attempt=POLICY.max_attempts - 2) is not None
    assert decide(exc, "get", attempt=POLICY.max_attempts - 1) is None


def test_elapsed_time_is_bounded() -> None:
    """A wait that would pass max_elapsed_s is not started."""
    exc = RateLimitedError("x", retry_after_s=10.0)
    assert decide(exc, "get", elapsed_s=95.0) is None


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0),
                                                  (10, 8.0), (500, 8.0)])
def test_backoff_full_jitter_bounds(attempt: int, ceiling: float) -> None:
    """Backoff is uniform in [0, min(cap, base * 2**attempt)] and spreads over that range."""
    rng = random.Random(42)
    delays = [backoff_s(attempt, POLICY, rng) for _ in range(500)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert max(delays) > 0.9 * ceiling and min(delays) < 0.1 * ceiling


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    """The same seed gives the same delays."""
    first = [backoff_s(2, POLICY, random.Random(7)) for _ in range(3)]
    assert first == [backoff_s(2, POLICY, random.Random(7)) for _ in range(3)]


@pytest.mark.parametrize(
    "field", ["max_attempts", "base_delay_s", "max_delay_s", "max_elapsed_s",
              "max_server_delay_s"],
)
def test_policy_validates_fields(field: str) -> None:
    """A negative (or zero-attempt) policy field is refused, naming the field."""
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: -1})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-14T22:13:20.500Z", 1_700_000_000.5),
        ("2023-11-14T22:13:20", 1_700_000_000.0),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
        ("1700000000", 1_700_000_000.0),
        ("1700000000.25", 1_700_000_000.25),
        ("1700000000000", 1_700_000_000.0),
        ("Tue, 14 Nov 2023 22:13:20 GMT", 1_700_000_000.0),
        ("", None),
        ("tomorrow", None),
    ],
)
def test_parse_time(text: str, expected: float | None) -> None:
    """Reset times parse from ISO 8601, epoch seconds/ms and HTTP-date."""
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-rate-limit-reset-at-utc": "1700000030"}, 30.0),
        ({"x-rate-limit-reset-at-utc": "1700000030", "Date": "Tue, 14 Nov 2023 22:13:30 GMT"},
         20.0),
        ({"x-rate-limit-reset-at-utc": "15"}, 15.0),
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:25 GMT"}, 5.0),
        ({"x-rate-limit-reset-at-utc": "1699999000"}, 0.0),
        ({"Date": "garbage", "x-rate-limit-reset-at-utc": "1700000004"}, 4.0),
        ({}, None),
    ],
)
def test_server_wait(headers: dict[str, str], expected: float | None) -> None:
    """The 429 wait is reset minus the server's Date (or our clock), never negative."""
    assert server_wait_s(headers, local_wall=1_700_000_000.0) == expected


async def test_retrying_sleeps_through_the_clock_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """retrying waits the decided delay on the clock, logs the reason, then succeeds."""
    clock = ManualClock()
    calls = 0
    events: list[tuple[int, float]] = []

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RateLimitedError("slow down", retry_after_s=5.0)
        return "ok"

    result: list[str] = []

    async def run() -> None:
        result.append(await retrying(
            flaky, policy=POLICY, operation="submit", clock=clock, rng=random.Random(0),
            on_retry=lambda exc, attempt, delay: events.append((attempt, delay)),
        ))

    with caplog.at_level(logging.INFO, logger="batchgen.api.retry"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await anyio.wait_all_tasks_blocked()
            assert clock.sleepers == 1 and calls == 1
            clock.advance(5.0)
    assert result == ["ok"] and events == [(0, 5.0)]
    assert "rate limited" in caplog.text


async def test_retrying_reraises_final_errors() -> None:
    """A failure should_retry refuses is raised at once, without sleeping."""
    clock = ManualClock()

    async def rejected() -> None:
        raise RejectedError("bad prompt", status=400)

    with pytest.raises(RejectedError):
        await retrying(rejected, policy=POLICY, operation="submit", clock=clock)


async def test_retrying_gives_up_after_max_attempts() -> None:
    """A call failing every time is tried max_attempts times, then its error is raised."""
    clock = ManualClock()
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ServerError("down", status=503)

    async def run() -> None:
        with pytest.raises(ServerError):
            await retrying(down, policy=POLICY, operation="get", clock=clock,
                           rng=random.Random(3))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        for _ in range(POLICY.max_attempts):
            await anyio.wait_all_tasks_blocked()
            clock.advance(POLICY.max_delay_s)
    assert calls == POLICY.max_attempts
