"""Where manifest entries come from, as written: ``Entry``, made by ``jsonl`` and ``yamlfile``.

Each entry is one item as written, before defaults, sweeps and templates, with the lines
its keys stand on. Problems go to the caller's report; nothing here raises on bad
content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from batchgen.manifest.fastlane import FastLane


class Report(Protocol):
    """Where a problem goes: line, item, field, message, severity, file."""

    def __call__(self, line: int | None, item: str | None, fld: str | None, message: str,
                 severity: str = "error", file: str | None = None) -> None: ...


@dataclass(slots=True)
class Entry:
    """One item as written, before defaults and matrix: its keys and where they stand."""

    fields: dict[str, Any]
    file: str
    line: int | None
    field_lines: dict[str, int] = field(default_factory=dict)
    ok: bool = True  # False when reading it already found an error (a key set twice)


# A JSONL line the fast lane found valid: (lane, line, id, whether the id was derived,
# samples, the decoded struct); its item is made only when taken (``FastLane.item``).
# A plain tuple: it is made once per line of a million-line manifest.
Fast: TypeAlias = "tuple[FastLane, int, str, bool, int, Any]"

# What a source gives: an entry to check, or a line the fast lane already checked.
Read: TypeAlias = "Entry | Fast"
