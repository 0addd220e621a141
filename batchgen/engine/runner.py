"""One run from start to end: prepare, lock OUT, open the store and the API, run the
stages, and write the end-of-run files whatever happened."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

from batchgen.api.ratelimit import RateLimiter
from batchgen.api.session import Endpoints, open_api
from batchgen.clock import Clock, SystemClock
from batchgen.config import RunConfig
from batchgen.engine.budget import WINDOW, Budget
from batchgen.engine.calls import Calls
from batchgen.engine.context import JobContext
from batchgen.engine.duplicates import count_duplicates
from batchgen.engine.finish import finish, options_of
from batchgen.engine.gate import Gate
from batchgen.engine.inflight import InFlight
from batchgen.engine.pipeline import run_stages
from batchgen.engine.prepare import check_writable, prepared_reader, remove_leftovers
from batchgen.engine.recover import find_lost_jobs
from batchgen.engine.runstate import Counters, DurationEstimate, StopSwitch
from batchgen.engine.twins import BodyLocks
from batchgen.lifecycle import Lifecycle
from batchgen.manifest.reader import ManifestReader
from batchgen.output.inventory import (
    earliest_activity,
    from_images,
    from_results,
    holds_results,
)
from batchgen.store import lock
from batchgen.store.db import GROUP_WINDOW_S, Database
from batchgen.store.items import ItemStore
from batchgen.store.restore import is_empty, restore
from batchgen.store.runs import last_manifest, start_run

log = logging.getLogger(__name__)


async def run_pipeline(cfg: RunConfig, *, clock: Clock | None = None,
                       handle_signals: bool = False) -> dict[str, Any]:
    """Run ``cfg`` to the end; returns the summary (also written to OUT/summary.json)."""
    clock = clock or SystemClock()
    reader, digest = await anyio.to_thread.run_sync(prepared_reader, cfg)
    await anyio.to_thread.run_sync(check_writable, cfg.out)
    with lock.hold(cfg.state_dir, cfg.out):
        # Holding the lock, nobody else writes here: half-written files of a killed run
        # can go.
        await anyio.to_thread.run_sync(remove_leftovers, cfg.out)
        db = await Database.open(cfg.state_dir / "state.db", group_window_s=GROUP_WINDOW_S)
        try:
            lost_since = await _rebuild_if_lost(db, cfg, clock)
            return await _run_locked(cfg, clock, reader, ItemStore(db), digest,
                                     handle_signals, lost_since)
        finally:
            await db.aclose()


async def _run_locked(cfg: RunConfig, clock: Clock, reader: ManifestReader, items: ItemStore,
                      digest: str, handle_signals: bool,
                      lost_since: float | None) -> dict[str, Any]:
    started = clock.wall()
    if cfg.submit_until_wall is not None and cfg.submit_until_wall <= started:
        log.warning("the submit deadline passed %.0f s ago: nothing new is submitted; jobs "
                    "begun earlier are finished", started - cfg.submit_until_wall,
                    extra={"event": "run.deadline_passed"})
    before = await last_manifest(items.db)
    if before is not None and not await anyio.to_thread.run_sync(_same_file, before,
                                                                 cfg.manifest):
        log.warning("%s was last run with %s: items of the store that %s does not list "
                    "are counted as not in the manifest", cfg.out, before, cfg.manifest,
                    extra={"event": "run.other_manifest"})
    items.run_id = await start_run(items.db, manifest=str(cfg.manifest),
                                   manifest_hash=digest,
                                   options={**options_of(cfg),
                                            "manifest_items": reader.requests or None},
                                   now=started, pid=os.getpid())
    ctx: JobContext | None = None
    # The validation pass counted the whole manifest; a run stopped early reads less.
    validated = reader.requests
    failure: BaseException | None = None
    summary: dict[str, Any] = {}
    try:
        async with open_api(_endpoints(cfg), clock) as (client, files):
            counters = Counters()
            limiter = RateLimiter(rpm=cfg.rpm, clock=clock, start_rpm=cfg.start_rpm,
                                  window_s=cfg.rate_window_s)
            rng = random.Random(cfg.seed)
            inflight = InFlight.for_run(cfg, clock=clock, limiter=limiter, counters=counters)
            ctx = JobContext(
                cfg=cfg, clock=clock, items=items, rng=rng, twins=BodyLocks(),
                calls=Calls(client, files, limiter=limiter, counters=counters, clock=clock,
                            rng=rng, cfg=cfg, inflight=inflight),
                life=Lifecycle(items.transition, counters, clock),
                gate=Gate(stop=StopSwitch(), clock=clock, limiter=limiter,
                          budget=Budget(cfg.max_cost, paid=await items.paid_jobs(WINDOW)),
                          deadline_wall=cfg.submit_until_wall),
                estimate=DurationEstimate(cfg.poll_first_s), inflight=inflight,
            )
            if lost_since is not None:
                counters.rebuilt = True
                found = await find_lost_jobs(ctx, reader, lost_since)
                log.warning("%d items of the manifest match jobs the lost checkpoint may have "
                            "held: looked up in the history before anything is paid",
                            found, extra={"event": "run.lost_jobs"})
            # A resumed run that skipped validation learns the total from the store.
            total = reader.requests or sum((await items.counts()).values())
            await run_stages(ctx, reader, total=total, handle_signals=handle_signals)
            if not ctx.stop.interrupted:
                await count_duplicates(ctx)
    except BaseException as exc:
        failure = first_cause(exc)
        if failure is exc:
            raise
        # One error behind a task group's ExceptionGroup: the caller (and the CLI's exit
        # code table) should see that error itself.
        raise failure from None
    finally:
        if ctx is not None:
            with anyio.CancelScope(shield=True), signals_held(handle_signals):
                summary = await finish(ctx, run_id=items.run_id, started=started,
                                       manifest_items=max(validated, reader.requests),
                                       failure=failure)
    return summary


async def _rebuild_if_lost(db: Database, cfg: RunConfig, clock: Clock) -> float | None:
    """An OUT with finished work but an empty checkpoint (removed, or a 0-byte file):
    the checkpoint is rebuilt from results.jsonl and the images, and said so. Returns
    OUT's earliest activity then (jobs since may be on the account), else None."""
    if not await is_empty(db) or not await anyio.to_thread.run_sync(holds_results, cfg.out):
        return None
    lines = await anyio.to_thread.run_sync(lambda: list(from_results(cfg.out)))
    from_lines = await restore(db, lines, clock.wall())
    known = {found.id.lower() for found in lines}
    images = await anyio.to_thread.run_sync(lambda: list(from_images(cfg.out, known)))
    from_files = await restore(db, images, clock.wall())
    log.warning("%s had no checkpoint: rebuilt it with %d items from results.jsonl and %d "
                "from the records in the images; none of them is paid for again",
                cfg.state_dir / "state.db", from_lines, from_files,
                extra={"event": "run.checkpoint_rebuilt"})
    return await anyio.to_thread.run_sync(earliest_activity, cfg.out) or clock.wall()


def _same_file(before: str, manifest: Path) -> bool:
    return Path(before).resolve() == manifest.resolve()


def _endpoints(cfg: RunConfig) -> Endpoints:
    return Endpoints(base_url=cfg.base_url, history_url=cfg.history_url, api_key=cfg.api_key,
                     timeout_s=cfg.request_timeout_s, api_connections=cfg.max_in_flight * 2,
                     file_connections=cfg.download_concurrency * 2,
                     max_image_bytes=cfg.max_image_bytes)


@contextlib.contextmanager
def signals_held(hold: bool) -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while the end-of-run files are written (seconds, even for a
    million items), so a stop cannot leave them half done; the stages have drained."""
    if not hold or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT,
                                                                    signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def first_cause(exc: BaseException) -> BaseException:
    """The first error inside (nested) exception groups, else ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
