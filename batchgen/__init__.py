"""batchgen: a manifest of image prompts in, finished images out, through Segmind's v2 API."""

from ._version import __version__
from .errors import BatchgenError, ManifestError, Problem
from .manifest import ManifestReader
from .models import Item

__all__ = [
    "BatchgenError",
    "Item",
    "ManifestError",
    "ManifestReader",
    "Problem",
    "__version__",
]
