"""The records that flow between stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def number(value: Any) -> float | None:
    """``value`` as a float when the server sent a JSON number (not a boolean), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


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
