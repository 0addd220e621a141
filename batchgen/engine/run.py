"""The Python API: ``await batchgen.run(manifest, out=..., ...)`` returns the summary."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from batchgen.clock import Clock
from batchgen.config import RunConfig
from batchgen.engine.runner import run_pipeline
from batchgen.errors import OutputLockedError, StoreError

LOCAL_START_RPM = 6000.0
# The embedded server's jobs take a fraction of a second.
LOCAL_POLL_FIRST_S = 0.2
# Under OUT/.batchgen/: the embedded server's jobs, so that a resumed run finds them.
LOCAL_SERVER_DIR = "server"


async def run(
    manifest: str | Path,
    *,
    out: str | Path,
    local: bool = False,
    clock: Clock | None = None,
    handle_signals: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Run a manifest into ``out`` with the options of ``RunConfig``; returns the summary.

    ``local=True`` starts the embedded Segmind-compatible server in-process and runs
    against it: no key, no network. Its jobs are kept in ``OUT/.batchgen/server/``, so a
    run stopped with jobs in flight finds them (on the new server's port) when resumed.
    """
    cfg = RunConfig(manifest=Path(manifest), out=Path(out), **options)
    if not local:
        return await run_pipeline(cfg, clock=clock, handle_signals=handle_signals)
    from batchgen.server import ServerConfig, StateDirError, start_server

    try:
        server = await start_server(ServerConfig(state_dir=cfg.state_dir / LOCAL_SERVER_DIR))
    except StateDirError as exc:
        # Only another run's embedded server holds it: that run holds OUT.
        if exc.busy:
            raise OutputLockedError(str(cfg.out)) from None
        raise StoreError(f"cannot use output directory {cfg.out}: {exc}") from exc
    async with server:
        # The embedded server has no rate limit: start discovery high, not at a plan's 50.
        cfg = dataclasses.replace(cfg, base_url=server.base_url, api_key=server.api_key,
                                  history_url=server.base_url, rebase_stored_urls=True,
                                  start_rpm=max(cfg.start_rpm, LOCAL_START_RPM),
                                  poll_first_s=min(cfg.poll_first_s, LOCAL_POLL_FIRST_S))
        return await run_pipeline(cfg, clock=clock, handle_signals=handle_signals)
