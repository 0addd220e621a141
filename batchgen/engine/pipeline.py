"""The only place that knows the topology: streams, the task group, signals.

    reader ──Work──> submitter (one job task per in-flight item) ──Harvest──>
        downloaders (own capacity) ──Delivered──> sink (store, results.jsonl)

Every stream is small and bounded; every stage ends when its input closes. One task
group owns every task, so an error anywhere cancels the rest and nothing is left
running. Store writes are shielded, so cancellation leaves the checkpoint consistent.
"""

from __future__ import annotations

import logging
import signal
import threading

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchgen.engine.context import JobContext
from batchgen.engine.deliver import Delivered, download_stage, sink_stage
from batchgen.engine.follow import Harvest
from batchgen.engine.inflight import InFlight
from batchgen.engine.job import run_job
from batchgen.engine.read import Work, read_stage
from batchgen.engine.runstate import STOP_INTERRUPTED, STOP_MAX_ITEMS, STOP_TERMINATED
from batchgen.lifecycle import FAILED, PENDING
from batchgen.manifest.reader import ManifestReader
from batchgen.output.results import ResultsLog
from batchgen.report.progress import Progress

log = logging.getLogger(__name__)

STREAM_BUFFER = 16


async def run_stages(ctx: JobContext, reader: ManifestReader, *, total: int,
                     handle_signals: bool) -> None:
    """The stages, beside the progress reporter, the deadline and the signal watcher."""
    progress = Progress(ctx, total=total)
    stages = anyio.CancelScope()
    try:
        async with anyio.create_task_group() as outer:
            if handle_signals:
                outer.start_soon(_watch_signals, ctx, stages)
            outer.start_soon(progress.run)
            outer.start_soon(ctx.gate.watch_deadline)
            with stages:
                await _stages(ctx, reader)
            outer.cancel_scope.cancel()
    finally:
        progress.close()


async def _stages(ctx: JobContext, reader: ManifestReader) -> None:
    work_send, work_recv = anyio.create_memory_object_stream[Work](STREAM_BUFFER)
    harvest_send, harvest_recv = anyio.create_memory_object_stream[Harvest](STREAM_BUFFER)
    done_send, done_recv = anyio.create_memory_object_stream[Delivered](STREAM_BUFFER)
    async with ResultsLog(ctx.cfg.out / "results.jsonl") as results, \
            anyio.create_task_group() as tg:
        tg.start_soon(read_stage, ctx, reader, work_send, harvest_send.clone())
        tg.start_soon(submit_stage, ctx, work_recv, harvest_send)
        for _ in range(ctx.cfg.download_concurrency):
            tg.start_soon(download_stage, ctx, harvest_recv.clone(), done_send.clone())
        harvest_recv.close()
        done_send.close()
        tg.start_soon(sink_stage, ctx, done_recv, results)


def _new(work: Work) -> bool:
    """Whether the item would be submitted afresh (it holds no job and no doubt)."""
    return work.record is None or work.record.state in (PENDING, FAILED)


async def submit_stage(ctx: JobContext, receive: MemoryObjectReceiveStream[Work],
                       harvests: MemoryObjectSendStream[Harvest]) -> None:
    """Start a job per item, never more in flight than the in-flight target allows
    (``engine.inflight``: sized to the rate and the job times, under the cap)."""
    slots = ctx.inflight
    new_items = 0
    max_items = ctx.cfg.max_items
    async with receive, harvests, anyio.create_task_group() as jobs:
        async for work in receive:
            if ctx.stop.interrupted:
                break
            if _new(work):
                if ctx.gate.closed() or not ctx.stop.wants_new:
                    continue  # left pending for the next run
                if max_items is not None and new_items >= max_items:
                    ctx.stop.enough(STOP_MAX_ITEMS)
                    continue
                new_items += 1
                ctx.counters.new_items = new_items
            await slots.acquire()
            jobs.start_soon(_job, ctx, work, slots, harvests.clone())


async def _job(ctx: JobContext, work: Work, slots: InFlight,
               harvests: MemoryObjectSendStream[Harvest]) -> None:
    ctx.counters.in_flight += 1
    try:
        async with harvests:
            await run_job(ctx, work.item, work.record, harvests.send)
    finally:
        ctx.counters.in_flight -= 1
        slots.release()


async def _watch_signals(ctx: JobContext, scope: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM: stop submitting and drain; a second, or the drain timeout, cuts."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach the main thread only; an embedding program handles them
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if ctx.stop.interrupted:
                log.warning("second signal: stopping now; saved request ids resume next run",
                            extra={"event": "run.cut"})
                scope.cancel()
                return
            reason = STOP_TERMINATED if signum == signal.SIGTERM else STOP_INTERRUPTED
            ctx.stop.interrupt(reason)
            log.warning("%s: no new submits; draining in-flight jobs for up to %.0fs",
                        reason, ctx.cfg.drain_timeout_s, extra={"event": "run.draining"})
            scope.deadline = min(scope.deadline,
                                 anyio.current_time() + ctx.cfg.drain_timeout_s)
