"""How templates expand (``expand:``) and in which order items come (``order:``).

``expand`` is set for the whole manifest or per item: ``all`` (every combination, in
the library's stable order), ``{random: N, seed: S}`` (N variants drawn with seed S,
the same on any machine) or ``none`` (the text is sent exactly as written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from batchgen.manifest.ids import kind_of
from batchgen.manifest.schema import did_you_mean

ORDERS = ("manifest", "breadth-first")
_RANDOM_KEYS = ("random", "seed")

Order = Literal["manifest", "breadth-first"]


@dataclass(frozen=True, slots=True)
class ExpandMode:
    """One way of expanding a template: ``all``, ``random`` (count, seed) or ``none``."""

    kind: Literal["all", "random", "none"] = "all"
    count: int = 0
    seed: int = 0

    def __str__(self) -> str:
        if self.kind == "random":
            return f"random {self.count} (seed {self.seed})"
        return self.kind


EXPAND_ALL = ExpandMode()


def parse_expand(value: Any, max_expansions: int) -> ExpandMode | str:
    """The mode ``value`` spells, or why it spells none."""
    if value in ("all", "none"):
        return ExpandMode(value)
    usage = "must be all, none or {random: N, seed: S}"
    if isinstance(value, str):
        return f"{usage}{did_you_mean(value, ('all', 'none', 'random'))}"
    if not isinstance(value, dict):
        return f"{usage}, got {kind_of(value)}"
    for key in value:
        if key not in _RANDOM_KEYS:
            return f"unknown key {key!r}{did_you_mean(str(key), _RANDOM_KEYS)}; {usage}"
    count, seed = value.get("random"), value.get("seed", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return f"random must be a whole number of variants, at least 1, got {count!r}"
    if count > max_expansions:
        return f"random {count:,} is more than --max-expansions ({max_expansions:,})"
    if not isinstance(seed, int) or isinstance(seed, bool):
        return f"seed must be a whole number, got {seed!r}"
    return ExpandMode("random", count, seed)


def parse_order(value: Any) -> Order:
    """The order ``value`` names; ValueError (with the message) when it names none."""
    if value == "manifest":
        return "manifest"
    if value == "breadth-first":
        return "breadth-first"
    hint = did_you_mean(value, ORDERS) if isinstance(value, str) else ""
    raise ValueError(f"must be manifest or breadth-first, got {value!r}{hint}")
