"""The local server's sliding-minute rate limit, on a ManualClock."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from batchgen.clock import ManualClock
from batchgen.server.ratelimit import reset_header


async def test_429_with_reset_header_and_no_retry_after(local_server, api, clock) -> None:
    """The submit past the limit gets 429, the reset header, and no Retry-After."""
    client = api(await local_server(clock=clock, rpm=2))
    assert (await client.submit()).status == 200
    clock.advance(10)
    assert (await client.submit()).status == 200
    clock.advance(10)
    answer = await client.submit()
    assert answer.status == 429
    headers = {k.lower(): v for k, v in answer.headers.items()}
    assert "retry-after" not in headers
    oldest_leaves = datetime.fromtimestamp(clock.wall() - 20 + 60, UTC)
    assert headers["x-rate-limit-reset-at-utc"] == oldest_leaves.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "error" in answer.json()


async def test_window_slides(local_server, api, clock: ManualClock) -> None:
    """Once the oldest request is 60 s old a new submit passes."""
    client = api(await local_server(clock=clock, rpm=1))
    assert (await client.submit()).status == 200
    clock.advance(59.9)
    assert (await client.submit()).status == 429
    clock.advance(0.1)
    assert (await client.submit()).status == 200


async def test_rejected_requests_do_not_count(local_server, api, clock) -> None:
    """Refused submits (400, 429) do not take a slot in the window."""
    client = api(await local_server(clock=clock, rpm=1))
    assert (await client.submit({"samples": 1})).status == 400
    assert (await client.submit()).status == 200
    assert (await client.submit()).status == 429
    clock.advance(60)
    assert (await client.submit()).status == 200


async def test_polls_free_with_submits_scope(local_server, api, clock) -> None:
    """With rpm_scope submits, polls neither count nor get limited."""
    client = api(await local_server(clock=clock, rpm=1, rpm_scope="submits"))
    rid = (await client.submit()).json()["request_id"]
    for _ in range(5):
        assert (await client.status(rid)).status == 200


async def test_polls_count_with_all_scope(local_server, api, clock) -> None:
    """With rpm_scope all, a poll takes a slot and can be refused with 429."""
    client = api(await local_server(clock=clock, rpm=2, rpm_scope="all"))
    rid = (await client.submit()).json()["request_id"]
    assert (await client.status(rid)).status == 200
    assert (await client.status(rid)).status == 429
    assert (await client.submit()).status == 429


async def test_never_more_than_rpm_in_any_window(local_server, api, clock) -> None:
    """Over random arrivals no 60-second window holds more than rpm accepted submits."""
    rpm = 5
    client = api(await local_server(clock=clock, rpm=rpm))
    rng = random.Random(3)
    accepted: list[float] = []
    for _ in range(120):
        clock.advance(rng.uniform(0, 6))
        if (await client.submit()).status == 200:
            accepted.append(clock.now())
    assert len(accepted) > rpm
    for i, start in enumerate(accepted):
        assert sum(1 for t in accepted[i:] if t < start + 60) <= rpm


async def test_429_counted_in_stats(local_server, api, clock) -> None:
    """A rate-limited submit is counted as refused with 429."""
    server = await local_server(clock=clock, rpm=1)
    await api(server).submit()
    await api(server).submit()
    assert server.stats()["submits_rejected"] == {"429": 1}
    assert server.stats()["rate_limited"] == 1


def test_reset_header_rounds_up() -> None:
    """A fractional reset moment is rounded up to the next whole second."""
    assert reset_header(1_700_000_000.2) == "2023-11-14T22:13:21Z"


async def test_date_header_follows_the_server_clock(local_server, api) -> None:
    """`Date` comes from the server's clock, the same clock as the 429 reset time."""
    clock = ManualClock(wall_start=2_000_000_000.0)
    server = await local_server(clock=clock)
    answer = await api(server).submit()
    assert parsedate_to_datetime(answer.headers["Date"]).timestamp() == 2_000_000_000.0


async def test_every_answer_has_the_date(local_server, api) -> None:
    """Refusals, polls, history and downloads carry `Date` too, from the same clock."""
    clock = ManualClock(wall_start=2_000_000_000.0)
    server = await local_server(clock=clock, rpm=1, latency_s=0.0)
    client = api(server)
    rid = (await client.submit()).json()["request_id"]
    url = (await client.result(rid)).json()["output"]
    answers = [await client.submit(), await client.status("nope"), await client.history(),
               await client.request("GET", "/v2/sd1.5-epicrealism")]
    client.key = "SG_wrong"
    answers.append(await client.submit())
    assert [a.status for a in answers] == [429, 404, 200, 405, 401]
    dates = [a.headers["Date"] for a in answers] + [(await client.download(url))[2]["Date"]]
    assert {parsedate_to_datetime(d).timestamp() for d in dates} == {2_000_000_000.0}
