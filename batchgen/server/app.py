"""The aiohttp application: routes, and the gateway middleware in front of the API.

The gateway does, in order, what a real API gateway would: injected faults (drop,
5xx, slow), then the ``x-api-key`` check (401), then, when ``rpm_scope`` is "all", the
rate limit for non-submit calls (submits check it themselves, see ``submit.py``).
Downloads and ``/__stats`` need no key and see no gateway faults.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.utils import formatdate

from aiohttp import web

from . import api, files, history
from .keys import ACCEPTED, API_KEY, STATE
from .responses import drop, json_error, method_not_allowed
from .state import ServerState
from .submit import rate_limited

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SUBMIT_ROUTES = frozenset({"submit_v2", "submit_v1"})
API_ROUTES = SUBMIT_ROUTES | {"status", "result", "history_list", "history_get"}


async def _gateway_checks(
    request: web.Request, handler: Handler, state: ServerState, is_submit: bool
) -> web.StreamResponse:
    faults = state.faults
    if faults.drop_before():
        state.stats.faults["drop_before"] += 1
        return drop(request)
    status = faults.error_status()
    if status is not None:
        state.stats.faults[str(status)] += 1
        return json_error(state, status, f"Injected error {status}")
    if faults.slow():
        state.stats.faults["slow"] += 1
        await state.clock.sleep(state.config.slow_s)
    key = request.headers.get("x-api-key")
    if key != state.config.api_key:
        return json_error(state, 401, "Unauthorized: missing or invalid x-api-key")
    request[API_KEY] = key
    if is_submit or state.config.rpm_scope != "all":
        return await handler(request)
    now = state.now()
    limited = rate_limited(state, key, now)
    if limited is not None:
        return limited
    response = await handler(request)
    # A FAILED job's 422 is a successful poll; other errors are refused requests.
    if response.status < 400 or response.status == 422:
        state.window.record(key, now)
    return response


@web.middleware
async def gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    state.stats.requests += 1
    name = request.match_info.route.name
    if name not in API_ROUTES:
        try:
            return await handler(request)
        except web.HTTPMethodNotAllowed:
            return method_not_allowed()
        except web.HTTPNotFound:
            return json_error(state, 404, "Not found")
    is_submit = name in SUBMIT_ROUTES
    response = await _gateway_checks(request, handler, state, is_submit)
    dropped = request.transport is None or request.transport.is_closing()
    if is_submit and not dropped and not request.get(ACCEPTED):
        state.stats.submits_rejected[response.status] += 1
    return response


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].snapshot())


async def _date_from_clock(request: web.Request, response: web.StreamResponse) -> None:
    """``Date`` from the server's own clock, as its 429 reset times are: a client corrects
    for clock skew with it (API-FACTS), so the two must agree even on a manual clock."""
    wall = request.app[STATE].clock.wall()
    response.headers["Date"] = formatdate(wall, usegmt=True)


def build_app(state: ServerState) -> web.Application:
    """The server's application around ``state``."""
    app = web.Application(middlewares=[gateway])
    app[STATE] = state
    app.on_response_prepare.append(_date_from_clock)
    app.router.add_post("/v2/{slug}", api.submit_v2, name="submit_v2")
    app.router.add_get("/v2/requests/{request_id}/status", api.get_status, name="status")
    app.router.add_get("/v2/requests/{request_id}", api.get_result, name="result")
    app.router.add_post("/v1/{slug}", api.submit_v1, name="submit_v1")
    app.router.add_get(
        "/inference-request/request-history", history.list_history, name="history_list"
    )
    app.router.add_get(
        "/inference-request/request-history/{request_id}",
        history.get_history,
        name="history_get",
    )
    app.router.add_get(r"/files/{request_id}/{index:\d+}.png", files.download, name="file")
    app.router.add_get("/__stats", stats, name="stats")
    return app
