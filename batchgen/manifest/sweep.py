"""Parameter sweeps: ``matrix`` (every combination) and ``zip`` (lists walked together).

Combinations are made one at a time as they are needed, so a million-combination sweep
costs no more memory than a small one; their number is known before the first.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Sweep:
    """The swept keys and their values; iterating gives each combination as a dict."""

    matrix: dict[str, list[Any]] = field(default_factory=dict)
    zipped: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return [*self.matrix, *self.zipped]

    def __len__(self) -> int:
        """How many combinations: the matrix product times the length of the zip."""
        rows = len(next(iter(self.zipped.values()))) if self.zipped else 1
        return math.prod(len(v) for v in self.matrix.values()) * rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        keys = self.keys
        if not keys:
            yield {}
            return
        rows: Any = zip(*self.zipped.values(), strict=True) if self.zipped else [()]
        rows = list(rows)  # the zip is as long as one of its lists: already in memory
        for values in itertools.product(*self.matrix.values()):
            for row in rows:
                yield dict(zip(keys, (*values, *row), strict=True))
