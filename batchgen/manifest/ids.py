"""Item ids and the canonical JSON they are derived from.

An explicit id is kept as written (``id.key-value...`` per matrix combination, keys
sorted); otherwise it is derived from the model and the full parameters: a slug of the
prompt and a short hash. Neither depends on the order of manifest lines.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")

# Built once: json.dumps() with options builds a new encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# The same spelling, but refusing what is not JSON (NaN, dates, sets): an item's body
# must survive the trip to the API.
STRICT_JSON = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> str:
    """The one JSON spelling of ``value`` used for hashing and comparing request bodies."""
    return _CANONICAL.encode(value)


def derived_id(model: str, params: Mapping[str, Any]) -> str:
    """A stable id from the model and the full parameters: a prompt slug and a short hash."""
    return id_from_body(canonical_json({"model": model, "params": params}), params)


def id_from_body(body: str, params: Mapping[str, Any]) -> str:
    digest = hashlib.blake2b(body.encode(), digest_size=6).hexdigest()
    prompt = params.get("prompt")
    words = _SLUG_JUNK.sub("-", prompt[:64].lower()).strip("-") if isinstance(prompt, str) else ""
    slug = words[:32].rstrip("-")
    return f"{slug}-{digest}" if slug else digest


def expansion_id(base: str, combo: Mapping[str, Any]) -> str:
    """The id of one matrix combination of an item whose own id is ``base``.

    Keys are sorted so that reordering the matrix does not rename the items.
    """
    parts = [f"{key}-{str(combo[key]).replace(' ', '_')}" for key in sorted(combo)]
    candidate = ".".join([base, *parts])
    if ID_PATTERN.fullmatch(candidate) and ".." not in candidate:
        return candidate
    # Too long or not id-safe: hash the base with the combination, so two long bases
    # sharing a prefix cannot end up with the same id.
    digest = hashlib.blake2b(
        canonical_json([base, combo]).encode(), digest_size=4
    ).hexdigest()
    return f"{base[:118]}.m{digest}"


def id_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an item id, or None when it can."""
    if not isinstance(value, str):
        return f"must be a string, got {kind_of(value)}"
    if not ID_PATTERN.fullmatch(value) or ".." in value:
        return (
            f"{value[:60]!r} is not a valid id: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 128 characters, no '..'"
        )
    return None


def kind_of(value: Any) -> str:
    """How a value's type reads in a message: "a boolean", "null", "str" ..."""
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return type(value).__name__
