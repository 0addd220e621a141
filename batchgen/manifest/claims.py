"""Which ids are taken: every item's id and its image names, once in a manifest.

Ids become file names: ``<id>.png``, or ``<id>-<k>.png`` for several samples. So they
are compared ignoring case (Fox and fox are one file on macOS), and the sample names are
claimed too (``shot`` with two samples writes ``shot-2.png``, which an item with the id
``shot-2`` would overwrite).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from batchgen.manifest.idset import IdSet
from batchgen.manifest.item import Item
from batchgen.manifest.sources import Report


class Claims:
    """The ids of one pass; ``claim`` gives an item its id or reports why it cannot."""

    def __init__(self, report: Report, expected: int = 0) -> None:
        # Sized for the ids expected (and some sample names): growing re-inserts them all.
        self.ids = IdSet(capacity=max(1024, expected + expected // 8))
        self.report = report

    def claim(self, item: Item, numbered: bool) -> Item | None:
        """The item under an id no other item has, or None (reported) for a duplicate.

        ``numbered`` items (derived ids, template expansions) that repeat an earlier one
        are the same request again: they get an occurrence suffix, which depends only on
        how many identical copies came before, not on the order of the others.
        """
        first = self.ids.add(item.id.lower(), item.line)
        if first is None and item.samples == 1:
            return item
        return self.settle(item, numbered, first)

    def settle(self, item: Item, numbered: bool, first: int | None) -> Item | None:
        """The rest of ``claim`` once the id was added: repeats, then the sample names."""
        claimed = item
        if first is not None and numbered:
            for occurrence in itertools.count(2):
                candidate = f"{item.id}-{occurrence}"
                if self.ids.add(candidate.lower(), item.line) is None:
                    claimed, first = replace(item, id=candidate), None
                    break
        if first is not None:
            where = f" (first used on line {first})" if first else ""
            self.report(item.line, item.id, "id",
                        f"duplicate id or image name, ignoring case{where}", file=item.file)
            return None
        if claimed.samples > 1 and not self.claim_samples(claimed.id, claimed.samples,
                                                          item.line, item.file):
            return None
        return claimed

    def claim_samples(self, item_id: str, samples: int, line: int | None, file: str) -> bool:
        """Claim the image names ``<id>-<k>`` of an item; False (reported) if one is taken."""
        for k in range(1, samples + 1):
            stem = f"{item_id}-{k}"
            taken = self.ids.add(stem.lower(), line)
            if taken is not None:
                where = f" on line {taken}" if taken else ""
                self.report(line, item_id, "id", f"its image {stem}.png would have the name "
                            f"of the item with id {stem!r}{where}", file=file)
                return False
        return True
