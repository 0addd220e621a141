"""A YAML manifest's header: model, defaults, sweeps, expansion, order and wildcards.

The header applies to every item (``items`` and ``items_file``). A broken header is
reported, and its items are still checked, but none is yielded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.manifest.ids import MODEL_PATTERN
from batchgen.manifest.modes import EXPAND_ALL, ExpandMode, Order, parse_expand, parse_order
from batchgen.manifest.schema import DEFAULT_MODEL
from batchgen.manifest.sources import Report
from batchgen.manifest.sweep import Sweep
from batchgen.manifest.yamlnodes import duplicate_keys, key_lines, value_nodes

if TYPE_CHECKING:
    import yaml

TOP_LEVEL_KEYS = ("model", "defaults", "matrix", "zip", "expand", "order", "wildcards",
                  "items", "items_file")
ITEM_KEYS = ("id", "model", "expand")
WILDCARDS_DIR = "wildcards"


@dataclass(slots=True)
class Header:
    """The settings every item of a manifest shares, with the lines they stand on."""

    model: str = DEFAULT_MODEL
    model_line: int | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    default_lines: dict[str, int] = field(default_factory=dict)
    sweep: Sweep = field(default_factory=Sweep)
    sweep_lines: dict[str, int] = field(default_factory=dict)
    expand: ExpandMode = EXPAND_ALL
    order: Order = "manifest"
    # None: the default, ``wildcards/`` beside the manifest when there is one.
    wildcards: Path | None = None
    # False when a header section is broken: items are still checked, so that one pass
    # reports everything, but none is yielded.
    ok: bool = True


Fail = Callable[..., None]


def read_header(document: dict[Any, Any], node: yaml.MappingNode, report: Report,
                header: Header, *, base: Path, max_expansions: int) -> None:
    """Fill ``header`` from a YAML mapping; ``header.ok`` goes False on any error."""
    lines, nodes = key_lines(node), value_nodes(node)
    fresh = Header()  # a pass reads the header again (breadth-first order): start clean
    for name in Header.__slots__:
        setattr(header, name, getattr(fresh, name))

    def fail(key: str, message: str, line: int | None = None) -> None:
        report(line or lines.get(key), None, key, message)
        header.ok = False

    for section in ("defaults", "matrix", "zip"):
        if duplicate_keys(nodes.get(section), None, f"{section}.", report):
            header.ok = False
    model = document.get("model", DEFAULT_MODEL)
    header.model_line = lines.get("model")
    if not isinstance(model, str) or not MODEL_PATTERN.fullmatch(model):
        # Check the items against the permissive schema rather than guess a model.
        header.model = ""
        fail("model", f"not a model slug: {model!r}")
    else:
        header.model = model
    _read_defaults(document, nodes, header, fail)
    header.sweep_lines = {**key_lines(nodes.get("matrix")), **key_lines(nodes.get("zip"))}
    if "matrix" in document:
        header.sweep.matrix = _read_lists(document["matrix"], "matrix", header, fail)
    if "zip" in document:
        header.sweep.zipped = _read_zip(document["zip"], header, fail)
    count = len(header.sweep)
    if count > max_expansions:
        fail("matrix" if "matrix" in document else "zip",
             f"the sweep makes {count:,} combinations of each item, more than "
             f"--max-expansions ({max_expansions:,})")
        header.sweep = Sweep()
    if "expand" in document:
        mode = parse_expand(document["expand"], max_expansions)
        if isinstance(mode, str):
            fail("expand", mode)
        else:
            header.expand = mode
    if "order" in document:
        try:
            header.order = parse_order(document["order"])
        except ValueError as exc:
            fail("order", str(exc))
    if "wildcards" in document:
        _read_wildcards(document["wildcards"], base, header, fail)


def _read_defaults(document: dict[Any, Any], nodes: dict[str, yaml.Node], header: Header,
                   fail: Fail) -> None:
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        fail("defaults", "must be a mapping")
        return
    header.defaults = {str(k): v for k, v in defaults.items()}
    header.default_lines = key_lines(nodes.get("defaults"))
    if "id" in header.defaults:
        fail("defaults.id", "an id cannot be a default: ids must be unique",
             header.default_lines.get("id"))
        del header.defaults["id"]
    for key in ("expand", "model"):
        if key in header.defaults:
            fail(f"defaults.{key}", f"set {key} at the top level, not in defaults",
                 header.default_lines.get(key))
            del header.defaults[key]


def _read_lists(value: Any, section: str, header: Header,
                fail: Fail) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        fail(section, "must be a mapping of lists")
        return {}
    if not value:
        fail(section, "must not be empty: leave it out instead")
        return {}
    found: dict[str, list[Any]] = {}
    for key, values in value.items():
        name, line = str(key), header.sweep_lines.get(str(key))
        if name in ITEM_KEYS:
            fail(f"{section}.{name}", f"{name} cannot be swept", line)
        elif not isinstance(values, list) or not values:
            fail(f"{section}.{name}", "must be a non-empty list of values", line)
        elif name in header.sweep.matrix:
            fail(f"{section}.{name}", "swept by both matrix and zip: sweep it once", line)
        else:
            found[name] = values
    return found


def _read_zip(value: Any, header: Header, fail: Fail) -> dict[str, list[Any]]:
    lists = _read_lists(value, "zip", header, fail)
    if not lists:
        return {}
    first, length = next((k, len(v)) for k, v in lists.items())
    for key, values in lists.items():
        if len(values) != length:
            fail(f"zip.{key}", f"has {len(values)} values but zip.{first} has {length}: "
                 "zip walks its lists together, so they must be of one length",
                 header.sweep_lines.get(key))
            return {}
    return lists


def _read_wildcards(value: Any, base: Path, header: Header, fail: Fail) -> None:
    if not isinstance(value, str) or not value.strip():
        fail("wildcards", "must be the path of a folder of wildcard files")
        return
    folder = base / value
    if not folder.is_dir():
        fail("wildcards", f"no folder {folder}")
        return
    header.wildcards = folder
