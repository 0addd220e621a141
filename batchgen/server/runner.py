"""Starting and stopping the server in-process, for tests, ``run --local`` and the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

from aiohttp import web

from ..clock import Clock, SystemClock
from .app import build_app
from .config import ServerConfig
from .state import ServerState


class LocalServer:
    """A running server: its address, key, counters and state."""

    def __init__(self, runner: web.AppRunner, state: ServerState, base_url: str) -> None:
        self._runner = runner
        self.state = state
        self.base_url = base_url

    @property
    def api_key(self) -> str:
        return self.state.config.api_key

    @property
    def config(self) -> ServerConfig:
        return self.state.config

    def stats(self) -> dict[str, Any]:
        """The same counters as ``GET /__stats``."""
        return self.state.snapshot()

    async def close(self) -> None:
        """Stop listening, close open connections, release the state directory."""
        try:
            await self._runner.cleanup()
        finally:
            self.state.close()

    async def __aenter__(self) -> LocalServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def start_server(
    config: ServerConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock | None = None,
) -> LocalServer:
    """Start serving ``config`` on ``host:port`` (0 picks a free port).

    With ``config.state_dir`` the jobs kept there are taken back first (``StateDirError``
    when the directory is unusable or another server holds it).
    """
    state = ServerState(config=config, clock=clock or SystemClock())
    state.open()
    # No access log: a load run would spend its time formatting lines nobody reads.
    runner = web.AppRunner(build_app(state), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        state.close()
        raise
    # The sockets' own addresses: the port the kernel picked when asked for 0.
    bound_port = runner.addresses[0][1] if runner.addresses else port
    return LocalServer(runner, state, f"http://{_url_host(host)}:{bound_port}")


@asynccontextmanager
async def serve_local(
    config: ServerConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock | None = None,
) -> AsyncIterator[LocalServer]:
    """``start_server`` as a context manager that always closes the server."""
    server = await start_server(config, host=host, port=port, clock=clock)
    try:
        yield server
    finally:
        await server.close()
