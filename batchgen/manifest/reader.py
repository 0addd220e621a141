"""Read, expand and validate manifests (YAML or JSONL) into work items.

An item's parameters are the model defaults, overlaid by the manifest's ``defaults``,
overlaid by the item's own keys, then expanded over the sweep (``matrix`` and ``zip``)
and over its templates (``prompt``, ``negative_prompt``): one item per combination.
Everything is lazy: JSONL is streamed line by line and combinations are made as they
are needed, so a million lines or a million combinations are never held in memory.

Reading never raises on bad content: every problem is recorded with file, line, item
and field, all in one pass. Only valid items are yielded, and none at all when the
header is broken; an item-level error elsewhere does not stop the other items, so a
caller must check ``valid`` after the pass before acting on them. (In breadth-first
order nothing is yielded from an invalid manifest: that order starts with a full pass.)

Ids: an explicit id is kept as written (``id.<words>-<hash>`` per template expansion,
``.key-value...`` per sweep combination, keys sorted); otherwise it is derived from the
model and the full parameters, with ``-2``, ``-3`` ... only on repeats of an identical
item. Neither depends on the order of lines.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from batchgen.config import DEFAULT_MAX_EXPANSIONS as DEFAULT_MAX_EXPANSIONS
from batchgen.errors import Problem
from batchgen.manifest.claims import Claims
from batchgen.manifest.expansion import Candidate, Expander, Plan
from batchgen.manifest.fastlane import FastLane
from batchgen.manifest.files import JSONL_SUFFIXES as JSONL_SUFFIXES  # for the engine
from batchgen.manifest.files import estimate_lines, manifest_format
from batchgen.manifest.header import WILDCARDS_DIR, Header
from batchgen.manifest.item import Item
from batchgen.manifest.jsonl import jsonl_entries
from batchgen.manifest.order import breadth_first
from batchgen.manifest.schema import schema_for
from batchgen.manifest.sources import Entry, Read
from batchgen.manifest.templates import Templates
from batchgen.manifest.wildcards import WildcardFolder

# Documented in README "Templates": the most items one entry may expand to.
# A sweep this large is announced before the pass, which may take a while.
ANNOUNCE_FROM = 10_000


@dataclass(slots=True)
class ModelCounts:
    """Per model: requests (one per item) and images (samples summed)."""

    requests: int = 0
    images: int = 0


class ManifestReader:
    """Streams the valid items of one manifest and records every problem on the way.

    ``name`` is how problems name the manifest (default: its path) and ``base`` the
    folder its ``items_file`` and ``wildcards`` are relative to (default: its folder):
    both matter for a manifest read from standard input. ``announce`` hears, before the
    items, how many combinations a sweep makes of each item.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        allow_unknown_params: bool = False,
        keep_problems: int = 1000,
        max_expansions: int = DEFAULT_MAX_EXPANSIONS,
        name: str | None = None,
        base: Path | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or str(self.path)
        self.base = base or self.path.parent
        self.allow_unknown_params = allow_unknown_params
        self.keep_problems = keep_problems
        self.max_expansions = max_expansions
        self.announce = announce
        self._reset()

    def _reset(self) -> None:
        self.problems: list[Problem] = []
        self.errors = 0
        self.warnings = 0
        self.entries = 0
        self.counts: dict[str, ModelCounts] = {}
        self._header = Header()
        self._expander: Expander | None = None
        self._quiet = False

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

    @property
    def order(self) -> str:
        """The order of the last pass's header: ``manifest`` or ``breadth-first``."""
        return self._header.order

    def items(self) -> Iterator[Item]:
        """Yield every valid item in the manifest's order; each call is a new pass.

        Problems land in ``self.problems``. With ``order: breadth-first`` the first
        item of every entry comes before the second of any (see ``order.py``).
        """
        stream = self._manifest_order()
        first = next(stream, None)  # reading the first item has read the header
        if self._header.order == "breadth-first":
            stream.close()
            yield from self._breadth_first()
            return
        if first is not None:
            yield first
            yield from stream

    def check(self) -> bool:
        """Run one full pass in manifest order; True when the manifest is valid."""
        for _ in self._manifest_order(make=False):
            pass
        return self.valid

    # -- passes ----------------------------------------------------------------------

    def _manifest_order(self, *, make: bool = True) -> Generator[Item, None, None]:
        """One pass in manifest order; ``make=False`` checks and counts, yielding nothing."""
        self._reset()
        jsonl = manifest_format(self.path) == "jsonl"
        claims = Claims(self._problem, estimate_lines(self.path) if jsonl else 0)
        header = self._header
        add = claims.ids.add
        # Lines of the fast lane are counted here and added up at the end of the pass:
        # this loop runs once per line of a million-line manifest.
        fast_model, requests, images, entries = "", 0, 0, 0
        try:
            for got in self._entries(fast=True):
                entries += 1
                if isinstance(got, tuple):  # a line of the fast lane
                    lane, line, item_id, derived, samples, _ = got
                    # Derived ids are lowercase already.
                    first = add(item_id if derived else item_id.lower(), line)
                    if first is None:
                        if samples > 1 and not claims.claim_samples(item_id, samples, line,
                                                                    lane.file):
                            continue
                        claimed: Item | None = lane.item(got) if make else None
                    else:
                        claimed = claims.settle(lane.item(got), derived, first)
                        if claimed is None:
                            continue
                    if header.ok:
                        fast_model = lane.model
                        requests += 1
                        images += samples
                        if claimed is not None:
                            yield claimed
                    continue
                expander = self._expander or self._start()
                plan = expander.open(got)
                for candidate in expander.candidates(plan):
                    made = expander.item(plan, candidate)
                    claimed = claims.claim(*made) if made is not None else None
                    if claimed is not None and header.ok:
                        self._count(claimed.model, 1, claimed.samples)
                        if make:
                            yield claimed
        finally:
            self.entries += entries
            if requests:
                self._count(fast_model, requests, images)
        if self.entries == 0 and self.errors == 0:
            self._problem(None, None, None, "the manifest has no items")

    def _breadth_first(self) -> Iterator[Item]:
        if not self.check():
            return
        self._quiet = True  # the check above reported and counted everything
        claims = Claims(self._problem)
        expander = self._expander or self._start()

        def entries() -> Iterator[Callable[[], Iterator[tuple[Plan, Candidate]]]]:
            for got in self._entries(fast=False):
                if isinstance(got, Entry):
                    yield functools.partial(_paired, expander, got)

        for plan, candidate in breadth_first(entries):
            made = expander.item(plan, candidate)
            claimed = claims.claim(*made) if made is not None else None
            if claimed is not None:
                yield claimed

    def _start(self) -> Expander:
        """The expander of this pass, once the header is known."""
        header = self._header
        folder = header.wildcards or self.base / WILDCARDS_DIR
        wildcards = WildcardFolder(folder if folder.is_dir() else None)
        self._expander = Expander(header, Templates(wildcards), self._problem,
                                  allow_unknown_params=self.allow_unknown_params,
                                  max_expansions=self.max_expansions)
        combinations = len(header.sweep)
        if self.announce is not None and combinations >= ANNOUNCE_FROM and not self._quiet:
            self.announce(f"{self.name}: the sweep makes {combinations:,} combinations "
                          "of each item")
            self.announce = None  # said once, not again on the next pass
        return self._expander

    def _count(self, model: str, requests: int, images: int) -> None:
        counts = self.counts.get(model)
        if counts is None:
            counts = self.counts[model] = ModelCounts()
        counts.requests += requests
        counts.images += images

    # -- reading ---------------------------------------------------------------------

    def _entries(self, *, fast: bool) -> Iterator[Read]:
        """The entries of the manifest (a function, not a generator: one step less a line)."""
        lane = self._lane if fast else None
        if manifest_format(self.path) == "jsonl":
            return jsonl_entries(self.path, self.name, self._problem, lane=lane)
        from batchgen.manifest.yamlfile import yaml_entries  # PyYAML: only for YAML

        return yaml_entries(
            self.path, self.name, self._problem, self._header, base=self.base,
            max_expansions=self.max_expansions,
            items_file=lambda path, line: jsonl_entries(path, str(path), self._problem,
                                                        from_line=line, lane=lane))

    def _lane(self, name: str) -> FastLane | None:
        """The fast lane for a JSONL file, when the header leaves its lines as written."""
        header = self._header
        schema = schema_for(header.model)
        if (not header.ok or header.sweep.keys or self.allow_unknown_params
                or not FastLane.admits(schema, header.defaults)):
            return None
        return FastLane(schema, header.defaults, name)

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
        if self._quiet:
            return
        if severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        if len(self.problems) < self.keep_problems:
            self.problems.append(Problem(file or self.name, line, item, fld, message, severity))


def _paired(expander: Expander, entry: Entry) -> Iterator[tuple[Plan, Candidate]]:
    plan = expander.open(entry)
    for candidate in expander.candidates(plan):
        yield plan, candidate

