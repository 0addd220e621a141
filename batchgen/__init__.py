"""batchgen: a manifest of image prompts in, finished images out, through Segmind's v2 API."""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .config import RunConfig
from .errors import BatchgenError, ManifestError, Problem
from .manifest import ManifestReader
from .models import Item

if TYPE_CHECKING:
    from .api import run


def __getattr__(name: str) -> Any:
    # ``run`` loads the engine (aiohttp, anyio streams); ``batchgen validate`` needs none.
    if name == "run":
        from .api import run

        return run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BatchgenError",
    "Item",
    "ManifestError",
    "ManifestReader",
    "Problem",
    "RunConfig",
    "__version__",
    "run",
]
