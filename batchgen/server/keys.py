"""Typed keys for what handlers find on the app and on each request."""

from __future__ import annotations

from aiohttp import web

from .state import ServerState

STATE = web.AppKey("state", ServerState)
# The authenticated API key, set by the gateway middleware on each API request.
API_KEY = "batchgen.api_key"
# Set on a submit's request once its job exists, so the gateway does not count it refused.
ACCEPTED = "batchgen.accepted"
