"""Job lifecycle on the local server, driven by a ManualClock: exact, no real waiting."""

from __future__ import annotations

import base64

from batchgen.clock import ManualClock
from batchgen.server.png import PNG_SIGNATURE


async def test_submit_answer_shape(local_server, api) -> None:
    """The submit answer carries request_id, QUEUED and the three URLs from the Host used."""
    server = await local_server()
    body = (await api(server).submit()).json()
    rid = body["request_id"]
    assert body["status"] == "QUEUED"
    assert body["status_url"] == f"{server.base_url}/v2/requests/{rid}/status"
    assert body["poll_url"] == body["status_url"]
    assert body["response_url"] == f"{server.base_url}/v2/requests/{rid}"


async def test_urls_follow_host_header(local_server, api) -> None:
    """URLs are built from the Host header the client sent."""
    answer = await api(await local_server()).submit(headers={"Host": "example.test:9"})
    assert answer.json()["status_url"].startswith("http://example.test:9/v2/requests/")


async def test_states_follow_the_clock(local_server, api, clock: ManualClock) -> None:
    """With one worker the second job is QUEUED, then PROCESSING, then COMPLETED."""
    client = api(await local_server(clock=clock, workers=1, latency_s=10.0))
    first = (await client.submit({"prompt": "one"})).json()["request_id"]
    second = (await client.submit({"prompt": "two"})).json()["request_id"]
    assert (await client.status(first)).json()["status"] == "PROCESSING"
    assert (await client.status(second)).json() == {
        "status": "QUEUED", "request_id": second, "metrics": {}
    }
    clock.advance(10)
    assert (await client.status(first)).json()["status"] == "COMPLETED"
    assert (await client.status(second)).json()["status"] == "PROCESSING"
    clock.advance(10)
    done = (await client.status(second)).json()
    assert done["status"] == "COMPLETED"
    assert done["metrics"]["queue_time"] == 10.0
    assert done["metrics"]["inference_time"] == 10.0


async def test_workers_run_in_parallel(local_server, api, clock: ManualClock) -> None:
    """Two workers run two jobs at once."""
    client = api(await local_server(clock=clock, workers=2, latency_s=10.0))
    ids = [(await client.submit({"prompt": p})).json()["request_id"] for p in "ab"]
    clock.advance(10)
    assert [(await client.status(i)).json()["status"] for i in ids] == ["COMPLETED"] * 2


async def test_inference_time_scales(local_server, api, clock: ManualClock) -> None:
    """Inference time grows with steps, pixels and samples."""
    client = api(await local_server(clock=clock, latency_s=1.0))
    body = {"prompt": "x", "num_inference_steps": 40, "img_width": 1024, "samples": 2}
    rid = (await client.submit(body)).json()["request_id"]
    clock.advance(100)
    assert (await client.status(rid)).json()["metrics"]["inference_time"] == 8.0


async def test_jitter_is_seeded(local_server, api, clock: ManualClock) -> None:
    """Jitter changes inference time, and the same seed gives the same times."""
    times = []
    for _ in range(2):
        client = api(await local_server(clock=clock, latency_s=1.0, jitter=0.5, rng_seed=7))
        rid = (await client.submit()).json()["request_id"]
        clock.advance(100)
        times.append((await client.status(rid)).json()["metrics"]["inference_time"])
    assert times[0] == times[1] != 1.0


async def test_result_before_done_answers_like_status(local_server, api, clock) -> None:
    """GET /v2/requests/{id} before COMPLETED answers the light status."""
    client = api(await local_server(clock=clock))
    rid = (await client.submit()).json()["request_id"]
    answer = await client.result(rid)
    assert answer.status == 200
    assert set(answer.json()) == {"status", "request_id", "metrics"}


async def test_result_body(local_server, api, clock: ManualClock) -> None:
    """A COMPLETED result has output, one image per sample, seed, prompt and metrics."""
    client = api(await local_server(clock=clock, cost_per_image=0.5, credits=10))
    body = {"prompt": "a red fox", "samples": 3, "seed": 10452167572}
    rid = (await client.submit(body)).json()["request_id"]
    clock.advance(5)
    result = (await client.result(rid)).json()
    assert result["status"] == "COMPLETED"
    assert result["seed"] == 10452167572
    assert result["prompt"] == "a red fox"
    assert len(result["images"]) == 3
    assert result["output"] == result["images"][0]["url"]
    assert result["metrics"]["cost"] == 1.5
    assert result["metrics"]["remaining_credits"] == 8.5
    assert set(result["metrics"]) == {
        "inference_time", "queue_time", "total_time", "cost", "remaining_credits"
    }
    for k, image in enumerate(result["images"]):
        assert image["url"].endswith(f"/files/{rid}/{k}.png")
        assert image["content_type"] == "image/png"
        assert image["file_name"] == f"{rid}_{k}.png"
        assert image["file_size"] > 0


