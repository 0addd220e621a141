"""The local Segmind-compatible v2 server: test double and embedded default.

Modules: ``config`` (options), ``app`` (routes, gateway), ``api`` (v2/v1 endpoints),
``submit`` (accepting a job), ``jobs`` (lazy job states), ``history`` (account history),
``files`` and ``png`` (outputs), ``faults``, ``ratelimit``, ``stats``, ``runner``
(start/stop in-process) and ``command`` (``batchgen serve``).
"""

from .config import DEMO_API_KEY, FAIL_MARKER, ServerConfig
from .runner import LocalServer, serve_local, start_server
from .state import ServerState

__all__ = [
    "DEMO_API_KEY",
    "FAIL_MARKER",
    "LocalServer",
    "ServerConfig",
    "ServerState",
    "serve_local",
    "start_server",
]
