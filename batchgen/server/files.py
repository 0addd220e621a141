"""Output downloads: public URLs (no key), rendered on demand, streamed with Content-Length."""

from __future__ import annotations

from aiohttp import web

from .keys import STATE
from .responses import json_error

CHUNK_BYTES = 64 * 1024


async def download(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    now = state.now()
    job = state.book.any_age(request.match_info["request_id"])
    index = int(request.match_info["index"])
    if job is None or job.state_at(now) != "COMPLETED" or index >= job.samples:
        return json_error(state, 404, "File not found")
    state.stats.downloads += 1
    data = state.image(job, index)
    truncate = state.faults.truncate()
    response = web.StreamResponse(headers={"Content-Type": "image/png"})
    response.content_length = len(data)
    await response.prepare(request)
    sent = len(data) // 2 if truncate else len(data)
    for offset in range(0, sent, CHUNK_BYTES):
        await response.write(data[offset : min(offset + CHUNK_BYTES, sent)])
    if truncate:
        state.stats.faults["truncate"] += 1
        # close() flushes what was written, then ends the connection short of the
        # promised length: the client sees a payload error, not a clean end.
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
