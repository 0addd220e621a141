"""The stages, one coroutine each: read -> submit (jobs) -> download -> sink.

They talk through bounded anyio memory streams; a full stream is the backpressure, and
each loop ends when its input stream closes. ``pipeline.py`` wires them together.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchgen.api.download import Downloaded, decode_base64_image, download
from batchgen.api.results import number
from batchgen.engine.jobs import run_job
from batchgen.engine.runstate import STOP_MAX_ITEMS
from batchgen.engine.runtime import Harvest, Output, Runtime, call_api
from batchgen.errors import ApiError
from batchgen.manifest.item import Item
from batchgen.manifest.reader import ManifestReader
from batchgen.output.files import (
    ResultsLog,
    extension_for,
    file_ok,
    image_name,
    line,
    place_image,
    temp_path,
)
from batchgen.store import db as st
from batchgen.store.db import ItemRecord

log = logging.getLogger(__name__)

READ_CHUNK = 1024


@dataclass(frozen=True, slots=True)
class Work:
    """An item read from the manifest, with its stored row when it has one."""

    item: Item
    record: ItemRecord | None


def _next_chunk(items: Iterator[Item], size: int) -> list[Item]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            break
    return chunk


def stored_outputs(record: ItemRecord) -> tuple[Output, ...]:
    """The output URLs a stored row kept (none for base64 results)."""
    outputs = (record.result or {}).get("outputs") or []
    return tuple(Output(url=o.get("url"), content_type=o.get("content_type"))
                 for o in outputs if isinstance(o, dict) and o.get("url"))


async def read_stage(rt: Runtime, reader: ManifestReader,
                     send: MemoryObjectSendStream[Work],
                     harvests: MemoryObjectSendStream[Harvest]) -> None:
    """Stream the manifest, skip what is done, and route the rest.

    Ends early, quietly, when a signal stopped the run: the submitter has stopped
    listening and nothing more is wanted.
    """
    try:
        await _read(rt, reader, send, harvests)
    except anyio.BrokenResourceError:
        if not rt.stop.interrupted:
            raise


async def _read(rt: Runtime, reader: ManifestReader, send: MemoryObjectSendStream[Work],
                harvests: MemoryObjectSendStream[Harvest]) -> None:
    items = reader.items()
    async with send, harvests:
        while chunk := await anyio.to_thread.run_sync(_next_chunk, items, READ_CHUNK):
            if rt.stop.interrupted:
                return
            records = await rt.store.lookup([item.id for item in chunk])
            new = [item for item in chunk if item.id not in records]
            if new:
                await rt.store.add(new, rt.clock.wall())
            for item in chunk:
                record = records.get(item.id)
                if record is None or record.state in (st.PENDING, st.SUBMITTING, st.IN_DOUBT,
                                                      st.SUBMITTED):
                    await send.send(Work(item, record))
                elif record.state == st.FAILED:
                    if rt.cfg.retry_failed:
                        await send.send(Work(item, None))
                    else:
                        rt.counters.skipped_failed += 1
                else:  # COMPLETED or FETCHED: the job was paid; only files may be missing
                    await _route_paid(rt, item, record, send, harvests)


async def _route_paid(rt: Runtime, item: Item, record: ItemRecord,
                      send: MemoryObjectSendStream[Work],
                      harvests: MemoryObjectSendStream[Harvest]) -> None:
    if record.state == st.COMPLETED and all(file_ok(rt.cfg.out, f) for f in record.files or []):
        rt.counters.skipped_done += 1
        return
    outputs = stored_outputs(record)
    if outputs:
        rt.counters.redownloads += 1
        # cost None: this job was paid for and counted when it first finished.
        await harvests.send(Harvest(item, record.request_id, outputs, record.result or {},
                                    None))
    elif record.request_id:
        # Inline (base64) results are not stored: fetch the result again, no new submit.
        await send.send(Work(item, record))
    else:
        rt.counters.skipped_done += 1


def _needs_post(work: Work) -> bool:
    record = work.record
    return record is None or record.state in (st.PENDING, st.FAILED)


async def submit_stage(rt: Runtime, receive: MemoryObjectReceiveStream[Work],
                       harvests: MemoryObjectSendStream[Harvest]) -> None:
    """Start a job per item, never more in flight than ``concurrency``."""
    slots = anyio.Semaphore(rt.cfg.concurrency)
    new_posts = 0
    async with receive, harvests, anyio.create_task_group() as jobs:
        async for work in receive:
            if rt.stop.interrupted:
                break
            if _needs_post(work):
                if rt.stop.stopped:
                    continue  # left pending for the next run
                if rt.cfg.max_items is not None and new_posts >= rt.cfg.max_items:
                    rt.stop.stop(STOP_MAX_ITEMS)
                    continue
                new_posts += 1
            await slots.acquire()
            jobs.start_soon(_job, rt, work, slots, harvests.clone())


async def _job(rt: Runtime, work: Work, slots: anyio.Semaphore,
               harvests: MemoryObjectSendStream[Harvest]) -> None:
    rt.counters.in_flight += 1
    try:
        async with harvests:
            await run_job(rt, work.item, work.record, harvests.send)
    finally:
        rt.counters.in_flight -= 1
        slots.release()


@dataclass(frozen=True, slots=True)
class Delivered:
    """A harvest whose images are on disk, or that could not be written."""

    harvest: Harvest
    files: list[dict[str, Any]]
    error: str | None


async def download_stage(rt: Runtime, session: aiohttp.ClientSession,
                         receive: MemoryObjectReceiveStream[Harvest],
                         send: MemoryObjectSendStream[Delivered]) -> None:
    """Write each harvest's images atomically; a download keeps its own capacity."""
    images = rt.cfg.images_dir
    async with receive, send:
        async for harvest in receive:
            try:
                files = [await _write_image(rt, session, images, harvest, k)
                         for k in range(len(harvest.outputs))]
            except (ApiError, OSError) as exc:
                await send.send(Delivered(harvest, [], str(exc)))
            else:
                await send.send(Delivered(harvest, files, None))


