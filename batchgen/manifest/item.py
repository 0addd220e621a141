"""An item: one request to make, as the manifest describes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Item:
    """One request to make: a model, its full parameters, and where it was written."""

    id: str
    model: str
    params: dict[str, Any]
    file: str
    line: int | None

    @property
    def samples(self) -> int:
        """How many images this request asks for."""
        value = self.params.get("samples", 1)
        return value if isinstance(value, int) and not isinstance(value, bool) else 1
