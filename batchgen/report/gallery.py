"""``OUT/gallery.html``: a contact sheet of a run, one self-contained file.

The page links each image by a relative path (``images/...``), so it works from
``file://`` and keeps working when OUT is copied or served; it loads nothing from
elsewhere. This module gathers the data from the store; ``gallery_page`` lays out the
page and ``gallery.js`` draws pages of cards from the data, so the browser holds one
page of images at a time.

The data is one JSON block, laid out by column to stay small (about 20 bytes an image
for a 10,000-image sweep):

- ``ids``: in id order, each either a string or ``[n, rest]``: the first ``n``
  characters of the previous id, then ``rest`` (sorted ids share long prefixes);
- ``cols``: per varying parameter (``keys``), ``{"v": distinct values, "i": one index
  per row}``, or ``{"r": one value per row}`` when most values differ (random seeds).
  ``seed`` is the seed the server used; ``model`` is a parameter like the others;
- ``common``: the parameters every item shares, shown once;
- ``files``, ``errors``, ``missing``: by row number, only where they differ from the
  usual (one ``images/<id>.png`` for a completed item): an image count or a list of
  paths; ``[error class, message]``; the sample numbers whose file is not on disk.

Everything from the manifest is user text: the header is HTML-escaped, the JSON has
``<``, ``>`` and ``&`` escaped so it cannot end its script element, and the script
builds the cards with ``textContent`` only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from batchgen.lifecycle import COMPLETED
from batchgen.metadata import infotext
from batchgen.output.files import image_name, write_atomic
from batchgen.report.gallery_page import Counts, page
from batchgen.report.morning import error_group
from batchgen.report.status import read_status
from batchgen.store.items import ItemRecord
from batchgen.store.views import count_finished, iter_finished

GALLERY_FILE = "gallery.html"
# A contact sheet past this many items is more than a browser or a person wants in one
# page; the first ones by id are shown and the header says so (results.jsonl has all).
MAX_ITEMS = 20_000
PAGE_SIZE = 200
# JavaScript numbers are doubles: larger integers (seeds may pass 2^53) travel as text.
_SAFE_INT = 2**53
# A column whose values mostly differ is written as is, not through a table of values.
_TABLE_SHARE = 0.5


@dataclass(slots=True)
class _Row:
    id: str
    values: dict[str, Any]
    files: int | list[str]
    error: list[str] | None
    missing: list[int]


@dataclass(slots=True)
class _Gathered:
    rows: list[_Row] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)


def shown_values(record: ItemRecord) -> dict[str, Any]:
    """The parameters to show, with the model; ``seed`` is the one the server used when
    it reported it."""
    values = {"model": record.model, **record.params}
    seed = (record.result or {}).get("seed")
    if seed is not None:
        values["seed"] = seed
    return values


def _files(record: ItemRecord) -> tuple[int | list[str], list[str]]:
    """The compact spelling of an item's image paths (unsafe ones left out), and them."""
    paths = [str(entry.get("path", "")) for entry in record.files or []]
    count = len(paths)
    if paths == [f"images/{image_name(record.id, k, count, 'png')}" for k in range(count)]:
        return count, paths
    safe = [p for p in paths if _relative(p)]
    return safe, safe


def _relative(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and ":" not in path


def _gather(db: Path, out: Path) -> _Gathered:
    found = _Gathered()
    for record in iter_finished(db, limit=MAX_ITEMS):
        files, paths = _files(record)
        error = None
        if record.state == COMPLETED:
            found.counts.completed += 1
            missing = [k for k, p in enumerate(paths) if not (out / p).is_file()]
            found.counts.images += len(paths) - len(missing)
            found.counts.missing += len(missing)
        else:
            found.counts.failed += 1
            missing, files = [], 0
            group = error_group(record.error_class)
            label = (group if record.error_class in (None, group)
                     else f"{group} ({record.error_class})")
            error = [label, record.last_error or "no message recorded"]
        found.rows.append(_Row(record.id, shown_values(record), files, error, missing))
    return found


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _js(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _SAFE_INT:
        return str(value)
    return value


def _split(rows: list[_Row]) -> tuple[list[str], dict[str, Any]]:
    """The varying keys (different values, or set on some rows only) and the shared ones."""
    first: dict[str, str] = {}
    present: dict[str, int] = {}
    varying: set[str] = set()
    for row in rows:
        for key, value in row.values.items():
            present[key] = present.get(key, 0) + 1
            if first.setdefault(key, _canonical(value)) != _canonical(value):
                varying.add(key)
    keys = sorted(k for k in present if k in varying or present[k] < len(rows))
    common = {k: _js(json.loads(first[k])) for k in sorted(first) if k not in keys}
    return keys, common


def _column(values: list[Any]) -> dict[str, Any]:
    table: dict[str, int] = {}
    distinct: list[Any] = []
    indices = []
    for value in values:
        spelled = _canonical(value)
        if spelled not in table:
            table[spelled] = len(distinct)
            distinct.append(_js(value))
        indices.append(table[spelled])
    if len(distinct) > _TABLE_SHARE * len(values):
        return {"r": [_js(v) for v in values]}
    return {"v": distinct, "i": indices}


def _front_coded(ids: list[str]) -> list[str | list[Any]]:
    coded: list[str | list[Any]] = []
    previous = ""
    for item_id in ids:
        shared = 0
        for a, b in zip(previous, item_id, strict=False):
            if a != b:
                break
            shared += 1
        coded.append([shared, item_id[shared:]] if shared > 2 else item_id)
        previous = item_id
    return coded


def gallery_data(db: Path, out: Path) -> tuple[dict[str, Any], Counts]:
    """The page's data block and the counts for its header. Blocking."""
    found = _gather(db, out)
    rows = found.rows
    keys, common = _split(rows)
    data = {
        "meta": {"keys": keys, "common": common, "page": PAGE_SIZE,
                 "labels": [list(pair) for pair in infotext.LABELS],
                 "hidden": sorted(infotext.NOT_LISTED), "filler": list(infotext.FILLER)},
        "ids": _front_coded([row.id for row in rows]),
        "cols": {k: _column([row.values.get(k) for row in rows]) for k in keys},
        "files": {n: row.files for n, row in enumerate(rows)
                  if row.files != (1 if row.error is None else 0)},
        "errors": {n: row.error for n, row in enumerate(rows) if row.error},
        "missing": {n: row.missing for n, row in enumerate(rows) if row.missing},
    }
    return data, found.counts


def gallery_lines(db: Path, out: Path) -> Iterator[str]:
    """The gallery page in pieces. Blocking."""
    data, counts = gallery_data(db, out)
    counts.total = count_finished(db)
    counts.shown_max = MAX_ITEMS
    counts.by_state = read_status(out)["items"]
    yield from page(out, data, counts)


def write_gallery(db: Path, out: Path) -> Path:
    """Write ``OUT/gallery.html`` atomically and return its path. Blocking."""
    target = out / GALLERY_FILE
    write_atomic(target, gallery_lines(db, out))
    return target
