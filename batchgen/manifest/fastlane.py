"""The fast lane for JSONL lines: typed decoding with the model's constraints (msgspec).

A million-line manifest is validated line by line before anything is sent, so the cost
of one line is the cost of the whole start (issue 12: within twice a bare ``json.loads``
pass). msgspec decodes a line straight into a struct built from the model's parameter
table, checking every type, range and choice in C; a line that passes is an item with no
further check. A line that does not (any problem, a warning, a template, another model)
goes the ordinary way, which finds and words its problems. So the fast lane never
decides that a line is bad, only that it is good, and both ways give the same items.

The request body hashed into a derived id is encoded by msgspec too. For the types this
lane admits (text, booleans, integers, and numbers between 1e-4 and 1e16) its output is
byte for byte the one of ``ids.STRICT_JSON``, so ids do not depend on the lane taken.
"""

from __future__ import annotations

import math
from hashlib import blake2b
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType, to_builtins

from batchgen.manifest.ids import ID_REGEX, prompt_slug
from batchgen.manifest.item import Item
from batchgen.manifest.schema import ModelSchema, Param
from batchgen.manifest.sources import Fast
from batchgen.manifest.templates import is_template

# Where repr() and msgspec spell floats alike: no exponent (repr switches at 1e16, 1e-4).
_SAFE_FLOATS = (1e-4, 1e16)
_NON_BLANK = r"\S"


class FastLane:
    """Turns a JSONL line that needs no second look into its item, or says it cannot."""

    def __init__(self, schema: ModelSchema, defaults: dict[str, Any], file: str) -> None:
        self.model = schema.slug
        self.file = file
        # The struct's defaults are the model's overlaid by the manifest's: decoding a
        # line gives its full parameters at once.
        self._decode = msgspec.json.Decoder(
            _struct_for(schema, schema.with_defaults(defaults))).decode
        self._encode = msgspec.json.Encoder(order="sorted").encode
        # Copied per line: cheaper than parsing blake2b's keyword arguments each time.
        self._hasher = blake2b(digest_size=6)

    @staticmethod
    def admits(schema: ModelSchema, defaults: dict[str, Any]) -> bool:
        """True when lines of this model, under these defaults, can take the lane."""
        if not schema.strict or not all(_typeable(p) for p in schema.params.values()):
            return False
        if "samples" not in schema.defaults():  # the lane reads it from the parameters
            return False
        probe = {"prompt": "x", **defaults}
        return not schema.check(probe) and not any(
            isinstance(v, str) and is_template(v) for v in defaults.values())

    def read(self, raw: bytes, line: int) -> Fast | None:
        """The id, samples and parameters of a valid line; None to go the long way.

        Written out, not in helpers: it runs once per line of a million-line manifest.
        The parameters stay in their struct, and the item is made only when someone
        takes it (``item``): a validation pass never builds either.
        """
        try:
            typed: Any = self._decode(raw)
        except msgspec.MsgspecError:
            return None
        prompt = typed.prompt
        negative = typed.negative_prompt
        if "{" in prompt or "__" in prompt or (negative is not UNSET and (
                "{" in negative or "__" in negative)):
            return None  # a template (templates.is_template): the long way expands it
        if typed.id is not UNSET:
            return self, line, typed.id, False, typed.samples, typed
        # ids.id_from_bytes, inlined but for the slug. The struct encodes as its
        # parameters would (sorted, UNSET left out), once a "model" key is set aside.
        params = typed if typed.model is UNSET else _parameters(typed)
        hasher = self._hasher.copy()
        hasher.update(self._encode({"model": self.model, "params": params}))
        digest = hasher.hexdigest()
        slug = prompt_slug(prompt)
        return self, line, slug + "-" + digest if slug else digest, True, typed.samples, typed

    def item(self, fast: Fast) -> Item:
        """The item of a line ``read`` found valid."""
        _, line, item_id, _, _, typed = fast
        return Item(item_id, self.model, _parameters(typed), self.file, line)


def _parameters(typed: Any) -> dict[str, Any]:
    """A decoded line's parameters, given or defaulted (UNSET ones left out)."""
    params: dict[str, Any] = to_builtins(typed)
    params.pop("id", None)
    params.pop("model", None)
    return params


def _typeable(spec: Param) -> bool:
    if spec.kind != "number":
        return True
    low, high = spec.minimum, spec.maximum
    return low is not None and high is not None and _SAFE_FLOATS[0] <= low and \
        high < _SAFE_FLOATS[1]


def _struct_for(schema: ModelSchema, base: dict[str, Any]) -> type[msgspec.Struct]:
    """A struct of the schema's parameters, with ``base`` as their defaults.

    A parameter with no default is required when the schema requires it, else left
    UNSET (and out of ``to_builtins``); ``id`` and ``model`` are read and set aside.
    """
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for spec in schema.params.values():
        kind = _type_of(spec)
        if spec.name in base:
            fields.append((spec.name, kind, base[spec.name]))
        elif spec.required:
            fields.append((spec.name, kind))
        else:
            fields.append((spec.name, kind | UnsetType, UNSET))
    fields.append(("id", Annotated[str, Meta(pattern=ID_REGEX)] | UnsetType, UNSET))
    fields.append(("model", Literal[schema.slug] | UnsetType, UNSET))
    # gc=False: its fields are text and numbers, never a cycle; untracked is cheaper.
    return msgspec.defstruct(f"Typed_{schema.slug}", fields, kw_only=True,
                             forbid_unknown_fields=True, gc=False)


def _type_of(spec: Param) -> Any:
    """The msgspec type of one parameter, as strict as ``schema._check_value``."""
    if spec.choices:
        # Hinted choices too: an undocumented value is a warning the long way must word.
        return Literal[spec.choices]
    bounds: dict[str, Any] = {}
    if spec.kind == "string":
        return Annotated[str, Meta(pattern=_NON_BLANK)] if spec.non_empty else str
    if spec.kind == "boolean":
        return bool
    if spec.kind == "integer":
        if spec.minimum is not None:
            bounds["ge"] = math.ceil(spec.minimum)
        if spec.maximum is not None:
            bounds["le"] = math.floor(spec.maximum)
        return Annotated[int, Meta(**bounds)]
    # A number: an integer or a finite float within the bounds, each kept as written.
    low, high = spec.minimum, spec.maximum
    return (Annotated[int, Meta(ge=math.ceil(low or 0), le=math.floor(high or 0))]
            | Annotated[float, Meta(ge=low, le=high)])
