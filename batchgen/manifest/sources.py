"""Where manifest entries come from: JSONL lines and YAML documents, with their positions.

Each entry is one item as written, before defaults and matrix, with the lines its keys
stand on. YAML's header (model, defaults, matrix) is read into a ``Header`` before the
first entry. Problems go to the caller's ``report``; nothing here raises on bad content.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from batchgen.manifest.ids import kind_of
from batchgen.manifest.schema import DEFAULT_MODEL, did_you_mean

MODEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
TOP_LEVEL_KEYS = ("model", "defaults", "matrix", "items", "items_file")
ITEM_KEYS = ("id", "model")


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


@dataclass(slots=True)
class Header:
    """A YAML manifest's model, defaults and matrix, with the lines they stand on."""

    model: str = DEFAULT_MODEL
    defaults: dict[str, Any] = field(default_factory=dict)
    default_lines: dict[str, int] = field(default_factory=dict)
    matrix: dict[str, list[Any]] = field(default_factory=dict)
    matrix_lines: dict[str, int] = field(default_factory=dict)
    combos: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    # False when model, defaults or matrix are broken: items are still checked, so that
    # one pass reports everything, but none is yielded.
    ok: bool = True


def jsonl_entries(path: Path, report: Report, *, from_line: int | None = None
                  ) -> Iterator[Entry]:
    """Entries of a JSONL file, line by line; ``from_line`` is the YAML line naming it."""
    name = str(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        report(from_line, None, "items_file" if from_line else None,
               f"cannot open {name}: {exc.strerror or exc}")
        return
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report(number, None, None,
                       f"not UTF-8 text (byte {exc.start + 1} of the line)", file=name)
                continue
            if number == 1:
                text = text.removeprefix("\ufeff")  # editors on Windows write a BOM
            text = text.strip()
            if not text or text.startswith("#"):
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                report(number, None, None,
                       f"malformed JSON at column {exc.colno}: {json_reason(exc)}", file=name)
                continue
            if not isinstance(value, dict):
                report(number, None, None,
                       f"each line must be a JSON object, got {type(value).__name__}",
                       file=name)
                continue
            yield Entry(value, name, number)


def json_reason(exc: json.JSONDecodeError) -> str:
    """The decoder's reason, finished: its control-character message ends in "at"."""
    if exc.msg.startswith("Invalid control character") and exc.pos < len(exc.doc):
        code = ord(exc.doc[exc.pos])
        return f"raw control character U+{code:04X} in a string (write it as \\u{code:04x})"
    return exc.msg


def yaml_entries(path: Path, report: Report, header: Header) -> Iterator[Entry]:
    """Entries of a YAML manifest; ``header`` is filled in before the first one."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        report(None, None, None, f"cannot read manifest: {exc.strerror or exc}")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        report(line, None, None, "not UTF-8 text")
        return
    try:
        # The reader checks for unprintable characters as soon as it is built.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        report(line, None, None, f"malformed YAML: {exc.reason}")
        return
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        report(mark.line + 1 if mark else None, None, None, f"malformed YAML: {problem}")
        return
    finally:
        loader.dispose()
    if document is None:
        return
    if isinstance(document, list) and isinstance(node, yaml.SequenceNode):
        yield from _yaml_items(document, node, name, report)
        return
    if not isinstance(document, dict) or not isinstance(node, yaml.MappingNode):
        report(_line(node), None, None,
               "the manifest must be a mapping (model, defaults, matrix, items) "
               "or a list of items")
        return
    key_lines = _key_lines(node)
    value_nodes = _value_nodes(node)
    if duplicate_keys(node, None, "", report):
        header.ok = False
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            report(key_lines.get(str(key)), None, str(key),
                   f"unknown top-level key{did_you_mean(str(key), TOP_LEVEL_KEYS)}")
    if not _read_header(document, key_lines, value_nodes, report, header):
        header.ok = False
    items = document.get("items")
    if items is not None:
        items_node = value_nodes.get("items")
        if isinstance(items, list) and isinstance(items_node, yaml.SequenceNode):
            yield from _yaml_items(items, items_node, name, report)
        else:
            report(key_lines.get("items"), None, "items", "must be a list of items")
    items_file = document.get("items_file")
    if items_file is not None:
        if not isinstance(items_file, str) or not items_file.strip():
            report(key_lines.get("items_file"), None, "items_file",
                   "must be a path to a JSONL file")
        else:
            target = path.parent / items_file
            yield from jsonl_entries(target, report, from_line=key_lines.get("items_file"))


def _read_header(
    document: dict[Any, Any],
    key_lines: dict[str, int],
    value_nodes: dict[str, yaml.Node],
    report: Report,
    header: Header,
) -> bool:
    """Take model, defaults and matrix; False when they are too broken to go on."""
    ok = True
    for section in ("defaults", "matrix"):
        if duplicate_keys(value_nodes.get(section), None, f"{section}.", report):
            ok = False
    model = document.get("model", DEFAULT_MODEL)
    if not isinstance(model, str) or not MODEL_PATTERN.fullmatch(model):
        report(key_lines.get("model"), None, "model", f"not a model slug: {model!r}")
        # Check the items against the permissive schema rather than guess a model.
        header.model = ""
        ok = False
    else:
        header.model = model
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        report(key_lines.get("defaults"), None, "defaults", "must be a mapping")
        ok = False
    else:
        header.defaults = {str(k): v for k, v in defaults.items()}
        header.default_lines = _key_lines(value_nodes.get("defaults"))
        if "id" in header.defaults:
            report(header.default_lines.get("id"), None, "defaults.id",
                   "an id cannot be a default: ids must be unique")
            del header.defaults["id"]
            ok = False
    matrix = document.get("matrix", {})
    if not isinstance(matrix, dict):
        report(key_lines.get("matrix"), None, "matrix", "must be a mapping of lists")
        return False
    if "matrix" in document and not matrix:
        report(key_lines.get("matrix"), None, "matrix",
               "must not be empty: leave it out instead")
        ok = False
    header.matrix_lines = _key_lines(value_nodes.get("matrix"))
    for key, values in matrix.items():
        line = header.matrix_lines.get(str(key))
        if key in ITEM_KEYS:
            report(line, None, f"matrix.{key}", f"{key} cannot be swept")
            ok = False
        elif not isinstance(values, list) or not values:
            report(line, None, f"matrix.{key}", "must be a non-empty list of values")
            ok = False
        else:
            header.matrix[str(key)] = values
    keys = list(header.matrix)
    header.combos = [dict(zip(keys, values, strict=True))
                    for values in itertools.product(*header.matrix.values())]
    return ok


def _yaml_items(items: list[Any], node: yaml.SequenceNode, name: str, report: Report
                ) -> Iterator[Entry]:
    for value, child in zip(items, node.value, strict=False):
        line = _line(child)
        if isinstance(value, str):
            yield Entry({"prompt": value}, name, line)
        elif isinstance(value, dict):
            fields = {str(k): v for k, v in value.items()}
            lines = _key_lines(child) if isinstance(child, yaml.MappingNode) else {}
            label = fields.get("id") if isinstance(fields.get("id"), str) else None
            twice = duplicate_keys(child, label, "", report)
            yield Entry(fields, name, line, lines, ok=not twice)
        else:
            report(line, None, None,
                   f"an item must be a mapping or a prompt string, got {kind_of(value)}")


def duplicate_keys(node: yaml.Node | None, label: str | None, prefix: str,
                   report: Report) -> bool:
    """Report keys set twice in one YAML mapping (the loader keeps the last silently)."""
    if not isinstance(node, yaml.MappingNode):
        return False
    found = False
    first: dict[str, int] = {}
    for key, _ in node.value:
        name, line = str(key.value), key.start_mark.line + 1
        if name in first:
            report(line, label, prefix + name,
                   f"set twice (first on line {first[name]}): the last value would "
                   "silently win")
            found = True
        else:
            first[name] = line
    return found


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _key_lines(node: yaml.Node | None) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): key.start_mark.line + 1 for key, _ in node.value}


def _value_nodes(node: yaml.MappingNode) -> dict[str, yaml.Node]:
    return {str(key.value): value for key, value in node.value}
