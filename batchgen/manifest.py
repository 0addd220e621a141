"""Read, expand and validate manifests (YAML or JSONL) into work items.

An item's parameters are the model defaults, overlaid by the manifest's ``defaults``,
overlaid by the item's own keys, then expanded over ``matrix`` (one item per
combination). JSONL is streamed line by line, so a million-line manifest is never held
in memory; only a YAML ``items:`` list is loaded at once.

Reading never raises on bad content: every problem is recorded with file, line, item
and field, all in one pass. Only valid items are yielded, and none at all when the
header (model, defaults, matrix) is broken; an item-level error elsewhere does not stop
the other items, so a caller must check ``valid`` after the pass before acting on them.

Ids: an explicit id is kept as written (``id.key-value...`` per matrix combination, keys
sorted); otherwise it is derived from the model and the full parameters, with ``-2``,
``-3`` ... only on repeats of an identical item. Neither depends on the order of lines.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem
from .ids import (
    STRICT_JSON,
    expansion_id,
    id_from_body,
    id_problem,
    kind_of,
)
from .idset import IdSet
from .models import Item
from .schema import DEFAULT_MODEL, did_you_mean, schema_for

MODEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
TOP_LEVEL_KEYS = ("model", "defaults", "matrix", "items", "items_file")
ITEM_KEYS = ("id", "model")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
_MISSING: Any = object()


@dataclass(slots=True)
class ModelCounts:
    """Per model: requests (one per item) and images (samples summed)."""

    requests: int = 0
    images: int = 0


@dataclass(slots=True)
class _Entry:
    """One item as written, before defaults and matrix: its keys and where they stand."""

    fields: dict[str, Any]
    file: str
    line: int | None
    field_lines: dict[str, int] = field(default_factory=dict)
    ok: bool = True  # False when reading it already found an error (a key set twice)


class ManifestReader:
    """Streams the valid items of one manifest and records every problem on the way."""

    def __init__(
        self,
        path: str | Path,
        *,
        allow_unknown_params: bool = False,
        keep_problems: int = 1000,
    ) -> None:
        self.path = Path(path)
        self.allow_unknown_params = allow_unknown_params
        self.keep_problems = keep_problems
        self._reset()

    def _reset(self) -> None:
        self.problems: list[Problem] = []
        self.errors = 0
        self.warnings = 0
        self.entries = 0
        self.counts: dict[str, ModelCounts] = {}
        self._seen_shared: set[tuple[int | None, str | None, str]] = set()
        self._model = DEFAULT_MODEL
        self._defaults: dict[str, Any] = {}
        self._default_lines: dict[str, int] = {}
        self._matrix: dict[str, list[Any]] = {}
        self._matrix_lines: dict[str, int] = {}
        self._combos: list[dict[str, Any]] = [{}]
        # False when model, defaults or matrix are broken: items are still checked, so
        # that one pass reports everything, but none is yielded.
        self._header_ok = True

    @property
    def valid(self) -> bool:
        """True when the last full pass found no error."""
        return self.errors == 0

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.counts.values())

    @property
    def images(self) -> int:
        return sum(c.images for c in self.counts.values())

    def items(self) -> Iterator[Item]:
        """Yield every valid item; problems land in ``self.problems``. Each call is a new pass."""
        self._reset()
        ids = IdSet()
        for entry in self._entries():
            self.entries += 1
            for proposed, derived in self._expand(entry):
                # Ids are claimed even when the header is broken, so that duplicates are
                # reported in the same pass; nothing is yielded from a broken manifest.
                item = self._claim_id(ids, proposed, derived)
                if item is not None and self._header_ok:
                    counts = self.counts.setdefault(item.model, ModelCounts())
                    counts.requests += 1
                    counts.images += item.samples
                    yield item
        if self.entries == 0 and self.errors == 0:
            self._problem(None, None, None, "the manifest has no items")

    def check(self) -> bool:
        """Run one full pass; True when the manifest is valid."""
        for _ in self.items():
            pass
        return self.valid

    # -- problems --------------------------------------------------------------------

    def _problem(
        self,
        line: int | None,
        item: str | None,
        fld: str | None,
        message: str,
        severity: str = "error",
        file: str | None = None,
    ) -> None:
        if severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        if len(self.problems) < self.keep_problems:
            self.problems.append(
                Problem(file or str(self.path), line, item, fld, message, severity)
            )

    # -- reading ---------------------------------------------------------------------

    def _entries(self) -> Iterator[_Entry]:
        if self.path.suffix.lower() in JSONL_SUFFIXES:
            yield from self._jsonl_entries(self.path)
        else:
            yield from self._yaml_entries()

    def _jsonl_entries(self, path: Path, *, from_line: int | None = None) -> Iterator[_Entry]:
        name = str(path)
        try:
            handle = path.open("rb")
        except OSError as exc:
            self._problem(from_line, None, "items_file" if from_line else None,
                          f"cannot open {name}: {exc.strerror or exc}")
            return
        with handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self._problem(number, None, None,
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
                    self._problem(number, None, None,
                                  f"malformed JSON at column {exc.colno}: {exc.msg}", file=name)
                    continue
                if not isinstance(value, dict):
                    self._problem(number, None, None,
                                  f"each line must be a JSON object, got {type(value).__name__}",
                                  file=name)
                    continue
                yield _Entry(value, name, number)

    def _yaml_entries(self) -> Iterator[_Entry]:
        name = str(self.path)
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            self._problem(None, None, None, f"cannot read manifest: {exc.strerror or exc}")
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            self._problem(line, None, None, "not UTF-8 text")
            return
        try:
            # The reader checks for unprintable characters as soon as it is built.
            loader = yaml.SafeLoader(text)
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            self._problem(line, None, None, f"malformed YAML: {exc.reason}")
            return
        try:
            node = loader.get_single_node()
            document = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            self._problem(mark.line + 1 if mark else None, None, None, f"malformed YAML: {problem}")
            return
        finally:
            loader.dispose()
        if document is None:
            return
        if isinstance(document, list) and isinstance(node, yaml.SequenceNode):
            yield from self._yaml_items(document, node, name)
            return
        if not isinstance(document, dict) or not isinstance(node, yaml.MappingNode):
            self._problem(_line(node), None, None,
                          "the manifest must be a mapping (model, defaults, matrix, items) "
                          "or a list of items")
            return
        key_lines = _key_lines(node)
        value_nodes = _value_nodes(node)
        if self._duplicate_keys(node, None, ""):
            self._header_ok = False
        for key in document:
            if key not in TOP_LEVEL_KEYS:
                self._problem(key_lines.get(str(key)), None, str(key),
                              f"unknown top-level key{did_you_mean(str(key), TOP_LEVEL_KEYS)}")
        if not self._read_header(document, key_lines, value_nodes):
            self._header_ok = False
        items = document.get("items")
        if items is not None:
            items_node = value_nodes.get("items")
            if isinstance(items, list) and isinstance(items_node, yaml.SequenceNode):
                yield from self._yaml_items(items, items_node, name)
            else:
                self._problem(key_lines.get("items"), None, "items", "must be a list of items")
        items_file = document.get("items_file")
        if items_file is not None:
            if not isinstance(items_file, str) or not items_file.strip():
                self._problem(key_lines.get("items_file"), None, "items_file",
                              "must be a path to a JSONL file")
            else:
                target = self.path.parent / items_file
                yield from self._jsonl_entries(target, from_line=key_lines.get("items_file"))

    def _read_header(
        self,
        document: dict[Any, Any],
        key_lines: dict[str, int],
        value_nodes: dict[str, yaml.Node],
    ) -> bool:
        """Take model, defaults and matrix; False when they are too broken to go on."""
        ok = True
        for section in ("defaults", "matrix"):
            if self._duplicate_keys(value_nodes.get(section), None, f"{section}."):
                ok = False
        model = document.get("model", DEFAULT_MODEL)
        if not isinstance(model, str) or not MODEL_PATTERN.fullmatch(model):
            self._problem(key_lines.get("model"), None, "model", f"not a model slug: {model!r}")
            # Check the items against the permissive schema rather than guess a model.
            self._model = ""
            ok = False
        else:
            self._model = model
        defaults = document.get("defaults", {})
        if not isinstance(defaults, dict):
            self._problem(key_lines.get("defaults"), None, "defaults", "must be a mapping")
            ok = False
        else:
            self._defaults = {str(k): v for k, v in defaults.items()}
            self._default_lines = _key_lines(value_nodes.get("defaults"))
            if "id" in self._defaults:
                self._problem(self._default_lines.get("id"), None, "defaults.id",
                              "an id cannot be a default: ids must be unique")
                del self._defaults["id"]
                ok = False
        matrix = document.get("matrix", {})
        if not isinstance(matrix, dict):
            self._problem(key_lines.get("matrix"), None, "matrix", "must be a mapping of lists")
            return False
        if "matrix" in document and not matrix:
            self._problem(key_lines.get("matrix"), None, "matrix",
                          "must not be empty: leave it out instead")
            ok = False
        self._matrix_lines = _key_lines(value_nodes.get("matrix"))
        for key, values in matrix.items():
            line = self._matrix_lines.get(str(key))
            if key in ITEM_KEYS:
                self._problem(line, None, f"matrix.{key}", f"{key} cannot be swept")
                ok = False
            elif not isinstance(values, list) or not values:
                self._problem(line, None, f"matrix.{key}", "must be a non-empty list of values")
                ok = False
            else:
                self._matrix[str(key)] = values
        keys = list(self._matrix)
        self._combos = [dict(zip(keys, values, strict=True))
                        for values in itertools.product(*self._matrix.values())]
        return ok

    def _yaml_items(self, items: list[Any], node: yaml.SequenceNode, name: str) -> Iterator[_Entry]:
        for value, child in zip(items, node.value, strict=False):
            line = _line(child)
            if isinstance(value, str):
                yield _Entry({"prompt": value}, name, line)
            elif isinstance(value, dict):
                fields = {str(k): v for k, v in value.items()}
                lines = _key_lines(child) if isinstance(child, yaml.MappingNode) else {}
                label = fields.get("id") if isinstance(fields.get("id"), str) else None
                twice = self._duplicate_keys(child, label, "")
                yield _Entry(fields, name, line, lines, ok=not twice)
            else:
                self._problem(line, None, None,
                              f"an item must be a mapping or a prompt string, got {kind_of(value)}")

    # -- expansion and validation ----------------------------------------------------

    def _expand(self, entry: _Entry) -> Iterator[tuple[Item, bool]]:
        """Valid items of one entry, each with whether its id was derived."""
        own = entry.fields  # built by the reader for this entry alone: ours to change
        explicit_id = own.pop("id", _MISSING)
        model = own.pop("model", self._model)
        has_id = explicit_id is not _MISSING
        label = explicit_id if isinstance(explicit_id, str) else None
        ok = entry.ok
        if has_id:
            why = id_problem(explicit_id)
            if why:
                self._problem(entry.field_lines.get("id", entry.line), label, "id", why,
                              file=entry.file)
                ok = False
        if model is not self._model and (
            not isinstance(model, str) or not MODEL_PATTERN.fullmatch(model)
        ):
            if model != "":  # "" is a broken manifest-level model, already reported
                self._problem(entry.field_lines.get("model", entry.line), label, "model",
                              f"not a model slug: {model!r}", file=entry.file)
            ok = False
        schema = schema_for(model) if isinstance(model, str) else schema_for("")
        if self._matrix:
            for key in self._matrix:
                if key in own:
                    self._problem(entry.field_lines.get(key, entry.line), label, key,
                                  "set on the item and swept by matrix: the matrix values "
                                  "are used", "warning", file=entry.file)
        defaults = self._defaults
        # One problem of the item's own is reported once, not once per combination.
        seen: set[tuple[str, str]] = set()
        for combo in self._combos:
            params = schema.with_defaults({**defaults, **own, **combo} if defaults or combo
                                          else own)
            findings = schema.check(params, allow_unknown=self.allow_unknown_params)
            item_ok = ok
            for finding in findings:
                if finding.severity == "error":
                    item_ok = False
            try:
                body: str | None = STRICT_JSON.encode({"model": model, "params": params})
            except (TypeError, ValueError):
                body, item_ok = None, False
            if findings or body is None:
                if label is None and body is not None:
                    label = id_from_body(body, params)
                for finding in findings:
                    self._report_finding(entry, label, finding.field, finding.message,
                                         finding.severity, own, combo, seen)
                if body is None:
                    flagged = {f.field for f in findings if f.severity == "error"}
                    for key, value in params.items():
                        if key not in flagged and not _is_json(value):
                            self._report_finding(
                                entry, label, key,
                                f"must be JSON data (text, numbers, true/false, null, lists, "
                                f"mappings), got {kind_of(value)}", "error", own, combo, seen)
            if not item_ok or body is None:
                continue
            if isinstance(explicit_id, str):
                item_id = expansion_id(explicit_id, combo) if combo else explicit_id
            else:
                item_id = id_from_body(body, params)
            yield Item(item_id, model, params, entry.file, entry.line), not has_id

    def _duplicate_keys(self, node: yaml.Node | None, label: str | None, prefix: str) -> bool:
        """Report keys set twice in one YAML mapping (the loader keeps the last silently)."""
        if not isinstance(node, yaml.MappingNode):
            return False
        found = False
        first: dict[str, int] = {}
        for key, _ in node.value:
            name, line = str(key.value), key.start_mark.line + 1
            if name in first:
                self._problem(line, label, prefix + name,
                              f"set twice (first on line {first[name]}): the last value would "
                              "silently win")
                found = True
            else:
                first[name] = line
        return found

    def _report_finding(
        self,
        entry: _Entry,
        label: str | None,
        fld: str,
        message: str,
        severity: str,
        own: dict[str, Any],
        combo: dict[str, Any],
        seen: set[tuple[str, str]],
    ) -> None:
        """Point the finding at the line its value came from; report shared ones once."""
        if fld in combo:
            line, shared = self._matrix_lines.get(fld), True
            message = f"{message} (from matrix)"
        elif fld in own:
            line, shared = entry.field_lines.get(fld, entry.line), False
        elif fld in self._defaults:
            line, shared = self._default_lines.get(fld), True
            message = f"{message} (from defaults)"
        else:
            line, shared = entry.line, False
        if shared:
            key = (line, fld, message)
            if key in self._seen_shared:
                return
            self._seen_shared.add(key)
            label = None
        else:
            if (fld, message) in seen:
                return
            seen.add((fld, message))
        self._problem(line, label, fld, message, severity, file=entry.file if not shared else None)

    def _claim_id(self, ids: IdSet, item: Item, derived: bool) -> Item | None:
        """The item under an id no other item has, or None (recorded) for a duplicate."""
        first = ids.add(item.id, item.line)
        if first is None:
            return item
        if derived:
            # Identical items repeat: later copies get an occurrence suffix, which depends
            # only on how many identical copies came before, not on the order of others.
            for occurrence in itertools.count(2):
                candidate = f"{item.id}-{occurrence}"
                if ids.add(candidate, item.line) is None:
                    return replace(item, id=candidate)
        where = f" (first used on line {first})" if first else ""
        self._problem(item.line, item.id, "id", f"duplicate id{where}", file=item.file)
        return None


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _key_lines(node: yaml.Node | None) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): key.start_mark.line + 1 for key, _ in node.value}


def _value_nodes(node: yaml.MappingNode) -> dict[str, yaml.Node]:
    return {str(key.value): value for key, value in node.value}


def _is_json(value: Any) -> bool:
    try:
        STRICT_JSON.encode(value)
    except (TypeError, ValueError):
        return False
    return True