async def test_random_seed_is_reported(local_server, api, clock: ManualClock) -> None:
    """A seed of -1 comes back as the seed actually used: sending it gives the same image."""
    client = api(await local_server(clock=clock))
    rid = (await client.submit({"prompt": "x", "seed": -1})).json()["request_id"]
    clock.advance(5)
    drawn = (await client.result(rid)).json()
    assert drawn["seed"] >= 0
    again = (await client.submit({"prompt": "x", "seed": drawn["seed"]})).json()["request_id"]
    other = (await client.submit({"prompt": "x", "seed": drawn["seed"] + 1})).json()["request_id"]
    clock.advance(5)
    images = [(await client.download((await client.result(r)).json()["output"]))[1]
              for r in (rid, again, other)]
    assert images[0] == images[1] != images[2]


async def test_request_ids_are_not_seeded(local_server, api, clock: ManualClock) -> None:
    """Two servers with one rng_seed draw the same seeds and times but never the same ids."""
    runs = []
    for _ in range(2):
        client = api(await local_server(clock=clock, rng_seed=7, jitter=0.5, fail_rate=0.5))
        ids = [(await client.submit({"prompt": "x", "seed": -1})).json()["request_id"]
               for _ in range(4)]
        clock.advance(100)
        answers = [(await client.status(rid)).json() for rid in ids]
        results = [(await client.result(rid)).json() for rid in ids]
        runs.append((ids, [a["status"] for a in answers],
                     [a["metrics"]["inference_time"] for a in answers],
                     [r.get("seed") for r in results]))
    assert not set(runs[0][0]) & set(runs[1][0])
    assert runs[0][1:] == runs[1][1:]


async def test_images_are_pngs_of_the_requested_size(local_server, api, clock) -> None:
    """Each image URL serves a PNG of the requested size with the advertised length."""
    client = api(await local_server(clock=clock))
    body = {"prompt": "x", "img_width": 768, "img_height": 1024, "samples": 2}
    rid = (await client.submit(body)).json()["request_id"]
    clock.advance(60)
    images = (await client.result(rid)).json()["images"]
    client.key = None  # downloads are public
    for image in images:
        status, data, headers = await client.download(image["url"])
        assert status == 200
        assert data.startswith(PNG_SIGNATURE)
        assert int.from_bytes(data[16:20], "big") == 768
        assert int.from_bytes(data[20:24], "big") == 1024
        assert int(headers["Content-Length"]) == len(data) == image["file_size"]
    assert images[0]["url"] != images[1]["url"]


async def test_base64_output(local_server, api, clock: ManualClock) -> None:
    """With base64 true, output is the first image's PNG as base64."""
    client = api(await local_server(clock=clock))
    rid = (await client.submit({"prompt": "x", "base64": True})).json()["request_id"]
    clock.advance(5)
    result = (await client.result(rid)).json()
    assert base64.b64decode(result["output"]).startswith(PNG_SIGNATURE)
    _, data, _ = await client.download(result["images"][0]["url"])
    assert base64.b64decode(result["output"]) == data


async def test_records_expire(local_server, api, clock: ManualClock) -> None:
    """After retention both GETs answer 404."""
    client = api(await local_server(clock=clock, retention_s=3600))
    rid = (await client.submit()).json()["request_id"]
    clock.advance(3599)
    assert (await client.result(rid)).status == 200
    clock.advance(1)
    assert (await client.status(rid)).status == 404
    assert (await client.result(rid)).status == 404


async def test_v1_returns_image_bytes(local_server, api) -> None:
    """The blocking v1 call answers the PNG bytes of the first image."""
    client = api(await local_server(latency_s=0.0))
    answer = await client.request("POST", "/v1/sd1.5-epicrealism", json={"prompt": "x"})
    assert answer.status == 200
    assert answer.content_type == "image/png"


async def test_v1_waits_for_the_job(local_server, api, clock: ManualClock, settle) -> None:
    """The v1 call answers only once the job's time has passed on the server clock."""
    import asyncio

    client = api(await local_server(clock=clock, latency_s=30.0))
    call = asyncio.create_task(
        client.request("POST", "/v1/sd1.5-epicrealism", json={"prompt": "x", "base64": True})
    )
    await settle(lambda: clock.sleepers == 1)
    assert not call.done()
    clock.advance(30)
    answer = await call
    assert base64.b64decode(answer.json()["image"]).startswith(PNG_SIGNATURE)


async def test_file_of_unfinished_job_is_404(local_server, api, clock: ManualClock) -> None:
    """No file is served before the job completes."""
    server = await local_server(clock=clock)
    rid = (await api(server).submit()).json()["request_id"]
    status, _, _ = await api(server).download(f"{server.base_url}/files/{rid}/0.png")
    assert status == 404
