"""Conformance with the official SDK (segmind 1.3.0), run in a thread beside the server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio.to_thread
import pytest
from segmind import SegmindClient
from segmind.exceptions import SegmindError
from segmind.v2 import InferenceFailed

from batchgen.server import FAIL_MARKER

MODEL = "sd1.5-epicrealism"
ClientFactory = Callable[..., SegmindClient]


@pytest.fixture
def sdk() -> Iterator[ClientFactory]:
    """Factory of SDK clients pointed at a local server; closes their HTTP clients."""
    made: list[SegmindClient] = []

    def make(server: Any, api_key: str | None = None) -> SegmindClient:
        client = SegmindClient(api_key=api_key or server.api_key, base_url=f"{server.base_url}/v1")
        made.append(client)
        return client

    yield make
    for client in made:
        client._client.close()


async def test_submit_async_wait_completes(local_server, sdk: ClientFactory) -> None:
    """submit_async(...).wait() returns the COMPLETED result."""
    client = sdk(await local_server(latency_s=0.0))
    job = await anyio.to_thread.run_sync(
        lambda: client.submit_async(MODEL, prompt="a lighthouse", seed=3)
    )
    result = await anyio.to_thread.run_sync(job.wait)
    assert result["status"] == "COMPLETED"
    assert result["seed"] == 3
    assert result["output"].endswith(".png")


async def test_run_completes(local_server, sdk: ClientFactory) -> None:
    """run() submits and waits to COMPLETED."""
    client = sdk(await local_server(latency_s=0.0))
    result = await anyio.to_thread.run_sync(lambda: client.run(MODEL, prompt="x", samples=2))
    assert result["status"] == "COMPLETED"
    assert len(result["images"]) == 2


async def test_failed_job_raises_inference_failed(local_server, sdk: ClientFactory) -> None:
    """A failing job raises InferenceFailed carrying the server's error."""
    server = await local_server(latency_s=0.0)
    client = sdk(server)
    with pytest.raises(InferenceFailed) as info:
        await anyio.to_thread.run_sync(lambda: client.run(MODEL, prompt=f"x {FAIL_MARKER}"))
    assert info.value.detail == next(server.state.book.newest_first()).error


async def test_bad_key_raises_401(local_server, sdk: ClientFactory) -> None:
    """A bad key raises SegmindError with status 401."""
    client = sdk(await local_server(), api_key="SG_wrong")
    with pytest.raises(SegmindError) as info:
        await anyio.to_thread.run_sync(lambda: client.run(MODEL, prompt="x"))
    assert info.value.status == 401


async def test_run_sync_returns_png(local_server, sdk: ClientFactory) -> None:
    """run_sync() posts to /v1/{slug} and gets PNG bytes."""
    client = sdk(await local_server(latency_s=0.0))
    response = await anyio.to_thread.run_sync(lambda: client.run_sync(MODEL, prompt="x"))
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
