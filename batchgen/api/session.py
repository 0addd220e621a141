"""The HTTP sessions of one run: one for the API (it carries the key), one for image
files (it never does, so an output URL on another host cannot see the key)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp

from batchgen.api.client import ApiClient
from batchgen.api.download import Files
from batchgen.clock import Clock


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoints:
    """Where the API is, how to sign in, and how many connections each session keeps."""

    base_url: str
    history_url: str | None
    api_key: str
    timeout_s: float
    api_connections: int
    file_connections: int
    max_image_bytes: int


def _session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max(4, limit)))


@asynccontextmanager
async def open_api(endpoints: Endpoints, clock: Clock) -> AsyncIterator[tuple[ApiClient, Files]]:
    """The API client and the image downloader of a run; both closed on exit."""
    async with AsyncExitStack() as stack:
        api = await stack.enter_async_context(_session(endpoints.api_connections))
        files = await stack.enter_async_context(_session(endpoints.file_connections))
        client = ApiClient(api, base_url=endpoints.base_url, api_key=endpoints.api_key,
                           history_url=endpoints.history_url, timeout_s=endpoints.timeout_s,
                           clock=clock)
        yield client, Files(files, max_bytes=endpoints.max_image_bytes,
                            timeout_s=endpoints.timeout_s)
