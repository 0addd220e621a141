"""Segmind's answers parsed once, into typed values."""

from __future__ import annotations

from typing import Any


def number(value: Any) -> float | None:
    """``value`` as a float when the server sent a JSON number (not a boolean), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
