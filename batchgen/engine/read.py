"""The read stage: stream the manifest, skip what is done, and route the rest.

Each chunk of items is looked up in the store at once; new items are added (the
``add`` event), and each item goes where its stored state sends it: to the submitter
(new, pending, in doubt, submitted), straight to the downloaders (paid, images lost,
output URLs kept), or nowhere (done, failed). A finished image is checked cheaply
(size and modification time, the hash when the time changed) in a worker thread.

Once submitting has stopped (a limit, the deadline, a fatal answer), nothing new is
wanted: the stage reads on only as long as begun items (in doubt, submitted, paid and
not written) remain unrouted, and adds nothing to the store.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from batchgen.api.results import Output
from batchgen.engine.context import JobContext
from batchgen.engine.follow import Harvest
from batchgen.lifecycle import COMPLETED, FAILED, FETCHED, IN_DOUBT, PENDING, STARTED
from batchgen.manifest.ids import canonical_json
from batchgen.manifest.item import Item
from batchgen.manifest.reader import ManifestReader
from batchgen.output.files import check_files, set_aside
from batchgen.store.items import ItemRecord

READ_CHUNK = 1024
log = logging.getLogger(__name__)


def _changed(item: Item, record: ItemRecord) -> bool:
    """Whether the manifest now asks for something else than the stored item."""
    return record.params != item.params or record.model != item.model


@dataclass(frozen=True, slots=True)
class Work:
    """An item read from the manifest, with its stored row when it has one."""

    item: Item
    record: ItemRecord | None


def stored_outputs(ctx: JobContext, record: ItemRecord) -> tuple[Output, ...]:
    """The output URLs a stored row kept (none for base64 results)."""
    outputs = (record.result or {}).get("outputs") or []
    return tuple(Output(url=ctx.calls.stored(o.get("url")), content_type=o.get("content_type"))
                 for o in outputs if isinstance(o, dict) and o.get("url"))


def _next_chunk(items: Iterator[Item], size: int) -> list[Item]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            break
    return chunk


class _Reader:
    def __init__(self, ctx: JobContext, send: MemoryObjectSendStream[Work],
                 harvests: MemoryObjectSendStream[Harvest]) -> None:
        self.ctx = ctx
        self.send = send
        self.harvests = harvests
        self.started_left = 0
        # Completed items whose touched files the hashes vouched for, this chunk.
        self.refreshed: dict[str, list[dict[str, object]]] = {}

    async def run(self, reader: ManifestReader) -> None:
        ctx = self.ctx
        self.started_left = await ctx.items.started()
        items = reader.items()
        while chunk := await anyio.to_thread.run_sync(_next_chunk, items, READ_CHUNK):
            stop = ctx.stop
            if stop.interrupted or (not stop.wants_new and self.started_left <= 0):
                return
            records = await ctx.items.lookup([item.id for item in chunk])
            new = [item for item in chunk if item.id not in records]
            await ctx.items.add(new if stop.wants_new else [], ctx.clock.wall(),
                                seen=list(records))
            checked = await anyio.to_thread.run_sync(self._check, list(records.values()))
            for item in chunk:
                record = records.get(item.id)
                if record is not None and record.state in STARTED:
                    self.started_left -= 1
                    if _changed(item, record):
                        # Its job was sent with the stored parameters: it finishes as
                        # such, and the next run generates it again.
                        ctx.counters.changed_in_flight += 1
                        log.warning("item %s changed while its job was in flight: the job "
                                    "finishes with the parameters it was sent with; the "
                                    "next run generates it again with the new ones",
                                    item.id, extra={"event": "item.changed_in_flight",
                                                    "item_id": item.id})
                        item = dataclasses.replace(item, params=record.params,
                                                   model=record.model)
                elif not ctx.stop.wants_new:
                    continue  # nothing new is wanted any more
                elif record is not None and _changed(item, record):
                    record = await self._changed(item, record)
                await self._route(item, record, checked)
            await ctx.items.refresh_files(self.refreshed)  # one commit for the chunk
            self.refreshed = {}

    async def _changed(self, item: Item, record: ItemRecord) -> ItemRecord | None:
        """The manifest changed this item's parameters: generate it again (the old images
        set aside), unless --keep-changed; the record to route by."""
        ctx = self.ctx
        if record.state != PENDING and ctx.cfg.keep_changed:
            ctx.counters.changed_kept += 1
            return record
        if record.files:
            moved = await anyio.to_thread.run_sync(set_aside, ctx.cfg.out, record.files,
                                                   ctx.clock.wall())
            for path in moved:
                log.info("item %s changed: its old image is kept as %s", item.id, path,
                         extra={"event": "item.set_aside", "item_id": item.id})
        await ctx.life.fire("changed", item, body=canonical_json(item.params),
                            model=item.model, line=item.line)
        return None

    def _check(self, records: list[ItemRecord]) -> dict[str, list[dict[str, object]] | None]:
        """Completed items' files, checked (blocking: in a worker thread)."""
        out = self.ctx.cfg.out
        return {r.id: check_files(out, r.files or []) for r in records if r.state == COMPLETED}

    async def _route(self, item: Item, record: ItemRecord | None,
                     checked: dict[str, list[dict[str, object]] | None]) -> None:
        ctx = self.ctx
        if record is None or record.state not in (COMPLETED, FETCHED, FAILED):
            await self.send.send(Work(item, record))
        elif record.state == FAILED:
            if ctx.cfg.retry_failed and record.error_class == "in_doubt":
                # Its submit may have created a job: the history is asked before paying.
                await ctx.life.fire("reopened", item)
                await self.send.send(Work(item, dataclasses.replace(record, state=IN_DOUBT)))
            elif ctx.cfg.retry_failed:
                await ctx.life.fire("retry", item)
                await self.send.send(Work(item, None))
            else:
                ctx.counters.skipped_failed += 1
        elif record.state == COMPLETED and checked.get(item.id) is not None:
            ctx.counters.skipped_done += 1
            if checked[item.id] != record.files:  # hashes vouched for touched files
                self.refreshed[item.id] = list(checked[item.id] or [])
        else:
            if record.state == COMPLETED:
                await ctx.life.fire("lost", item, message="an image is missing or changed",
                                    error_class="download")
                record = dataclasses.replace(record, state=FETCHED)
            await self._route_paid(item, record)

    async def _route_paid(self, item: Item, record: ItemRecord) -> None:
        """A paid job whose images are not on disk: fetch them again, never pay again."""
        outputs = stored_outputs(self.ctx, record)
        if outputs:
            # cost None: this job was paid for and counted when it first finished.
            await self.harvests.send(Harvest(item, record.request_id, outputs,
                                             record.result or {}, None))
        elif record.request_id:
            # Inline (base64) results are not stored: fetch the result again, no new submit.
            await self.send.send(Work(item, record))
        else:
            await self.ctx.life.fire("failed", item, message="paid for, but its output is "
                                     "lost", error_class="download")


async def read_stage(ctx: JobContext, reader: ManifestReader,
                     send: MemoryObjectSendStream[Work],
                     harvests: MemoryObjectSendStream[Harvest]) -> None:
    """Stream the manifest and route each item; ends quietly when a signal stopped the
    run (the submitter has stopped listening and nothing more is wanted)."""
    async with send, harvests:
        try:
            await _Reader(ctx, send, harvests).run(reader)
        except anyio.BrokenResourceError:
            if not ctx.stop.interrupted:
                raise
