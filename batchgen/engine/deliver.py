"""The last two stages: write each harvest's images to disk, then make the delivery
durable (the ``delivered`` or ``undelivered`` event) and append it to results.jsonl.

A download keeps capacity of its own, so slow image hosts never hold a submit slot.
Each image goes to a temporary file beside its final name, gets its parameters embedded
(metadata.embed), is fsynced and renamed into place; its size, SHA-256 and modification
time are recorded (beside the server's size and SHA-256), so a resume can tell that
the file on disk is still the one written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchgen.api.results import number
from batchgen.engine.context import JobContext
from batchgen.engine.follow import Harvest
from batchgen.errors import ApiError
from batchgen.lifecycle import COMPLETED
from batchgen.metadata.embed import Written, finish_image
from batchgen.metadata.record import ImageRecord, record_for
from batchgen.output.files import extension_for, image_name, stamp, temp_path
from batchgen.output.results import ResultsLog, line

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivered:
    """A harvest whose images are on disk, or that could not be written."""

    harvest: Harvest
    files: list[dict[str, Any]]
    error: str | None


async def download_stage(ctx: JobContext, receive: MemoryObjectReceiveStream[Harvest],
                         send: MemoryObjectSendStream[Delivered]) -> None:
    """Write each harvest's images atomically."""
    async with receive, send:
        async for harvest in receive:
            try:
                files = [await _write_image(ctx, harvest, k)
                         for k in range(len(harvest.outputs))]
            except OSError as exc:  # the disk, not the image host: stop paying for more
                ctx.gate.written(False)
                await send.send(Delivered(harvest, [], f"cannot write the image: {exc}"))
            except ApiError as exc:
                await send.send(Delivered(harvest, [], str(exc)))
            else:
                ctx.gate.written(True)
                await send.send(Delivered(harvest, files, None))


async def _write_image(ctx: JobContext, harvest: Harvest, index: int) -> dict[str, Any]:
    images: Path = ctx.cfg.images_dir
    output = harvest.outputs[index]
    item_id = harvest.item.id
    done = await ctx.calls.image(output, temp_path(images, item_id, index))
    ext = extension_for(done.content_type or output.content_type, output.url)
    count = len(harvest.outputs)
    final = images / image_name(item_id, index, count, ext)
    record = record_for(item_id=item_id, model=harvest.item.model, params=harvest.item.params,
                        result=harvest.result, request_id=harvest.request_id,
                        cost=harvest.cost, index=index, count=count)
    written, mtime_ns = await anyio.to_thread.run_sync(partial(
        _place, done.path, final, record, server_bytes=done.bytes, server_sha256=done.sha256,
        embed=ctx.cfg.embed, caption=ctx.cfg.captions == "txt", data=done.data))
    ctx.counters.images += 1
    ctx.counters.image_bytes += written.bytes
    return {**written.entry(ctx.cfg.out, done.content_type), "mtime_ns": mtime_ns}


def _place(temp: Path, final: Path, record: ImageRecord, **options: Any) -> tuple[Written, int]:
    """The image in place with its metadata (metadata.embed), and its recorded mtime."""
    written = finish_image(temp, final, record, **options)
    return written, stamp(final)


async def sink_stage(ctx: JobContext, receive: MemoryObjectReceiveStream[Delivered],
                     results: ResultsLog) -> None:
    """Make each delivery durable in the store, then append it to results.jsonl."""
    async with receive:
        async for delivered in receive:
            harvest = delivered.harvest
            item = harvest.item
            if delivered.error is not None:
                # Paid for but not on disk: stays fetched so the next run downloads it.
                await ctx.life.fire("undelivered", item, message=delivered.error,
                                    error_class="download", job=harvest.request_id)
                continue
            await ctx.life.fire("delivered", item, files=delivered.files, job=harvest.request_id)
            metrics = harvest.result.get("metrics") or {}
            for key, bucket in (("queue_time", ctx.counters.queue_times),
                                ("inference_time", ctx.counters.inference_times)):
                value = number(metrics.get(key))
                if value is not None:
                    bucket.add(value)
            cost = harvest.cost if harvest.cost is not None else number(metrics.get("cost"))
            await results.append(line(item_id=item.id, state=COMPLETED, model=item.model,
                                      request_id=harvest.request_id, files=delivered.files,
                                      result=harvest.result, params=item.params, cost=cost))
