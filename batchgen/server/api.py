"""The inference endpoints: v2 submit, status and result, and the blocking v1 call."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from .jobs import Job
from .keys import ACCEPTED, API_KEY, STATE
from .responses import drop, json_error
from .state import ServerState
from .submit import accept_submit


def base_url(request: web.Request) -> str:
    """The address the client used, so returned URLs work from where it stands."""
    return f"{request.scheme}://{request.host}"


def file_url(base: str, job: Job, index: int) -> str:
    """Where output ``index`` downloads, on the server at ``base``: the path stays the same
    for as long as the job is kept (across restarts too, with a state directory)."""
    return f"{base}/files/{job.request_id}/{index}.png"


def status_answer(job: Job, now: float) -> web.Response:
    """The light status; FAILED is served with 422 and carries ``error``."""
    state = job.state_at(now)
    body: dict[str, Any] = {
        "status": state,
        "request_id": job.request_id,
        "metrics": job.metrics_at(now),
    }
    if state == "FAILED":
        body["error"] = job.error
        return web.json_response(body, status=422)
    return web.json_response(body)


def result_body(state: ServerState, job: Job, now: float, base: str) -> dict[str, Any]:
    """The full result of a COMPLETED job, its URLs on the server at ``base``."""
    images = [
        {
            "url": file_url(base, job, k),
            "content_type": "image/png",
            "file_name": f"{job.request_id}_{k}.png",
            "file_size": state.file_size(job, k),
        }
        for k in range(job.samples)
    ]
    output = (
        base64.b64encode(state.image(job, 0)).decode("ascii") if job.base64 else images[0]["url"]
    )
    return {
        "status": "COMPLETED",
        "request_id": job.request_id,
        "output": output,
        "images": images,
        "seed": job.seed,
        "prompt": job.prompt,
        "metrics": job.metrics_at(now),
    }


async def _accept(request: web.Request) -> Job | web.Response:
    """Take a submit (v1 or v2): the job, or the answer that refused or dropped it."""
    state = request.app[STATE]
    raw = await request.read()
    accepted = accept_submit(
        state, request[API_KEY], request.match_info["slug"], request.content_type, raw
    )
    if isinstance(accepted, web.Response):
        return accepted
    request[ACCEPTED] = True
    if state.faults.drop_after(state.stats.submits_accepted):
        # The job exists and will be billed; the client never hears of it.
        state.stats.faults["drop_after"] += 1
        return drop(request)
    return accepted


async def submit_v2(request: web.Request) -> web.Response:
    accepted = await _accept(request)
    if isinstance(accepted, web.Response):
        return accepted
    rid = accepted.request_id
    base = base_url(request)
    status_url = f"{base}/v2/requests/{rid}/status"
    return web.json_response(
        {
            "request_id": rid,
            "status": "QUEUED",
            "poll_url": status_url,
            "status_url": status_url,
            "response_url": f"{base}/v2/requests/{rid}",
        }
    )


def _live_job(request: web.Request) -> tuple[ServerState, Job | None, float]:
    state = request.app[STATE]
    now = state.now()
    return state, state.book.live(request.match_info["request_id"], now), now


async def get_status(request: web.Request) -> web.Response:
    state, job, now = _live_job(request)
    state.stats.polls["status"] += 1
    if job is None:
        return json_error(state, 404, "Request not found or expired")
    if now >= job.end:
        state.stats.detect(job, now - job.end)
    return status_answer(job, now)


async def get_result(request: web.Request) -> web.Response:
    state, job, now = _live_job(request)
    state.stats.polls["result"] += 1
    if job is None:
        return json_error(state, 404, "Request not found or expired")
    if now >= job.end:
        state.stats.detect(job, now - job.end)
    if job.state_at(now) != "COMPLETED":
        return status_answer(job, now)
    state.stats.result_fetches += 1
    return _result_answer(state, job, now, base_url(request))


def _result_answer(state: ServerState, job: Job, now: float, base: str) -> web.Response:
    """The result of a COMPLETED job, or the bad answer a result fault asks for."""
    fault = state.faults.result()
    shown = job
    if fault == "wrong":
        other = next((j for j in state.book.newest_first()
                      if j is not job and j.state_at(now) == "COMPLETED"), None)
        if other is None:
            fault = None
        else:
            shown = other
    body = {**result_body(state, shown, now, base), "request_id": job.request_id}
    if fault is None:
        return web.json_response(body)
    state.stats.faults[f"{fault}_result"] += 1
    text = json.dumps(body)
    if fault == "garbled":
        text = text[: len(text) // 2]
    return web.Response(text=text, content_type="application/json")


async def submit_v1(request: web.Request) -> web.Response:
    """The old blocking call: waits for the job, answers the first image's bytes.

    With ``base64: true`` the answer is JSON ``{"image": <base64>}``; a FAILED job answers
    422 with ``{"error"}``.
    """
    state = request.app[STATE]
    accepted = await _accept(request)
    if isinstance(accepted, web.Response):
        return accepted
    await state.clock.sleep(accepted.end - state.clock.now())
    if accepted.error is not None:
        return json_error(state, 422, accepted.error)
    data = state.image(accepted, 0)
    if accepted.base64:
        return web.json_response({"image": base64.b64encode(data).decode("ascii")})
    return web.Response(body=data, content_type="image/png")
