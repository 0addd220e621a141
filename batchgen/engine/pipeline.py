"""The only place that knows the topology: streams, the task group, shutdown, summary.

    reader ──Work──> submitter (one job task per in-flight item) ──Harvest──>
        downloaders (own capacity) ──Delivered──> sink (store, results.jsonl)

Every stream is small and bounded; every stage ends when its input closes. One task
group owns every task, so an error anywhere cancels the rest and nothing is left
running. Store writes are shielded, so cancellation leaves the checkpoint consistent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import signal
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from batchgen.api.client import ApiClient
from batchgen.api.ratelimit import RateLimiter
from batchgen.api.retry import RetryPolicy
from batchgen.clock import Clock, SystemClock
from batchgen.config import RunConfig
from batchgen.engine.budget import Budget
from batchgen.engine.runstate import STOP_INTERRUPTED, STOP_TERMINATED, DurationEstimate
from batchgen.engine.runtime import Harvest, Runtime
from batchgen.engine.stages import (
    Delivered,
    Work,
    download_stage,
    read_stage,
    sink_stage,
    submit_stage,
)
from batchgen.errors import ManifestError, StoreError, UsageError
from batchgen.manifest.reader import JSONL_SUFFIXES, ManifestReader
from batchgen.output.files import ResultsLog, export_results, write_summary
from batchgen.report.gallery import write_gallery
from batchgen.report.morning import morning_report, run_notify, top_errors, write_failed
from batchgen.report.progress import Progress
from batchgen.report.summary import EXIT_CRASHED, build_summary, exit_code
from batchgen.store import lock
from batchgen.store.db import Store, connect

log = logging.getLogger(__name__)

STREAM_BUFFER = 16


def validate(cfg: RunConfig) -> ManifestReader:
    """A full pass over the manifest; raises ManifestError before anything is sent."""
    reader = ManifestReader(cfg.manifest, allow_unknown_params=cfg.allow_unknown_params)
    if not reader.check():
        errors = [p for p in reader.problems if p.severity == "error"]
        raise ManifestError(errors, total=reader.errors)
    for problem in reader.problems:
        log.warning("%s", problem)
    return reader


def remove_leftovers(out: Path) -> int:
    """Delete the temporary files a killed run left in OUT and OUT/images. Blocking."""
    removed = 0
    for folder in (out, out / "images"):
        for leftover in folder.glob(".tmp-*"):
            leftover.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d temporary files left by an earlier run", removed)
    return removed


def file_hash(path: Path) -> str:
    """A digest of the manifest's bytes, to know it again on resume."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise UsageError(f"cannot read the manifest {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def validated_before(cfg: RunConfig, digest: str) -> bool:
    """True when an earlier run into OUT validated this very JSONL file with these options.

    Resuming a million-line manifest then skips the separate validation pass (the run's
    own reading still checks every item). YAML may name an ``items_file`` that its own
    hash does not cover, so YAML is always validated first.
    """
    db = cfg.state_dir / "state.db"
    if cfg.manifest.suffix.lower() not in JSONL_SUFFIXES or not db.exists():
        return False
    try:
        conn = connect(db, read_only=True)
    except StoreError:
        return False
    try:
        rows = conn.execute("SELECT options FROM runs WHERE manifest_hash = ?", (digest,))
        return any(json.loads(row[0] or "{}").get("allow_unknown_params")
                   == cfg.allow_unknown_params for row in rows)
    except (sqlite3.Error, ValueError):
        return False
    finally:
        conn.close()


async def run_pipeline(cfg: RunConfig, *, clock: Clock | None = None,
                       handle_signals: bool = False) -> dict[str, Any]:
    """Run ``cfg`` to the end; returns the summary (also written to OUT/summary.json)."""
    clock = clock or SystemClock()
    digest = await anyio.to_thread.run_sync(file_hash, cfg.manifest)
    if await anyio.to_thread.run_sync(validated_before, cfg, digest):
        reader = ManifestReader(cfg.manifest, allow_unknown_params=cfg.allow_unknown_params)
    else:
        reader = await anyio.to_thread.run_sync(validate, cfg)
    cfg.images_dir.mkdir(parents=True, exist_ok=True)
    with lock.hold(cfg.state_dir, cfg.out):
        # Holding the lock, nobody else writes here: half-written files of a killed run
        # can go.
        await anyio.to_thread.run_sync(remove_leftovers, cfg.out)
        store = await Store.open(cfg.state_dir / "state.db")
        try:
            return await _run_locked(cfg, clock, reader, store, digest, handle_signals)
        finally:
            await store.aclose()


