"""Accepting a submit: slug, Content-Type, body and credit checks, then scheduling.

Everything here is synchronous on purpose: the rate-limit check, the checks and the
recording of the accepted request happen with no await in between, so concurrent
submits cannot slip past the window together.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from ..manifest.ids import canonical_json
from ..manifest.schema import schema_for
from .config import REFERENCE_STEPS, SAFETY_ERROR, WORKER_ERROR, work
from .jobs import Job
from .ratelimit import reset_header
from .responses import json_error, plain_error
from .state import ServerState


def _int_param(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def rate_limited(state: ServerState, key: str, now: float) -> web.Response | None:
    """A 429 when ``key``'s window is full, else None; nothing is recorded here."""
    until = state.window.blocked_until(key, now)
    if until is None:
        return None
    state.stats.rate_limited += 1
    reset = reset_header(state.clock.wall() + (until - now))
    return json_error(
        state,
        429,
        f"Rate limit of {state.config.rpm} requests per minute exceeded",
        headers={"x-rate-limit-reset-at-utc": reset},
    )


def _check_request(
    state: ServerState, slug: str, content_type: str, raw: bytes
) -> dict[str, Any] | web.Response:
    config = state.config
    if slug in config.retired:
        return json_error(state, 410, f"Model {slug} has been retired")
    if slug in config.forbidden:
        return json_error(state, 403, f"Your API key is not allowed to use {slug}")
    if slug not in config.known_slugs():
        return json_error(state, 404, f"Model {slug} not found")
    if content_type != "application/json":
        return plain_error(406, "Content-Type must be application/json")
    try:
        body = json.loads(raw)
    except ValueError:
        return json_error(state, 400, "Request body is not valid JSON")
    if not isinstance(body, dict):
        return json_error(state, 400, "Request body must be a JSON object")
    errors = [
        f"{f.field}: {f.message}"
        for f in schema_for(slug).check(body, allow_unknown=True)
        if f.severity == "error"
    ]
    if errors:
        return json_error(state, 400, "; ".join(errors))
    return body


def accept_submit(
    state: ServerState, key: str, slug: str, content_type: str, raw: bytes
) -> Job | web.Response:
    """The accepted job, or the error answer that refuses it."""
    config = state.config
    now = state.now()
    limited = rate_limited(state, key, now)
    if limited is not None:
        return limited
    checked = _check_request(state, slug, content_type, raw)
    if isinstance(checked, web.Response):
        return checked
    body = checked
    params = schema_for(slug).with_defaults(body)
    samples = max(1, _int_param(params, "samples", 1))
    width = _int_param(params, "img_width", 512)
    height = _int_param(params, "img_height", 512)
    steps = _int_param(params, "num_inference_steps", REFERENCE_STEPS)
    units = work(steps=steps, width=width, height=height, samples=samples)
    price = config.price(samples=samples, work=units)
    if state.book.available + 1e-9 < price:
        return json_error(state, 406, "Insufficient credits")

    # A real random source, not the seeded generator: a restarted server must never hand
    # out an id it gave before (a client would take another job's images for its own).
    request_id = str(uuid.uuid4())
    rng = state.rng
    seed = _int_param(params, "seed", -1)
    if seed == -1:
        seed = rng.randrange(2**32)
    prompt = body.get("prompt", "")
    error: str | None = None
    if isinstance(prompt, str) and any(marker in prompt for marker in config.fail_prompts):
        error = SAFETY_ERROR
    elif config.fail_rate > 0 and rng.random() < config.fail_rate:
        error = WORKER_ERROR
    duration_s = config.latency_s * units
    if config.jitter > 0:
        duration_s *= 1.0 + rng.uniform(-config.jitter, config.jitter)
    start, end = state.book.schedule(now, duration_s)
    # A FAILED job is not billed (API-FACTS).
    cost = 0.0 if error else price
    job = Job(
        request_id=request_id,
        slug=slug,
        body_json=canonical_json(body),
        seed=seed,
        samples=samples,
        width=width,
        height=height,
        base64=params.get("base64") is True,
        created=now,
        created_wall=state.clock.wall(),
        start=start,
        end=end,
        error=error,
        cost=cost,
    )
    try:
        state.record(job)
    except OSError:
        # Not recorded, so not accepted: the client may send it again without paying twice.
        return json_error(state, 500, "Internal error: the job could not be recorded")
    state.window.record(key, now)
    return job
