"""Shared fixtures: local servers that close themselves, and a small JSON HTTP helper."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from batchgen.clock import Clock, ManualClock
from batchgen.server import LocalServer, ServerConfig, start_server

MODEL = "sd1.5-epicrealism"
StartServer = Callable[..., Awaitable[LocalServer]]


@pytest.fixture
async def local_server() -> AsyncIterator[StartServer]:
    """Factory: ``await local_server(config=None, clock=None, **fields)``; closes what it starts."""
    started: list[LocalServer] = []

    async def start(
        config: ServerConfig | None = None, *, clock: Clock | None = None, **fields: Any
    ) -> LocalServer:
        base = config or ServerConfig()
        server = await start_server(dataclasses.replace(base, **fields), clock=clock)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@dataclass
class Answer:
    """One HTTP answer, read in full."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    content_type: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.text)


class Api:
    """Requests against one server with its key unless told otherwise."""

    def __init__(self, session: aiohttp.ClientSession, server: LocalServer) -> None:
        self.session = session
        self.server = server
        self.key: str | None = server.api_key

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"x-api-key": self.key} if self.key is not None else {}
        return {**headers, **(extra or {})}

    async def request(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kw: Any
    ) -> Answer:
        url = path if path.startswith("http") else self.server.base_url + path
        async with self.session.request(method, url, headers=self._headers(headers), **kw) as r:
            return Answer(r.status, dict(r.headers), await r.read(), r.content_type)

    async def submit(self, body: Any = None, slug: str = MODEL, **kw: Any) -> Answer:
        return await self.request("POST", f"/v2/{slug}", json=body or {"prompt": "a cat"}, **kw)

    async def status(self, request_id: str) -> Answer:
        return await self.request("GET", f"/v2/requests/{request_id}/status")

    async def result(self, request_id: str) -> Answer:
        return await self.request("GET", f"/v2/requests/{request_id}")

    async def history(self, **query: Any) -> Answer:
        return await self.request("GET", "/inference-request/request-history", params=query)

    async def download(self, url: str) -> tuple[int, bytes, Mapping[str, str]]:
        async with self.session.get(url) as r:
            return r.status, await r.read(), dict(r.headers)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(http: aiohttp.ClientSession) -> Callable[[LocalServer], Api]:
    """Factory: ``api(server)`` gives an ``Api`` bound to that server."""
    return lambda server: Api(http, server)


async def until(predicate: Callable[[], bool], *, turns: int = 10_000) -> None:
    """Let the event loop run until ``predicate`` holds; no time passes on any clock."""
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


@pytest.fixture
def settle() -> Callable[..., Awaitable[None]]:
    """``await settle(predicate)``: run the loop until ``predicate()`` holds."""
    return until
