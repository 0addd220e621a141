"""The local Segmind-compatible v2 server: test double and embedded default.

Modules: ``config`` (options), ``app`` (routes, gateway), ``api`` (v2/v1 endpoints),
``submit`` (accepting a job), ``jobs`` (lazy job states), ``history`` (account history),
``files`` and ``png`` (outputs), ``journal`` (the state directory), ``faults``,
``ratelimit``, ``stats``, ``runner`` (start/stop in-process) and ``command``
(``batchgen serve``).
"""

from typing import TYPE_CHECKING, Any

from .config import DEMO_API_KEY, FAIL_MARKER, ServerConfig

if TYPE_CHECKING:
    from .journal import StateDirError
    from .runner import LocalServer, serve_local, start_server
    from .state import ServerState

# The running parts pull in aiohttp.web; load them on first use so that commands which
# only need the options (``batchgen validate``, ``--help``) stay light.
_LAZY = {"LocalServer": "runner", "serve_local": "runner", "start_server": "runner",
         "ServerState": "state", "StateDirError": "journal"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)

__all__ = [
    "DEMO_API_KEY",
    "FAIL_MARKER",
    "LocalServer",
    "ServerConfig",
    "ServerState",
    "StateDirError",
    "serve_local",
    "start_server",
]
