"""Wildcard files: ``__name__`` in a template draws a line from ``name.txt``.

The folder is ``wildcards/`` beside the manifest, or the one ``wildcards: DIR`` names.
Names are paths without ``.txt`` (``__people/girls__``) and may be globs
(``__people/*__``), matched by dynamicprompts itself. batchgen reads the files first,
regular files only, UTF-8, each line by the library's rule (stripped; blank lines and
``#`` comments skipped), so that an unreadable or empty file is a clear error instead
of a silent nothing, and then hands the library the lines it read: the library never
opens a file of its own.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.manifest.escapes import hide_escapes
from batchgen.manifest.files import (
    MAX_LINE_BYTES,
    MAX_WILDCARD_BYTES,
    UnreadableFile,
    first_long_line,
    read_regular,
    wildcard_files,
)


class NoWildcardValues(LookupError):
    """A wildcard matched no line while a template was being expanded."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"wildcard __{name}__ has no values")


@dataclass(slots=True)
class WildcardFile:
    """One wildcard file: its name, path, lines (number, text), or why it is unusable."""

    name: str
    path: Path
    lines: list[tuple[int, str]] = field(default_factory=list)
    problem: str | None = None


class WildcardFolder:
    """The wildcard files of one manifest, read on first use."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._files: dict[str, WildcardFile] | None = None
        self._manager: Any = None

    @property
    def files(self) -> dict[str, WildcardFile]:
        if self._files is None:
            self._files = _scan(self.root) if self.root is not None else {}
        return self._files

    @property
    def manager(self) -> Any:
        """The library's manager over the files read (empty ones included, with no lines)."""
        if self._manager is None:
            from dynamicprompts.wildcards.collection.list import ListWildcardCollection

            collections = {
                name: ListWildcardCollection([hide_escapes(text) for _, text in f.lines],
                                             source=f)
                for name, f in self.files.items()}
            self._manager = _manager_class()(root_map={"": [collections]})
        return self._manager

    def resolve(self, name: str) -> list[WildcardFile]:
        """The files a reference matches, by the library's rules (globs, ``**/`` fallback)."""
        manager = self.manager
        found = list(manager.match_collections(name))
        if not found and not name.startswith("**"):
            found = list(manager.match_collections(f"**/{name}"))
        return [c.source for c in found if isinstance(getattr(c, "source", None), WildcardFile)]


@functools.cache
def _manager_class() -> type:
    """The library's manager, adapted; imported only when a template is met."""
    from dynamicprompts.wildcards import WildcardManager
    from dynamicprompts.wildcards.values import WildcardValues

    class Manager(WildcardManager):
        """The library's manager, refusing a wildcard with no values.

        The library would instead yield the wildcard's own name forever (a combinatorial
        expansion that never ends).
        """

        def get_values(self, wildcard: str) -> WildcardValues:
            values = super().get_values(wildcard)
            if not values:
                raise NoWildcardValues(wildcard)
            return values

    return Manager


def _scan(root: Path) -> dict[str, WildcardFile]:
    """Every wildcard file under ``root``, by name (its path without ``.txt``)."""
    return {name: _read(name, path) for path in wildcard_files(root)
            if (name := path.relative_to(root).with_suffix("").as_posix())}


def _read(name: str, path: Path) -> WildcardFile:
    entry = WildcardFile(name, path)
    try:
        data = read_regular(path, MAX_WILDCARD_BYTES)
    except UnreadableFile as exc:
        entry.problem = str(exc)
        return entry
    long_line = first_long_line(data)
    if long_line is not None:
        entry.problem = f"line {long_line} is longer than {MAX_LINE_BYTES >> 20} MB"
        return entry
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        entry.problem = f"not UTF-8 text (line {line})"
        return entry
    # Text-mode lines (universal newlines), stripped, as the library reads a .txt file.
    for number, raw in enumerate(io.StringIO(text, newline=None), start=1):
        value = raw.strip()
        if value and not value.startswith("#"):
            entry.lines.append((number, value))
    if not entry.lines:
        entry.problem = "is empty (no line that is not blank or a # comment)"
    return entry
