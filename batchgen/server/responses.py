"""Error answers shaped like the real API's: JSON ``{"error"}``, except 405 (an HTML page)
and the missing-Content-Type 406 (plain text); plus the dropped connection."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from .state import ServerState

_HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>"
    "<body><center><h1>{status} {reason}</h1></center><hr><center>nginx</center>"
    "</body></html>\n"
)


def html_page(status: int, reason: str) -> web.Response:
    """An HTML error page, as a gateway in front of the API would answer."""
    return web.Response(
        status=status,
        text=_HTML_PAGE.format(status=status, reason=reason),
        content_type="text/html",
    )


def method_not_allowed() -> web.Response:
    """405: always HTML (API-FACTS)."""
    return html_page(405, "Not Allowed")


def plain_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


def json_error(
    state: ServerState,
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """``{"error": message}``, or, when the non-JSON fault fires, text or HTML."""
    kind = state.faults.non_json()
    if kind is not None:
        state.stats.faults["non_json"] += 1
        response = (
            plain_error(status, message) if kind == "text" else html_page(status, message)
        )
        if headers:
            response.headers.update(headers)
        return response
    return web.json_response({"error": message}, status=status, headers=headers)


def drop(request: web.Request) -> web.Response:
    """Close the connection with no answer.

    aiohttp then fails to write the returned response, takes the ConnectionError as a
    client that went away, and logs nothing.
    """
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)
