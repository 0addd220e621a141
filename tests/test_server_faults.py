"""Faults on demand: each kind happens when its rate is 1, and is counted."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from batchgen.clock import ManualClock


@pytest.mark.parametrize("code", [500, 502, 503, 504])
async def test_injected_5xx(local_server, api, code: int) -> None:
    """An error rate of 1 answers that 5xx with a JSON error and creates no job."""
    server = await local_server(**{f"error_{code}_rate": 1.0})
    answer = await api(server).submit()
    assert answer.status == code
    assert "error" in answer.json()
    stats = server.stats()
    assert stats["faults"] == {str(code): 1}
    assert stats["submits_accepted"] == 0
    assert stats["submits_rejected"] == {str(code): 1}


async def test_error_rates_share_one_roll(local_server, api) -> None:
    """Stacked error rates summing to 1 answer only those codes."""
    server = await local_server(error_502_rate=0.5, error_503_rate=0.5, rng_seed=1)
    codes = {(await api(server).status("x")).status for _ in range(30)}
    assert codes == {502, 503}


async def test_faults_replay_with_the_same_seed(local_server, api) -> None:
    """The same rng_seed gives the same sequence of faults."""
    runs = []
    for _ in range(2):
        server = await local_server(error_500_rate=0.5, rng_seed=42)
        runs.append([(await api(server).status("x")).status for _ in range(20)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {500, 404}


async def test_drop_before_creates_no_job(local_server, api) -> None:
    """A drop before acceptance closes the connection and no job exists."""
    server = await local_server(drop_before_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api(server).submit()
    assert server.stats()["submits_accepted"] == 0
    assert server.stats()["faults"] == {"drop_before": 1}
    assert len(server.state.book) == 0


async def test_drop_after_creates_the_job(local_server, api) -> None:
    """A drop after acceptance leaves a job that shows up in history."""
    server = await local_server(drop_after_rate=1.0, latency_s=0.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api(server).submit({"prompt": "lost answer"})
    assert server.stats()["submits_accepted"] == 1
    assert server.stats()["faults"] == {"drop_after": 1}
    rows = (await api(server).history()).json()["data"]
    assert [r["request_body"] for r in rows] == [{"prompt": "lost answer"}]


async def test_slow_answer_waits_slow_s(local_server, api, clock: ManualClock, settle) -> None:
    """A slow answer is held until slow_s has passed on the server clock."""
    server = await local_server(clock=clock, slow_rate=1.0, slow_s=30.0)
    call = asyncio.create_task(api(server).submit())
    await settle(lambda: clock.sleepers == 1)
    clock.advance(29)
    assert not call.done()
    clock.advance(1)
    assert (await call).status == 200
    assert server.stats()["faults"] == {"slow": 1}


async def test_truncated_download(local_server, api) -> None:
    """A truncated download promises the full length, sends less, and closes."""
    server = await local_server(truncate_rate=1.0, latency_s=0.0)
    client = api(server)
    rid = (await client.submit()).json()["request_id"]
    url = (await client.result(rid)).json()["output"]
    with pytest.raises(aiohttp.ClientPayloadError):
        await client.download(url)
    assert server.stats()["faults"] == {"truncate": 1}


@pytest.mark.parametrize("seed", [0, 1])
async def test_non_json_error_bodies(local_server, api, seed: int) -> None:
    """With non_json_rate 1 error bodies are text/plain or HTML, never JSON."""
    server = await local_server(non_json_rate=1.0, rng_seed=seed)
    client = api(server)
    client.key = "SG_wrong"
    types = {(await client.submit()).content_type for _ in range(12)}
    assert types == {"text/plain", "text/html"}
    assert server.stats()["faults"] == {"non_json": 12}


async def test_drop_after_an_aimed_submit(local_server, api) -> None:
    """drop_after_submits drops exactly the numbered accepted submits, with no rate."""
    server = await local_server(drop_after_submits=(2,), latency_s=0.0)
    client = api(server)
    assert (await client.submit({"prompt": "first"})).status == 200
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.submit({"prompt": "second"})
    assert (await client.submit({"prompt": "third"})).status == 200
    assert (server.stats()["submits_accepted"], server.stats()["faults"]) == (3, {"drop_after": 1})
    rows = (await client.history()).json()["data"]
    assert [r["request_body"]["prompt"] for r in rows] == ["third", "second", "first"]


async def test_garbled_result(local_server, api) -> None:
    """A garbled result is a 200 JSON answer whose body does not parse; status is untouched."""
    server = await local_server(garbled_result_rate=1.0, latency_s=0.0)
    client = api(server)
    rid = (await client.submit()).json()["request_id"]
    assert (await client.status(rid)).json()["status"] == "COMPLETED"
    answer = await client.result(rid)
    assert (answer.status, answer.content_type) == (200, "application/json")
    with pytest.raises(ValueError):
        answer.json()
    assert server.stats()["faults"] == {"garbled_result": 1}


async def test_wrong_result(local_server, api) -> None:
    """A wrong result carries the requested id with another job's prompt, seed and images."""
    server = await local_server(wrong_result_rate=1.0, latency_s=0.0)
    client = api(server)
    alone = (await client.submit({"prompt": "mine", "seed": 1})).json()["request_id"]
    assert (await client.result(alone)).json()["prompt"] == "mine"
    other = (await client.submit({"prompt": "theirs", "seed": 2})).json()["request_id"]
    wrong = (await client.result(alone)).json()
    assert (wrong["request_id"], wrong["prompt"], wrong["seed"]) == (alone, "theirs", 2)
    assert other in wrong["output"]
    assert server.stats()["faults"] == {"wrong_result": 1}
