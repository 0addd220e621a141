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
# The same rule as one regular expression, ".." excluded, for typed decoding.
ID_REGEX = r"\A(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z"
MODEL_PATTERN = ID_PATTERN
# Slugs keep ASCII letters and digits; every other byte of the UTF-8 text separates words.
SLUG_BYTES = bytes(c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256))
_ASCII_SLUG_BYTES = bytes(c + 32 if 65 <= c <= 90 else c for c in range(256)).translate(SLUG_BYTES)

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
    """The derived id of a request body (``canonical_json`` of model and params)."""
    return id_from_bytes(body.encode(), params.get("prompt"))


def id_from_bytes(body: bytes, prompt: Any) -> str:
    """A slug of the prompt and a short hash of the body."""
    digest = hashlib.blake2b(body, digest_size=6).hexdigest()
    slug = prompt_slug(prompt) if isinstance(prompt, str) else ""
    return slug + "-" + digest if slug else digest


def prompt_slug(prompt: str) -> str:
    """The slug a derived id starts with: ``slug_of`` the first 64 characters, cut to 32.

    In bytes until the end, with ASCII text lowercased by the same table that keeps
    letters and digits: this runs once per line of a million-line manifest.
    """
    if prompt.isascii():
        words = prompt[:64].encode().translate(_ASCII_SLUG_BYTES).split()
    else:  # str.lower() knows more than ASCII (the Kelvin sign is a k)
        words = prompt[:64].lower().encode().translate(SLUG_BYTES).split()
    return b"-".join(words)[:32].rstrip(b"-").decode()


def slug_of(text: str) -> str:
    """Lowercase ASCII words of ``text`` joined by '-': "A Fox!" gives "a-fox"."""
    return "-".join(text.lower().encode().translate(SLUG_BYTES).decode("ascii").split())


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
    return f"{base[:118].rstrip('.')}.m{digest}"


def template_id(base: str, texts: Mapping[str, str], fixed: frozenset[str]) -> str:
    """The id of one template expansion of an item whose own id is ``base``.

    ``base.<words>-<hash>``: the words the expansion chose (those not in the template's
    own text ``fixed``), then a hash of the expanded texts. It depends on nothing but
    what this item expanded to, so editing one wildcard line renames only the items
    that drew that line.
    """
    digest = hashlib.blake2b(canonical_json(texts).encode(), digest_size=4).hexdigest()
    words = dict.fromkeys(w for text in texts.values() for w in slug_of(text).split("-")
                          if w and w not in fixed)
    slug = ""
    for word in words:  # whole words, up to a length an eye takes in
        if slug and len(slug) + 1 + len(word) > 32:
            break
        slug = f"{slug}-{word}" if slug else word[:32]
    candidate = f"{base}.{slug}-{digest}" if slug else f"{base}.{digest}"
    if len(candidate) <= 128:
        return candidate
    return f"{base[:128 - len(digest) - 2].rstrip('.')}.t{digest}"


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
