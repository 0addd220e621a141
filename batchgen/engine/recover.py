"""Jobs that were in flight when the checkpoint was lost.

A checkpoint rebuilt from ``results.jsonl`` and the images knows the finished items only.
Jobs a killed run had submitted and not finished are still on the account: paying for
their items again would be a duplicate charge. So the account history is read once, for
the jobs created since OUT's first activity (less the hour a v2 record lives), and each
manifest item that the store does not know and whose model and body match one of them
goes in doubt: the run's own in-doubt procedure then adopts that job instead of paying.
"""

from __future__ import annotations

import logging
from collections import Counter

from batchgen.engine.context import JobContext
from batchgen.errors import ApiError
from batchgen.manifest.ids import canonical_json
from batchgen.manifest.item import Item
from batchgen.manifest.reader import ManifestReader

log = logging.getLogger(__name__)

# How far before OUT's oldest file a job of the lost run may have been created.
LOOK_BACK_S = 3600.0
CHUNK = 1024


async def find_lost_jobs(ctx: JobContext, reader: ManifestReader, since: float) -> int:
    """Put in doubt the unknown items that a job since ``since`` matches; how many."""
    jobs: Counter[tuple[str, str]] = Counter()
    try:
        for model in sorted(reader.counts) or sorted({i.model for i in reader.items()}):
            for row in await ctx.calls.jobs_since(model, since_wall=since - LOOK_BACK_S):
                jobs[(model, canonical_json(row.body or {}))] += 1
    except ApiError as exc:
        log.warning("the history cannot be read (%s): jobs the lost checkpoint knew of may "
                    "be paid for again", exc, extra={"event": "run.lost_jobs_unknown"})
        return 0
    if not jobs:
        return 0
    held = await ctx.items.claimed_bodies()
    for key, count in held.items():
        jobs[key] -= count
    marked = 0
    chunk: list[Item] = []
    for item in reader.items():
        chunk.append(item)
        if len(chunk) == CHUNK:
            marked += await _mark(ctx, chunk, jobs, since)
            chunk = []
    return marked + await _mark(ctx, chunk, jobs, since)


async def _mark(ctx: JobContext, chunk: list[Item], jobs: Counter[tuple[str, str]],
                since: float) -> int:
    known = await ctx.items.lookup([item.id for item in chunk])
    doubtful = []
    for item in chunk:
        key = (item.model, canonical_json(item.params))
        if item.id not in known and jobs[key] > 0:
            jobs[key] -= 1
            doubtful.append(item)
    if doubtful:
        await ctx.items.add(doubtful, ctx.clock.wall())
    for item in doubtful:
        await ctx.life.fire("intend", item, intent_at=since - LOOK_BACK_S)
        await ctx.life.fire("doubted", item, message="the checkpoint was lost while its "
                            "job may have been in flight", error_class="in_doubt")
    return len(doubtful)
