"""Prices of the local server: results, balances and history agree on what a job cost."""

from __future__ import annotations

from typing import Any

import pytest

from batchgen.clock import ManualClock
from batchgen.server import FAIL_MARKER

# (body, reference jobs of GPU work: steps/20 * pixels/512^2 * samples)
BODIES = [
    ({"prompt": "a"}, 1.0),
    ({"prompt": "b", "num_inference_steps": 40}, 2.0),
    ({"prompt": "c", "img_width": 1024, "img_height": 768}, 3.0),
    ({"prompt": "d", "num_inference_steps": 30, "img_width": 768, "samples": 4}, 9.0),
]


async def _finish(client: Any, clock: ManualClock, bodies: list[dict[str, Any]]) -> list[str]:
    ids = [(await client.submit(body)).json()["request_id"] for body in bodies]
    clock.advance(1000)
    return ids


@pytest.mark.parametrize(("pricing", "by_work"), [("gpu", True), ("image", False)])
async def test_cost_follows_the_pricing(local_server, api, clock, pricing, by_work) -> None:
    """"gpu" charges the reference price times steps x pixels x samples; "image" per sample."""
    client = api(await local_server(clock=clock, pricing=pricing, cost_per_image=0.01))
    ids = await _finish(client, clock, [body for body, _ in BODIES])
    for rid, (body, work) in zip(ids, BODIES, strict=True):
        expected = round(0.01 * (work if by_work else body.get("samples", 1)), 6)
        assert (await client.result(rid)).json()["metrics"]["cost"] == expected


async def test_history_rows_carry_the_cost_and_body(local_server, api, clock) -> None:
    """Each history row has the request's own cost and the body as sent, one per output."""
    client = api(await local_server(clock=clock, pricing="gpu", cost_per_image=0.5))
    ids = await _finish(client, clock, [body for body, _ in BODIES])
    rows = (await client.history(per_page=100)).json()["data"]
    for rid, (body, work) in zip(ids, BODIES, strict=True):
        mine = [r for r in rows if r["request_id"] == rid]
        assert len(mine) == body.get("samples", 1)
        assert {r["credits_deduction"] for r in mine} == {0.5 * work}
        assert all(r["request_body"] == body for r in mine)
        result = (await client.result(rid)).json()
        assert result["metrics"]["cost"] == mine[0]["credits_deduction"]


async def test_remaining_credits_newest_by_completion(local_server, api, clock) -> None:
    """A job's remaining_credits is the balance after its own charge, in order of end time."""
    server = await local_server(clock=clock, workers=2, latency_s=1.0, pricing="gpu",
                                cost_per_image=1.0, credits=100.0)
    client = api(server)
    slow = (await client.submit({"prompt": "slow", "num_inference_steps": 100})).json()
    fast = (await client.submit({"prompt": "fast"})).json()
    clock.advance(1)
    assert (await client.status(fast["request_id"])).json()["metrics"]["remaining_credits"] == 99.0
    clock.advance(10)
    last = (await client.status(slow["request_id"])).json()["metrics"]
    assert (last["cost"], last["remaining_credits"]) == (5.0, 94.0)


async def test_price_decides_the_406(local_server, api, clock) -> None:
    """With gpu pricing a large job is refused for credits while a small one still passes."""
    client = api(await local_server(clock=clock, pricing="gpu", cost_per_image=1.0, credits=3.4))
    big = await client.submit({"prompt": "x", "img_width": 1024, "img_height": 1024})
    assert big.status == 406
    assert (await client.submit({"prompt": "x", "img_width": 768})).status == 200
    assert (await client.submit({"prompt": "x", "num_inference_steps": 40})).status == 406
    assert (await client.submit({"prompt": "x"})).status == 200


async def test_failed_job_costs_nothing(local_server, api, clock) -> None:
    """A FAILED job is charged nothing: metrics, balance and history agree."""
    client = api(await local_server(clock=clock, pricing="gpu", cost_per_image=1.0, credits=10))
    failed, ok = await _finish(client, clock, [
        {"prompt": f"x {FAIL_MARKER}", "samples": 4}, {"prompt": "fine", "samples": 2},
    ])
    assert (await client.status(failed)).json()["metrics"]["cost"] == 0.0
    assert (await client.result(ok)).json()["metrics"]["remaining_credits"] == 8.0
    rows = (await client.history(status="FAILED")).json()["data"]
    assert [r["credits_deduction"] for r in rows] == [0.0]
