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
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from batchgen.errors import Problem
from batchgen.manifest.ids import (
    STRICT_JSON,
    expansion_id,
    id_from_body,
    id_problem,
    kind_of,
)
from batchgen.manifest.idset import IdSet
from batchgen.manifest.item import Item
from batchgen.manifest.schema import schema_for
from batchgen.manifest.sources import MODEL_PATTERN, Entry, Header, jsonl_entries, yaml_entries

JSONL_SUFFIXES = (".jsonl", ".ndjson")
_MISSING: Any = object()


@dataclass(slots=True)
class ModelCounts:
    """Per model: requests (one per item) and images (samples summed)."""

    requests: int = 0
    images: int = 0


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
        self._header = Header()

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
                if item is not None and self._header.ok:
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

    def _entries(self) -> Iterator[Entry]:
        if self.path.suffix.lower() in JSONL_SUFFIXES:
            yield from jsonl_entries(self.path, self._problem)
        else:
            yield from yaml_entries(self.path, self._problem, self._header)

    # -- expansion and validation ----------------------------------------------------

    def _expand(self, entry: Entry) -> Iterator[tuple[Item, bool]]:
        """Valid items of one entry, each with whether its id was derived."""
        own = entry.fields  # built by the reader for this entry alone: ours to change
        explicit_id = own.pop("id", _MISSING)
        model = own.pop("model", self._header.model)
        has_id = explicit_id is not _MISSING
        label = explicit_id if isinstance(explicit_id, str) else None
        ok = entry.ok
        if has_id:
            why = id_problem(explicit_id)
            if why:
                self._problem(entry.field_lines.get("id", entry.line), label, "id", why,
                              file=entry.file)
                ok = False
        if model is not self._header.model and (
            not isinstance(model, str) or not MODEL_PATTERN.fullmatch(model)
        ):
            if model != "":  # "" is a broken manifest-level model, already reported
                self._problem(entry.field_lines.get("model", entry.line), label, "model",
                              f"not a model slug: {model!r}", file=entry.file)
            ok = False
        schema = schema_for(model) if isinstance(model, str) else schema_for("")
        if self._header.matrix:
            for key in self._header.matrix:
                if key in own:
                    self._problem(entry.field_lines.get(key, entry.line), label, key,
                                  "set on the item and swept by matrix: the matrix values "
                                  "are used", "warning", file=entry.file)
        defaults = self._header.defaults
        # One problem of the item's own is reported once, not once per combination.
        seen: set[tuple[str, str]] = set()
        for combo in self._header.combos:
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

    def _report_finding(
        self,
        entry: Entry,
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
            line, shared = self._header.matrix_lines.get(fld), True
            message = f"{message} (from matrix)"
        elif fld in own:
            line, shared = entry.field_lines.get(fld, entry.line), False
        elif fld in self._header.defaults:
            line, shared = self._header.default_lines.get(fld), True
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
        """The item under an id no other item has, or None (recorded) for a duplicate.

        Ids become file names: ``<id>.png``, or ``<id>-<k>.png`` for several samples. So
        they are compared ignoring case (Fox and fox are one file on macOS), and the
        sample names are claimed too (``shot`` with two samples writes ``shot-2.png``,
        which an item with the id ``shot-2`` would overwrite).
        """
        claimed = item
        first = ids.add(item.id.lower(), item.line)
        if first is not None and derived:
            # Identical items repeat: later copies get an occurrence suffix, which depends
            # only on how many identical copies came before, not on the order of others.
            for occurrence in itertools.count(2):
                candidate = f"{item.id}-{occurrence}"
                if ids.add(candidate.lower(), item.line) is None:
                    claimed, first = replace(item, id=candidate), None
                    break
        if first is not None:
            where = f" (first used on line {first})" if first else ""
            self._problem(item.line, item.id, "id",
                          f"duplicate id or image name, ignoring case{where}", file=item.file)
            return None
        if claimed.samples > 1:
            for k in range(1, claimed.samples + 1):
                stem = f"{claimed.id}-{k}"
                taken = ids.add(stem.lower(), item.line)
                if taken is not None:
                    where = f" on line {taken}" if taken else ""
                    self._problem(item.line, claimed.id, "id",
                                  f"its image {stem}.png would have the name of the item "
                                  f"with id {stem!r}{where}", file=item.file)
                    return None
        return claimed


def _is_json(value: Any) -> bool:
    try:
        STRICT_JSON.encode(value)
    except (TypeError, ValueError):
        return False
    return True
