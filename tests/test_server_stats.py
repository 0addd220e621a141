"""The /__stats counters a test reads instead of mocks."""

from __future__ import annotations

from batchgen.clock import ManualClock
from batchgen.server import FAIL_MARKER
from batchgen.server.stats import body_key


async def test_stats_endpoint_matches_method(local_server, api) -> None:
    """GET /__stats needs no key and answers what LocalServer.stats() returns."""
    server = await local_server()
    client = api(server)
    client.key = None
    answer = await client.request("GET", "/__stats")
    assert answer.status == 200
    assert answer.json() == server.stats()


async def test_counters(local_server, api, clock: ManualClock) -> None:
    """Submits, polls, result fetches, downloads and job outcomes are counted."""
    server = await local_server(clock=clock)
    client = api(server)
    ok = (await client.submit({"prompt": "ok"})).json()["request_id"]
    await client.submit({"prompt": f"no {FAIL_MARKER}"})
    await client.submit({"samples": 2})
    await client.status(ok)
    clock.advance(10)
    await client.status(ok)
    result = (await client.result(ok)).json()
    await client.download(result["output"])
    stats = server.stats()
    assert stats["submits_accepted"] == 2
    assert stats["submits_rejected"] == {"400": 1}
    assert stats["polls"] == {"status": 2, "result": 1}
    assert stats["result_fetches"] == 1
    assert stats["downloads"] == 1
    assert (stats["jobs_completed"], stats["jobs_failed"], stats["jobs_in_flight"]) == (1, 1, 0)


async def test_duplicate_bodies(local_server, api) -> None:
    """The same body accepted twice is one duplicate; key order does not matter."""
    server = await local_server()
    client = api(server)
    await client.submit({"prompt": "x", "seed": 1})
    await client.submit({"seed": 1, "prompt": "x"})
    await client.submit({"prompt": "y"})
    stats = server.stats()
    assert stats["duplicate_bodies"] == 1
    assert stats["accepted_by_body"]['sd1.5-epicrealism {"prompt":"x","seed":1}'] == 2
    assert stats["accepted_by_body"][body_key("sd1.5-epicrealism", {"seed": 1, "prompt": "x"})] == 2


async def test_detection_delay(local_server, api, clock: ManualClock) -> None:
    """The first terminal answer for a job records how long after its end it came."""
    server = await local_server(clock=clock, latency_s=1.0)
    client = api(server)
    rid = (await client.submit({"prompt": "ok"})).json()["request_id"]
    await client.status(rid)
    clock.advance(1.5)
    await client.status(rid)
    await client.result(rid)
    delay = server.stats()["detection_delay_s"]
    assert delay["count"] == 1
    assert abs(delay["p50"] - 0.5) < 1e-6


async def test_counters_of_forgotten_jobs_are_pruned(local_server, api, clock) -> None:
    """Once history retention forgets a job its body leaves accepted_by_body: no endless growth."""
    server = await local_server(clock=clock, retention_s=60, history_retention_s=60)
    client = api(server)
    await client.submit({"prompt": "old"})
    await client.submit({"prompt": "old"})
    clock.advance(100)
    await client.submit({"prompt": "new"})
    assert server.stats()["duplicate_bodies"] == 1
    clock.advance(20)
    stats = server.stats()
    assert stats["accepted_by_body"] == {'sd1.5-epicrealism {"prompt":"new"}': 1}
    assert (stats["duplicate_bodies"], stats["submits_accepted"]) == (0, 3)
    assert len(server.state.book) == 1