async def _write_image(rt: Runtime, session: aiohttp.ClientSession, images: Path,
                       harvest: Harvest, index: int) -> dict[str, Any]:
    output = harvest.outputs[index]
    count = len(harvest.outputs)
    item_id = harvest.item.id

    async def attempt() -> Downloaded:
        temp = temp_path(images, item_id, index)
        try:
            if output.url is not None:
                return await download(session, output.url, temp,
                                      max_bytes=rt.cfg.max_image_bytes,
                                      timeout_s=rt.cfg.request_timeout_s)
            return await anyio.to_thread.run_sync(
                decode_base64_image, output.data or "", temp, rt.cfg.max_image_bytes)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    done = await call_api(rt, "download", attempt, limited=False)
    ext = extension_for(done.content_type or output.content_type, output.url)
    final = images / image_name(item_id, index, count, ext)
    await anyio.to_thread.run_sync(place_image, done.path, final)
    rt.counters.images += 1
    rt.counters.image_bytes += done.bytes
    return {"path": str(final.relative_to(rt.cfg.out)), "bytes": done.bytes,
            "sha256": done.sha256, "content_type": done.content_type}


async def sink_stage(rt: Runtime, receive: MemoryObjectReceiveStream[Delivered],
                     results: ResultsLog) -> None:
    """Make each delivery durable in the store, then append it to results.jsonl."""
    async with receive:
        async for delivered in receive:
            harvest = delivered.harvest
            item_id = harvest.item.id
            now = rt.clock.wall()
            if delivered.error is not None:
                # Paid for but not on disk: stays FETCHED so the next run downloads it.
                rt.counters.not_delivered += 1
                rt.counters.errors["download"] += 1
                log.warning("item %s: images not written: %s", item_id, delivered.error)
                await rt.store.update(item_id, now, last_error=delivered.error,
                                      error_class="download")
                continue
            await rt.store.update(item_id, now, state=st.COMPLETED, files=delivered.files,
                                  last_error=None, error_class=None)
            _count_completed(rt, harvest)
            metrics = harvest.result.get("metrics") or {}
            cost = harvest.cost if harvest.cost is not None else number(metrics.get("cost"))
            item = harvest.item
            await results.append(line(item_id=item.id, state=st.COMPLETED, model=item.model,
                                      request_id=harvest.request_id, files=delivered.files,
                                      result=harvest.result, params=item.params, cost=cost))


def _count_completed(rt: Runtime, harvest: Harvest) -> None:
    rt.counters.completed += 1
    metrics = harvest.result.get("metrics") or {}
    for key, bucket in (("queue_time", rt.counters.queue_times),
                        ("inference_time", rt.counters.inference_times)):
        value = number(metrics.get(key))
        if value is not None:
            bucket.add(value)
