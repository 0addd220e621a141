"""JSONL manifests: one item per line, streamed; a million lines are never held at once.

Blank lines and lines starting with ``#`` are skipped; a UTF-8 byte order mark before
the first line is allowed. A line that the fast lane (``fastlane.py``) admits is an item
at once; any other is decoded and handed on as an ``Entry`` to be checked in full.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

from batchgen.manifest.fastlane import FastLane
from batchgen.manifest.files import MAX_LINE_BYTES, UnreadableFile, line_batches, open_regular
from batchgen.manifest.sources import Entry, Read, Report

Lane = Callable[[str], FastLane | None]


def jsonl_entries(path: Path, name: str, report: Report, *, from_line: int | None = None,
                  lane: Lane | None = None) -> Iterator[Read]:
    """Entries of a JSONL file; ``from_line`` is the YAML line naming it (items_file).

    Admitted lines come as ``Fast`` records instead of entries.
    """
    try:
        handle = open_regular(path)
    except UnreadableFile as exc:
        report(from_line, None, "items_file" if from_line else None, str(exc))
        return
    fast = lane(name) if lane is not None else None
    read = fast.read if fast is not None else _no_lane
    with handle:
        for first, batch in line_batches(handle):
            for number, raw in enumerate(batch, first):
                if raw is None:
                    report(number, None, None,
                           f"line longer than {MAX_LINE_BYTES >> 20} MB", file=name)
                    continue
                ready = read(raw, number)
                if ready is not None:
                    yield ready
                    continue
                entry = _entry(raw, number, name, report)
                if entry is not None:
                    yield entry


def _no_lane(raw: bytes, line: int) -> None:
    return None


def _entry(raw: bytes, number: int, name: str, report: Report) -> Entry | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report(number, None, None, f"not UTF-8 text (byte {exc.start + 1} of the line)",
               file=name)
        return None
    if number == 1:
        text = text.removeprefix("\ufeff")  # editors on Windows write a BOM
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        report(number, None, None, f"malformed JSON at column {exc.colno}: {json_reason(exc)}",
               file=name)
        return None
    if not isinstance(value, dict):
        report(number, None, None,
               f"each line must be a JSON object, got {type(value).__name__}", file=name)
        return None
    return Entry(value, name, number)


def json_reason(exc: json.JSONDecodeError) -> str:
    """The decoder's reason, finished: its control-character message ends in "at"."""
    if exc.msg.startswith("Invalid control character") and exc.pos < len(exc.doc):
        code = ord(exc.doc[exc.pos])
        return f"raw control character U+{code:04X} in a string (write it as \\u{code:04x})"
    return exc.msg
