"""Breadth-first order: the first item of every entry before the second of any.

After k% of a long campaign every prompt already has images. A pass gives each entry's
next item; entries keep their place in the manifest. The expansions of up to
``LIVE_ENTRIES`` entries are kept open between passes; the others are opened again on
the next pass, which reads the manifest again and skips what it already gave (the
entries' items are lazy, so skipping costs no checks). An entry that is done is not
opened again: one byte per entry says which still have items.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
Opener = Callable[[], Iterator[T]]

# Open expansions kept between passes: past this, entries are re-read each pass.
LIVE_ENTRIES = 4096


def breadth_first(read: Callable[[], Iterable[Opener[T]]], *,
                  live_limit: int = LIVE_ENTRIES) -> Iterator[T]:
    """Round robin over the entries ``read()`` gives, one item of each per pass.

    ``read()`` is called once per pass that needs entries beyond the live ones; it must
    give the same entries in the same order every time.
    """
    live: dict[int, Iterator[T]] = {}
    more = bytearray()  # 1 where an entry that is not live still has items to give
    for index, opener in enumerate(read()):
        more.append(0)
        items = opener()
        first = _take(items)
        if not first:
            continue
        yield first[0]
        if len(live) < live_limit:
            live[index] = items
        else:
            more[index] = bool(_take(items))
    for depth in itertools.count(1):
        if not live and more.find(1) < 0:
            return
        if more.find(1) < 0:
            yield from _advance_live(live)
            continue
        for index, opener in enumerate(read()):
            if index in live:
                yield from _advance_live(live, index)
            elif more[index]:
                items = opener()
                nth = _take(itertools.islice(items, depth, None))
                more[index] = bool(nth) and bool(_take(items))
                if nth:
                    yield nth[0]


def _advance_live(live: dict[int, Iterator[T]], only: int | None = None) -> Iterator[T]:
    for index in [only] if only is not None else list(live):
        item = _take(live[index])
        if item:
            yield item[0]
        else:
            del live[index]


def _take(items: Iterator[T]) -> list[T]:
    """The next item, in a list (empty when there is none): items may be anything."""
    return list(itertools.islice(items, 1))
