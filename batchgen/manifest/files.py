"""The files a manifest is read from: regular files only, lines of bounded length.

A device (``/dev/zero``, ``/dev/urandom``) never ends and a FIFO blocks its reader until
a writer comes, so both are refused before they are opened; ``stat`` does not block. A
line longer than ``MAX_LINE_BYTES`` is an error on its line and is skipped without
being held in memory. ``-`` (standard input) is copied once into a temporary file,
since a manifest is read more than once (validation, then the run; breadth-first order
reads it once per pass).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Literal

# Documented in README "Manifests": one JSONL line or YAML line, one wildcard line.
MAX_LINE_BYTES = 1 << 20
# A wildcard file is read whole (the library keeps its lines in memory).
MAX_WILDCARD_BYTES = 16 << 20

# Small enough that a pass never holds much of the file, and below MAX_LINE_BYTES.
_BLOCK = 1 << 16

JSONL_SUFFIXES = (".jsonl", ".ndjson")
YAML_SUFFIXES = (".yaml", ".yml")
STDIN = "-"

Format = Literal["jsonl", "yaml"]


class UnreadableFile(Exception):
    """A manifest, items_file or wildcard file that cannot be read; the message says why."""


def open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file; else raise UnreadableFile."""
    try:
        info = path.stat()
    except OSError as exc:
        raise UnreadableFile(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = ("a directory" if stat.S_ISDIR(info.st_mode) else
                "a FIFO" if stat.S_ISFIFO(info.st_mode) else
                "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                "not a regular file")
        raise UnreadableFile(f"cannot read {path}: it is {kind}; manifests and wildcards "
                             "are read from regular files (use - for standard input)")
    try:
        return path.open("rb")
    except OSError as exc:
        raise UnreadableFile(f"cannot read {path}: {exc.strerror or exc}") from None


def read_regular(path: Path, limit: int) -> bytes:
    """The whole of a regular file of at most ``limit`` bytes; else raise UnreadableFile."""
    chunks: list[bytes] = []
    size = 0
    with open_regular(path) as handle:
        # In blocks: read(n) would set n bytes aside before reading a single one.
        while block := handle.read(1 << 20):
            size += len(block)
            if size > limit:
                raise UnreadableFile(f"cannot read {path}: larger than {limit >> 20} MB")
            chunks.append(block)
    return b"".join(chunks)


def lines(handle: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """(number, line without its newline); the line is None when past MAX_LINE_BYTES."""
    for first, batch in line_batches(handle):
        yield from enumerate(batch, first)


def line_batches(handle: BinaryIO) -> Iterator[tuple[int, list[bytes | None]]]:
    """The lines of ``handle`` as ``lines`` gives them, a block at a time, with the
    number of the first.

    Read in blocks and split in C, and handed over in lists: a generator step per line
    is a tenth of a million-line validation. Only a line that began in an earlier block
    can be past the cap (a block is smaller), so only those are measured.
    """
    number = 0
    pending = b""  # the start of a line whose end is in a later block
    too_long = False  # the line being read is past the cap: its bytes are dropped
    while block := handle.read(_BLOCK):
        parts: list[bytes | None] = list(block.split(b"\n"))
        tail = parts.pop() or b""
        if parts:
            if too_long:
                parts[0] = None  # the end of the long line
                too_long = False
            elif pending:
                joined = pending + (parts[0] or b"")
                parts[0] = joined if len(joined) <= MAX_LINE_BYTES else None
            pending = b""
            yield number + 1, parts
            number += len(parts)
        if not too_long:
            pending += tail
            if len(pending) > MAX_LINE_BYTES:
                too_long, pending = True, b""
    if pending or too_long:
        yield number + 1, [None if too_long else pending]


def wildcard_files(root: Path) -> list[Path]:
    """The wildcard files (``*.txt``) under ``root``, walked as dynamicprompts walks it.

    ``wildcard_files(manifest.parent / "wildcards")`` are all the other files a JSONL
    manifest can read (it has no header to name others): a digest that should know the
    manifest again must cover them too.
    """
    found: list[Path] = []
    for current, subfolders, names in os.walk(root, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found.extend(Path(current) / n for n in sorted(names) if n.endswith(".txt"))
    return found


def estimate_lines(path: Path) -> int:
    """About how many lines ``path`` has, from the length of those in its first block."""
    try:
        size = path.stat().st_size
        with open_regular(path) as handle:
            head = handle.read(_BLOCK)
    except (OSError, UnreadableFile):
        return 0
    return size * (head.count(b"\n") + 1) // max(len(head), 1)


def first_long_line(data: bytes) -> int | None:
    """The number of the first line longer than MAX_LINE_BYTES in ``data``, if any."""
    start = number = 0
    while start < len(data):
        number += 1
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if end - start > MAX_LINE_BYTES:
            return number
        start = end + 1
    return None


def manifest_format(path: Path) -> Format:
    """JSONL or YAML: by the suffix when it says, else by the first line that is not blank.

    A first line that is a JSON object whose keys are not a YAML manifest's own keys makes
    the file JSON lines (``prompts.txt`` holding one object per line). Anything else is
    YAML, which also reads a JSON document.
    """
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in YAML_SUFFIXES:
        return "yaml"
    first = first_content_line(path)
    if first is None or not first.startswith(b"{"):
        return "yaml"
    try:
        value = json.loads(first)
    except ValueError:
        return "yaml"
    from batchgen.manifest.header import TOP_LEVEL_KEYS  # the YAML keys

    if isinstance(value, dict) and not set(value) <= set(TOP_LEVEL_KEYS):
        return "jsonl"
    return "yaml"


def first_content_line(path: Path) -> bytes | None:
    """The first line that is neither blank nor a comment, stripped; None if unreadable."""
    try:
        with open_regular(path) as handle:
            for _, raw in lines(handle):
                if raw is None:
                    return None
                text = raw.strip().removeprefix(b"\xef\xbb\xbf")
                if text and not text.startswith(b"#"):
                    return text
    except UnreadableFile:
        return None
    return None


@contextmanager
def spooled_stdin(stream: BinaryIO | None = None) -> Iterator[Path]:
    """Standard input copied into a temporary file, removed on exit.

    The file has no suffix, so its format is found from its content.
    """
    import shutil
    import tempfile

    source = stream if stream is not None else sys.stdin.buffer
    fd, name = tempfile.mkstemp(prefix="batchgen-stdin-")
    try:
        with os.fdopen(fd, "wb") as spool:
            shutil.copyfileobj(source, spool, 1 << 20)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
