"""Images back into a manifest: the parameters batchgen, A1111 or any tool following
A1111's format wrote into them.

batchgen's own record (the ``batchgen`` iTXt chunk) gives the item back exactly: id,
model, every parameter as sent. Without it the infotext is read (PNG ``parameters``,
JPEG or WebP EXIF UserComment) and its A1111 labels mapped to the model's parameters;
labels with no counterpart are kept aside for the caller to show. The samples of one
batchgen item (``<id>-1.png``, ``<id>-2.png``) come back as that one item.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from batchgen.manifest.ids import id_problem
from batchgen.manifest.schema import DEFAULT_MODEL
from batchgen.metadata import infotext as it
from batchgen.metadata.embed import sniff
from batchgen.metadata.jpeg import read_jpeg_comment, read_webp_comment
from batchgen.metadata.png import read_png_text
from batchgen.metadata.record import PARAMETERS_KEY, RECORD_KEY, read_record
from batchgen.metadata.stream import FormatError

SeedMode = Literal["used", "sent", "random"]
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
_INTEGER = {"Steps": "num_inference_steps", "Seed": "seed", "Batch size": "samples"}


@dataclass(frozen=True, slots=True)
class Imported:
    """One manifest line made from an image; ``unmapped`` settings had no parameter."""

    path: Path
    line: dict[str, Any]
    source: Literal["batchgen", "infotext"]
    unmapped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file that gave no item, and why."""

    path: Path
    reason: str


def image_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named on the command line as they are; folders searched for images
    (``.png``, ``.jpg``, ``.jpeg``, ``.webp``, hidden files left out), in name order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file()
                              and p.suffix.lower() in IMAGE_SUFFIXES
                              and not p.name.startswith("."))
        else:
            yield path


def read_texts(source: BinaryIO) -> dict[str, str]:
    """The text entries of an image by keyword; raises FormatError for unknown formats."""
    kind = sniff(source.read(12))
    source.seek(0)
    if kind == "png":
        return read_png_text(source)
    if kind == "jpeg":
        comment = read_jpeg_comment(source)
    elif kind == "webp":
        comment = read_webp_comment(source)
    else:
        raise FormatError("not a PNG, JPEG or WebP image")
    return {PARAMETERS_KEY: comment} if comment else {}


def import_images(paths: Iterable[Path], *, seed: SeedMode = "used",
                  model: str = DEFAULT_MODEL) -> Iterator[Imported | Skipped]:
    """One result per file: an item, or why none came of it. ``model`` is the slug given
    to images from other tools (their ``Model`` names a checkpoint, not a slug)."""
    seen: set[str] = set()
    for path in image_files(paths):
        try:
            with path.open("rb") as handle:
                found = read_texts(handle)
        except (OSError, FormatError) as exc:
            yield Skipped(path, getattr(exc, "strerror", None) or str(exc))
            continue
        result = _from_texts(path, found, seed, model)
        item_id = result.line.get("id") if isinstance(result, Imported) else None
        if isinstance(item_id, str):
            if item_id.lower() in seen:
                continue  # another sample of an item already imported
            seen.add(item_id.lower())
        yield result


def _from_texts(path: Path, found: Mapping[str, str], seed: SeedMode,
                model: str) -> Imported | Skipped:
    record = read_record(found[RECORD_KEY]) if RECORD_KEY in found else None
    if record is not None:
        line = {"id": record.item_id, "model": record.model, **record.params}
        if seed == "used" and record.seed is not None:
            line["seed"] = record.seed
        elif seed == "random" and "seed" in line:
            line["seed"] = -1
        return Imported(path, line, "batchgen")
    text = found.get(PARAMETERS_KEY)
    if not text or not text.strip():
        return Skipped(path, "no parameters in the file")
    line, unmapped = line_from_infotext(it.parse_infotext(text), model=model)
    if not line.get("prompt"):
        return Skipped(path, "the parameters hold no prompt")
    if seed == "random":
        line["seed"] = -1
    return Imported(path, line, "infotext", unmapped)


def line_from_infotext(info: it.Infotext, *,
                       model: str = DEFAULT_MODEL) -> tuple[dict[str, Any], dict[str, str]]:
    """A manifest line from an infotext, and the settings that map to no parameter."""
    settings = dict(info.settings)
    ours = it.ID_LABEL in settings  # written by batchgen: raw names are our parameters
    line: dict[str, Any] = {}
    item_id = settings.pop(it.ID_LABEL, None)
    if item_id is not None and id_problem(item_id) is None:
        line["id"] = item_id
    line["model"] = settings.pop(it.MODEL) if ours and it.MODEL in settings else model
    line["prompt"] = info.prompt
    if info.negative_prompt:
        line["negative_prompt"] = info.negative_prompt
    unmapped: dict[str, str] = {}
    labels = {label: name for name, label in it.LABELS}
    settings.pop(it.BATCH_POS, None)
    if ours and settings.get(it.FILLER[0]) == it.FILLER[1]:
        del settings[it.FILLER[0]]
    for key, value in settings.items():
        converted = _convert(key, value, labels, ours)
        if converted is None:
            unmapped[key] = value
        else:
            line.update(converted)
    return line, unmapped


def _convert(key: str, value: str, labels: Mapping[str, str],
             ours: bool) -> dict[str, Any] | None:
    if key == it.SIZE:
        size = it.size_of(value)
        return None if size is None else {"img_width": size[0], "img_height": size[1]}
    if key in _INTEGER:
        try:
            return {_INTEGER[key]: int(value)}
        except ValueError:
            return None
    if key in labels:
        name = labels[key]
        return {name: _number(value) if name == "guidance_scale" else value}
    if ours and key.isidentifier() and key == key.lower():
        return {key: _json_or_text(value)}
    return None


def _number(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