async def _run_locked(cfg: RunConfig, clock: Clock, reader: ManifestReader, store: Store,
                      digest: str, handle_signals: bool) -> dict[str, Any]:
    started = clock.wall()
    run_id = await store.start_run(manifest=str(cfg.manifest), manifest_hash=digest,
                                   options=_options(cfg), now=started, pid=os.getpid())
    rng = random.Random(cfg.seed)
    rt: Runtime | None = None
    failure: BaseException | None = None
    summary: dict[str, Any] = {}
    try:
        async with AsyncExitStack() as stack:
            api_session = await stack.enter_async_context(_session(cfg.concurrency * 2))
            files_session = await stack.enter_async_context(
                _session(cfg.download_concurrency * 2))
            rt = Runtime(
                cfg=cfg, clock=clock,
                client=ApiClient(api_session, base_url=cfg.base_url, api_key=cfg.api_key,
                                 history_url=cfg.history_url, timeout_s=cfg.request_timeout_s,
                                 clock=clock),
                store=store,
                limiter=RateLimiter(rpm=cfg.rpm, clock=clock, start_rpm=cfg.start_rpm,
                                    window_s=cfg.rate_window_s),
                rng=rng,
                get_policy=RetryPolicy(max_attempts=8, max_elapsed_s=600.0,
                                       base_delay_s=cfg.retry_base_delay_s),
                submit_policy=RetryPolicy(max_attempts=6, max_elapsed_s=600.0,
                                          base_delay_s=cfg.retry_base_delay_s),
                download_policy=RetryPolicy(max_attempts=6, max_elapsed_s=600.0,
                                            base_delay_s=cfg.retry_base_delay_s),
                estimate=DurationEstimate(cfg.poll_first_s),
                budget=Budget(cfg.max_cost, price=await store.last_price()),
            )
            await _run_all(rt, reader, files_session, store, handle_signals)
    except BaseException as exc:
        failure = first_cause(exc)
        if failure is exc:
            raise
        # One error behind a task group's ExceptionGroup: the caller (and the CLI's exit
        # code table) should see that error itself.
        raise failure from None
    finally:
        if rt is not None:
            with anyio.CancelScope(shield=True), signals_held(handle_signals):
                summary = await _finish(rt, store, reader, run_id, started, failure)
    return summary


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


async def _run_all(rt: Runtime, reader: ManifestReader, files_session: aiohttp.ClientSession,
                   store: Store, handle_signals: bool) -> None:
    """The stages, beside the progress reporter and the signal watcher."""
    # A resumed run that skipped validation learns the total from the store.
    progress = Progress(rt, total=reader.requests or sum((await store.counts()).values()))
    try:
        async with anyio.create_task_group() as outer:
            if handle_signals:
                outer.start_soon(_watch_signals, rt)
            outer.start_soon(progress.run)
            with anyio.CancelScope() as rt.stages_scope:
                await _run_stages(rt, reader, files_session)
            outer.cancel_scope.cancel()
    finally:
        progress.close()


