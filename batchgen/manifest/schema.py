"""Model parameter schemas, shared by the manifest reader and the local server.

The table for ``sd1.5-epicrealism`` comes from the model's API page and API-FACTS
(../shared/segmind/). Other slugs get a permissive schema: ``prompt`` must be a
non-empty string and every other parameter passes through untouched.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_MODEL = "sd1.5-epicrealism"

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with one parameter; the caller adds file, line and item."""

    field: str
    message: str
    severity: Severity = "error"


@dataclass(frozen=True, slots=True)
class Param:
    """One model parameter: its JSON type, default and allowed values."""

    name: str
    kind: Literal["string", "integer", "number", "boolean"]
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()
    # The published list is incomplete (the page's own example uses a scheduler not in
    # it), so an unknown choice is a warning rather than an error.
    choices_are_hints: bool = False
    non_empty: bool = False


@dataclass(frozen=True, slots=True)
class ModelSchema:
    """The parameters one model accepts; ``strict`` says whether unknown names are known."""

    slug: str
    params: Mapping[str, Param] = field(default_factory=dict)
    strict: bool = True
    # Built once: validate calls with_defaults() once per item, a million times a run.
    _defaults: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        defaults = {p.name: p.default for p in self.params.values() if p.default is not None}
        object.__setattr__(self, "_defaults", defaults)

    def defaults(self) -> dict[str, Any]:
        """The model's documented defaults, for parameters that have one."""
        return dict(self._defaults)

    def check(self, params: Mapping[str, Any], *, allow_unknown: bool = False) -> list[Finding]:
        """Every problem with ``params``, in a stable order; an empty list means valid."""
        findings: list[Finding] = []
        specs = self.params
        for name, spec in specs.items():
            if name in params:
                value = params[name]
                # A default taken as is is valid by construction; skip the checks.
                if value is not spec.default or spec.default is None:
                    findings.extend(_check_value(spec, value))
            elif spec.required:
                findings.append(Finding(name, "is required"))
        if self.strict:
            for name in params:
                if name not in specs:
                    findings.append(_unknown_param(name, list(specs), allow_unknown))
        return findings

    def with_defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` on top of the model defaults."""
        return {**self._defaults, **params}


SCHEDULERS = (
    "UniPC",
    "DDIM",
    "DPM Multi",
    "DPM Single",
    "Euler a",
    "Euler",
    "Heun",
    "DPM2 a Karras",
    "DPM2 Karras",
    "LMS",
    "PNDM",
)

IMAGE_SIDES = (512, 768, 1024)

EPICREALISM = ModelSchema(
    slug=DEFAULT_MODEL,
    params={
        p.name: p
        for p in (
            Param("prompt", "string", required=True, non_empty=True),
            Param("negative_prompt", "string"),
            Param("scheduler", "string", choices=SCHEDULERS, choices_are_hints=True),
            Param("num_inference_steps", "integer", default=20, minimum=20, maximum=100),
            Param("guidance_scale", "number", default=7.5, minimum=0.1, maximum=25),
            Param("samples", "integer", default=1, minimum=1, maximum=4),
            # -1 asks for a random seed; seeds may exceed 2**32 (the page's example does).
            Param("seed", "integer", default=-1, minimum=-1, maximum=2**63 - 1),
            Param("img_width", "integer", default=512, choices=IMAGE_SIDES),
            Param("img_height", "integer", default=512, choices=IMAGE_SIDES),
            Param("base64", "boolean", default=False),
        )
    },
)

_GENERIC_PROMPT = Param("prompt", "string", required=True, non_empty=True)

_SCHEMAS: dict[str, ModelSchema] = {EPICREALISM.slug: EPICREALISM}


def schema_for(slug: str) -> ModelSchema:
    """The schema of ``slug``; a permissive one for models we have no table for."""
    known = _SCHEMAS.get(slug)
    if known is not None:
        return known
    return ModelSchema(slug=slug, params={"prompt": _GENERIC_PROMPT}, strict=False)


def known_models() -> tuple[str, ...]:
    """Slugs with a full parameter table."""
    return tuple(_SCHEMAS)


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...]) -> str:
    """A ' (did you mean "x"?)' suffix, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[word.lower()]] if word.lower() in lowered else []
    if not close and len(word) >= 4:
        # A short name for a long one ("steps" for num_inference_steps) is too far for
        # difflib's ratio; suggest the one candidate that contains it.
        containing = [c for c in candidates if word.lower() in c.lower()]
        close = containing if len(containing) == 1 else []
    return f' (did you mean "{close[0]}"?)' if close else ""


def _unknown_param(name: str, known: list[str], allow_unknown: bool) -> Finding:
    hint = did_you_mean(name, known)
    if allow_unknown:
        return Finding(name, f"unknown parameter, sent as given{hint}", "warning")
    return Finding(
        name, f"unknown parameter{hint}; pass --allow-unknown-params to send it anyway"
    )


_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false"}


def _has_kind(kind: str, value: Any) -> bool:
    # bool is a subclass of int in Python: a YAML `true` must not pass as a number.
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int)
    return isinstance(value, int | float)


def _check_value(spec: Param, value: Any) -> list[Finding]:
    if not _has_kind(spec.kind, value):
        return [Finding(spec.name, f"must be {_TYPE_NAMES[spec.kind]}, got {_describe(value)}")]
    # NaN compares false with every bound and would pass the range checks below.
    if isinstance(value, float) and not math.isfinite(value):
        return [Finding(spec.name, f"must be a finite number, got {value!r}")]
    if spec.non_empty and isinstance(value, str) and not value.strip():
        return [Finding(spec.name, "must not be empty")]
    if spec.choices and value not in spec.choices:
        allowed = ", ".join(str(c) for c in spec.choices)
        if spec.choices_are_hints:
            hint = did_you_mean(str(value), [str(c) for c in spec.choices])
            return [Finding(spec.name, f'"{value}" is not a documented value{hint}', "warning")]
        return [Finding(spec.name, f"must be one of {allowed}, got {value!r}")]
    if spec.minimum is not None and value < spec.minimum:
        return [Finding(spec.name, f"must be at least {_bound(spec.minimum)}, got {value!r}")]
    if spec.maximum is not None and value > spec.maximum:
        return [Finding(spec.name, f"must be at most {_bound(spec.maximum)}, got {value!r}")]
    return []


def _bound(value: float) -> str:
    """A range bound as written: ``9223372036854775807``, ``0.1``, ``25`` (not ``9.22e+18``)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    return f"{type(value).__name__} {value!r}"[:60]
