"""batchgen: a manifest of image prompts in, finished images out, through Segmind's v2 API."""

from typing import TYPE_CHECKING, Any

from batchgen._version import __version__
from batchgen.config import RunConfig
from batchgen.errors import BatchgenError, ManifestError, Problem
from batchgen.manifest.item import Item
from batchgen.manifest.reader import ManifestReader

if TYPE_CHECKING:
    from batchgen.engine.run import run


def __getattr__(name: str) -> Any:
    # ``run`` loads the engine (aiohttp, anyio streams); ``batchgen validate`` needs none.
    if name == "run":
        from batchgen.engine.run import run

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