async def _finish(rt: Runtime, store: Store, reader: ManifestReader, run_id: int,
                  started: float, failure: BaseException | None) -> dict[str, Any]:
    """results.jsonl, the summary, failed.jsonl, the gallery, the runs row, notify.

    Written after a crash too (with the error), so that the morning's files never
    describe an older run; a second failure while writing them is logged, and the first
    one is what the caller sees.
    """
    cfg, clock = rt.cfg, rt.clock
    db = cfg.state_dir / "state.db"
    summary: dict[str, Any] = {}
    try:
        await anyio.to_thread.run_sync(export_results, db, cfg.out)
        counts = await store.counts()
        totals = await store.totals()
        summary = build_summary(cfg, rt, counts=counts, totals=totals, started=started,
                                ended=clock.wall(), manifest_items=reader.requests)
        summary["exit_code"] = exit_code(rt, counts) if failure is None else EXIT_CRASHED
        summary["error"] = None if failure is None else f"{type(failure).__name__}: {failure}"
        await anyio.to_thread.run_sync(write_views, db, cfg.out, summary)
        await store.end_run(run_id, now=clock.wall(), summary=summary,
                            exit_code=summary["exit_code"])
    except Exception:
        if failure is None:
            raise
        log.exception("the summary could not be written after the run failed")
        return summary
    if cfg.notify_cmd:
        await anyio.to_thread.run_sync(run_notify, cfg.notify_cmd, cfg.out / "summary.json")
    return summary


def write_views(db: Path, out: Path, summary: dict[str, Any]) -> None:
    """The files people read in the morning, all from the store. Blocking.

    ``failed.jsonl`` and ``summary.json`` must be written; the gallery is a convenience
    whose failure is logged, never the run's.
    """
    summary["report"] = morning_report(summary, errors=top_errors(db))
    summary["failed_items"] = write_failed(db, out)
    try:
        write_gallery(db, out)
    except Exception:
        log.exception("the gallery could not be written; run `batchgen gallery %s`", out)
    write_summary(out, summary)


async def _run_stages(rt: Runtime, reader: ManifestReader,
                      files_session: aiohttp.ClientSession) -> None:
    work_send, work_recv = anyio.create_memory_object_stream[Work](STREAM_BUFFER)
    harvest_send, harvest_recv = anyio.create_memory_object_stream[Harvest](STREAM_BUFFER)
    done_send, done_recv = anyio.create_memory_object_stream[Delivered](STREAM_BUFFER)
    async with ResultsLog(rt.cfg.out / "results.jsonl") as results, \
            anyio.create_task_group() as tg:
        tg.start_soon(read_stage, rt, reader, work_send, harvest_send.clone())
        tg.start_soon(submit_stage, rt, work_recv, harvest_send)
        for _ in range(rt.cfg.download_concurrency):
            tg.start_soon(download_stage, rt, files_session, harvest_recv.clone(),
                          done_send.clone())
        harvest_recv.close()
        done_send.close()
        tg.start_soon(sink_stage, rt, done_recv, results)


def _session(limit: int) -> aiohttp.ClientSession:
    """A session of its own per purpose: API calls carry the key, downloads never do."""
    connector = aiohttp.TCPConnector(limit=max(4, limit))
    return aiohttp.ClientSession(connector=connector)


async def _watch_signals(rt: Runtime) -> None:
    """First SIGINT/SIGTERM: stop submitting and drain; a second, or the drain timeout, cuts."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach the main thread only; an embedding program handles them
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            scope = rt.stages_scope
            if rt.stop.interrupted:
                log.warning("second signal: stopping now; saved request ids resume next run")
                if scope is not None:
                    scope.cancel()
                return
            reason = STOP_TERMINATED if signum == signal.SIGTERM else STOP_INTERRUPTED
            rt.stop.interrupt(reason)
            log.warning("%s: no new submits; draining in-flight jobs for up to %.0fs",
                        reason, rt.cfg.drain_timeout_s)
            if scope is not None:
                scope.deadline = min(scope.deadline,
                                     anyio.current_time() + rt.cfg.drain_timeout_s)


def _options(cfg: RunConfig) -> dict[str, Any]:
    """The run's options for the runs table, without the key."""
    return {
        "base_url": cfg.base_url, "concurrency": cfg.concurrency, "rpm": cfg.rpm,
        "rate_scope": cfg.rate_scope, "max_cost": cfg.max_cost, "max_items": cfg.max_items,
        "on_expired": cfg.on_expired, "on_in_doubt": cfg.on_in_doubt,
        "retry_failed": cfg.retry_failed, "retry_failed_jobs": cfg.retry_failed_jobs,
        "allow_unknown_params": cfg.allow_unknown_params,
    }

