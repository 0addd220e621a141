"""Where manifest entries come from, as written: ``Entry``, made by ``jsonl`` and ``yamlfile``.

Each entry is one item as written, before defaults, sweeps and templates, with the lines
its keys stand on. Problems go to the caller's report; nothing here raises on bad
content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from batchgen.manifest.item import Item


@dataclass(slots=True)
class Entry:
    """One item as written, before defaults and matrix: its keys and where they stand."""

    fields: dict[str, Any]
    file: str
    line: int | None
    field_lines: dict[str, int] = field(default_factory=dict)
    ok: bool = True  # False when reading it already found an error (a key set twice)


# What a source gives: an entry to check, or an item the fast lane already checked,
# with whether its id was derived.
Read: TypeAlias = Entry | tuple[Item, bool]
