"""The AUTOMATIC1111 "infotext": how an image was made, as the SD tools write and read it.

The format, as A1111's ``infotext_utils`` writes and parses it (``parameters`` in a PNG,
EXIF UserComment in a JPEG)::

    <prompt, any number of lines>
    Negative prompt: <negative prompt, any number of lines>
    Steps: 25, Sampler: DPM Multi, CFG scale: 7.5, Seed: 101, Size: 512x768, ...

The last line is a list of ``Key: value`` pairs separated by ``,``; it counts as the
settings line only when at least three pairs are found in it, otherwise it belongs to
the prompt. A value holding a ``,``, a ``:`` or a newline is written as a JSON string,
and a value that begins and ends with ``"`` is read back with a JSON decoder (the raw
text is kept when that fails). Prompt lines are stripped of surrounding spaces.

This module writes the format and reads it back by those same rules, in code of its
own. It is the only place that knows the labels; the gallery's copy button mirrors
``format_infotext`` in JavaScript, and a browser test keeps the two equal.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NEGATIVE = "Negative prompt:"
# Segmind parameter -> A1111 label, in the order A1111 writes them. ``img_width`` and
# ``img_height`` become one ``Size: WxH``; ``seed`` is the seed the server used.
LABELS: tuple[tuple[str, str], ...] = (
    ("num_inference_steps", "Steps"),
    ("scheduler", "Sampler"),
    ("guidance_scale", "CFG scale"),
)
SIZE = "Size"
SEED = "Seed"
MODEL = "Model"
BATCH_SIZE = "Batch size"
BATCH_POS = "Batch pos"
ID_LABEL = "batchgen id"
# The settings line needs three pairs to be read as one: a padding pair where the image
# has fewer (another model's bare prompt).
FILLER = ("Generator", "batchgen")
# Parameters shown elsewhere in the text, or meaningless to another tool.
NOT_LISTED = frozenset({"prompt", "negative_prompt", "seed", "img_width", "img_height",
                        "samples", "base64", *(name for name, _ in LABELS)})
# A key A1111's parser can read back: a word character, then at least one more of
# word characters, spaces, '-' or '/'.
_KEY = re.compile(r"\w[\w /-]+")
_PAIR = re.compile(
    r"""\s*
    (?P<key> \w [\w\ /-]+ )
    : \s*
    (?P<value> " (?: \\. | [^"\\] )+ "     # a JSON string; escapes may hide commas
             | [^,]* )                      # or plain text up to the next comma
    (?: , | $ )""",
    re.VERBOSE,
)
_SIZE = re.compile(r"(\d+)x(\d+)")
_MIN_PAIRS = 3
_SAFE_INT = 2**53


@dataclass(frozen=True, slots=True)
class Infotext:
    """An infotext read back: prompt, negative prompt, and the settings in their order."""

    prompt: str
    negative_prompt: str = ""
    settings: dict[str, str] = field(default_factory=dict)


def spell(value: Any) -> str:
    """A parameter value as text: strings as they are, numbers as JavaScript prints them
    (``7.0`` is ``7``), anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() \
            and abs(value) < _SAFE_INT:
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def quote(text: str) -> str:
    """``text`` as a settings value: JSON-quoted when it holds ``,`` ``:`` or a line break,
    or when it would otherwise lose its ends (surrounding spaces, a leading ``"``)."""
    if any(c in text for c in ",:\n\r") or text != text.strip() or text.startswith('"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def unquote(text: str) -> str:
    """A settings value as written: JSON strings decoded, anything else as it is."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            return text
        return decoded if isinstance(decoded, str) else text
    return text


def settings_pairs(*, model: str, params: Mapping[str, Any], seed: int | None,
                   item_id: str, index: int = 0, count: int = 1) -> list[tuple[str, str]]:
    """The ``Key: value`` pairs of an image, unquoted, in the order they are written."""
    given = {name: value for name, value in params.items() if value is not None}
    pairs = [(label, spell(given[name])) for name, label in LABELS if name in given]
    if seed is not None:
        pairs.append((SEED, str(seed)))
    width, height = given.get("img_width"), given.get("img_height")
    if width is not None and height is not None:
        pairs.append((SIZE, f"{spell(width)}x{spell(height)}"))
    pairs.append((MODEL, model))
    if count > 1:
        pairs += [(BATCH_SIZE, str(count)), (BATCH_POS, str(index))]
    pairs += [(name, spell(given[name])) for name in sorted(given)
              if name not in NOT_LISTED and _KEY.fullmatch(name)]
    pairs.append((ID_LABEL, item_id))
    if len(pairs) < _MIN_PAIRS:
        pairs.append(FILLER)
    return pairs


def format_infotext(*, model: str, params: Mapping[str, Any], seed: int | None,
                    item_id: str, index: int = 0, count: int = 1) -> str:
    """The infotext of one image (``index`` counts from 0 among ``count`` samples)."""
    lines = [spell(params.get("prompt", ""))]
    negative = params.get("negative_prompt")
    if negative not in (None, ""):
        lines.append(f"{NEGATIVE} {spell(negative)}")
    pairs = settings_pairs(model=model, params=params, seed=seed, item_id=item_id,
                           index=index, count=count)
    lines.append(", ".join(f"{key}: {quote(value)}" for key, value in pairs))
    return "\n".join(lines)


def parse_infotext(text: str) -> Infotext:
    """Read an infotext by A1111's rules: prompt lines, ``Negative prompt:`` lines, and a
    last line of at least three ``Key: value`` pairs (else it is part of the prompt)."""
    *lines, last = text.strip().split("\n")
    found = [(m["key"], m["value"]) for m in _PAIR.finditer(last)]
    if len(found) < _MIN_PAIRS:
        lines.append(last)
        found = []
    prompt = negative = ""
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith(NEGATIVE):
            in_negative = True
            line = line[len(NEGATIVE):].strip()
        # As A1111 joins them: a line break only once some text came before.
        if in_negative:
            negative = f"{negative}\n{line}" if negative else line
        else:
            prompt = f"{prompt}\n{line}" if prompt else line
    settings = {key: unquote(value) for key, value in found}
    return Infotext(prompt, negative, settings)


def size_of(value: str) -> tuple[int, int] | None:
    """``(width, height)`` of a ``WxH`` value."""
    match = _SIZE.fullmatch(value)
    return (int(match[1]), int(match[2])) if match else None
