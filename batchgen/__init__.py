"""batchgen: a manifest of image prompts in, finished images out, through Segmind's v2 API."""

from ._version import __version__
from .api import run
from .config import RunConfig
from .errors import BatchgenError, ManifestError, Problem
from .manifest import ManifestReader
from .models import Item

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
