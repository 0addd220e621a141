"""YAML manifests: the header, then each item with the lines its keys stand on.

A YAML manifest is read whole (use JSONL, which is streamed, for very large ones), with
PyYAML's safe loader only. ``items_file`` names a JSONL file beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from batchgen.manifest.files import (
    MAX_LINE_BYTES,
    YAML_SUFFIXES,
    UnreadableFile,
    first_content_line,
    first_long_line,
    read_regular,
)
from batchgen.manifest.header import TOP_LEVEL_KEYS, Header, read_header
from batchgen.manifest.ids import kind_of
from batchgen.manifest.schema import did_you_mean
from batchgen.manifest.sources import Entry, Read, Report
from batchgen.manifest.yamlnodes import duplicate_keys, key_lines, line_of, value_nodes

# A YAML document is held whole, with a node per value: past this, JSONL is the way.
MAX_YAML_BYTES = 256 << 20

JsonlReader = Callable[[Path, int | None], Iterator[Read]]


def yaml_entries(path: Path, name: str, report: Report, header: Header, *, base: Path,
                 max_expansions: int, items_file: JsonlReader) -> Iterator[Read]:
    """Entries of a YAML manifest; ``header`` is filled in before the first one."""
    document, node = _load(path, name, report)
    if document is None or node is None:
        return
    if isinstance(document, list) and isinstance(node, yaml.SequenceNode):
        yield from _items(document, node, name, report)
        return
    if not isinstance(document, dict) or not isinstance(node, yaml.MappingNode):
        report(line_of(node), None, None,
               "the manifest must be a mapping (model, defaults, matrix, items) "
               "or a list of items")
        return
    lines, nodes = key_lines(node), value_nodes(node)
    if duplicate_keys(node, None, "", report):
        header.ok = False
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            report(lines.get(str(key)), None, str(key),
                   f"unknown top-level key{did_you_mean(str(key), TOP_LEVEL_KEYS)}")
    read_header(document, node, report, header, base=base, max_expansions=max_expansions)
    items = document.get("items")
    if items is not None:
        items_node = nodes.get("items")
        if isinstance(items, list) and isinstance(items_node, yaml.SequenceNode):
            yield from _items(items, items_node, name, report)
        else:
            report(lines.get("items"), None, "items", "must be a list of items")
    target = document.get("items_file")
    if target is not None:
        if not isinstance(target, str) or not target.strip():
            report(lines.get("items_file"), None, "items_file",
                   "must be a path to a JSONL file")
        else:
            yield from items_file(base / target, lines.get("items_file"))


def _load(path: Path, name: str, report: Report) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree, or (None, None) with the problem reported."""
    try:
        data = read_regular(path, MAX_YAML_BYTES)
    except UnreadableFile as exc:
        report(None, None, None, f"{exc} (YAML is read whole: use JSONL for more)"
               if "larger than" in str(exc) else str(exc))
        return None, None
    long_line = first_long_line(data)
    if long_line is not None:
        report(long_line, None, None, f"line longer than {MAX_LINE_BYTES >> 20} MB")
        return None, None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        report(data.count(b"\n", 0, exc.start) + 1, None, None, "not UTF-8 text")
        return None, None
    try:
        # The reader checks for unprintable characters as soon as it is built.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        report(text.count("\n", 0, exc.position) + 1, None, None,
               f"malformed YAML: {exc.reason}")
        return None, None
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        line, message = _where(exc)
        report(line, None, None, message + _jsonl_hint(path))
        return None, None
    finally:
        loader.dispose()
    return document, node


def _where(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """The line a person would look at, and the message, for a YAML syntax error.

    A bracket or quote left open is only noticed at the end of the file; PyYAML's
    context mark says where it was opened, which is where the fault is.
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    opened = getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark else None
    if context and opened and "end" in problem and "stream" in problem:
        what = context.removeprefix("while parsing ").removeprefix("while scanning ")
        return opened.line + 1, (f"malformed YAML: {what} opened here is never closed "
                                 f"({problem}, line {line})")
    return line, f"malformed YAML: {problem}"


def _jsonl_hint(path: Path) -> str:
    if path.suffix.lower() in YAML_SUFFIXES:
        return ""
    first = first_content_line(path)
    if first is not None and first.startswith(b"{"):
        return (" (read as YAML: if this is JSON lines, one object per line, "
                "name the file .jsonl or .ndjson)")
    return ""


def _items(items: list[Any], node: yaml.SequenceNode, name: str, report: Report
           ) -> Iterator[Entry]:
    for value, child in zip(items, node.value, strict=False):
        line = line_of(child)
        if isinstance(value, str):
            yield Entry({"prompt": value}, name, line)
        elif isinstance(value, dict):
            fields = {str(k): v for k, v in value.items()}
            lines = key_lines(child) if isinstance(child, yaml.MappingNode) else {}
            label = fields.get("id") if isinstance(fields.get("id"), str) else None
            twice = duplicate_keys(child, label, "", report)
            yield Entry(fields, name, line, lines, ok=not twice)
        else:
            report(line, None, None,
                   f"an item must be a mapping or a prompt string, got {kind_of(value)}")
