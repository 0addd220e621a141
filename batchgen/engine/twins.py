"""Identical items (same model, same body) cannot be told apart in the account history.

A job found there for an in-doubt submit could be the one an identical item's POST is
creating at this moment; adopting it would leave two items on one job. So a history
look-up of a body waits until no POST of that body is on the wire, and holds new ones
back while it looks; POSTs of identical items go out side by side otherwise. Claims are
then exact: the store lets one request id belong to one item only, so N identical
in-doubt items and k matching jobs end as min(N, k) adoptions.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from batchgen.manifest.ids import canonical_json
from batchgen.manifest.item import Item


def body_key(item: Item) -> str:
    """What identical items share: their model and canonical body, digested."""
    text = f"{item.model}\n{canonical_json(item.params)}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(slots=True)
class _Body:
    posting: int = 0  # POSTs on the wire
    waiting: int = 0  # POSTs and look-ups waiting for their turn
    lookups: int = 0  # look-ups waiting: they go before new POSTs, so none starves
    looking: bool = False
    changed: anyio.Event = field(default_factory=anyio.Event)

    async def wait(self) -> None:
        self.waiting += 1
        try:
            await self.changed.wait()
        finally:
            self.waiting -= 1

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    @property
    def idle(self) -> bool:
        return not (self.posting or self.waiting or self.lookups or self.looking)


class BodyLocks:
    """Per body: many POSTs at once, or one look-up alone."""

    def __init__(self) -> None:
        self._bodies: dict[str, _Body] = {}

    @asynccontextmanager
    async def posting(self, item: Item) -> AsyncIterator[None]:
        key = body_key(item)
        body = self._bodies.setdefault(key, _Body())
        try:
            while body.lookups or body.looking:
                await body.wait()
            body.posting += 1
            try:
                yield
            finally:
                body.posting -= 1
        finally:
            self._leave(key, body)

    @asynccontextmanager
    async def looking(self, item: Item) -> AsyncIterator[None]:
        key = body_key(item)
        body = self._bodies.setdefault(key, _Body())
        body.lookups += 1
        acquired = False
        try:
            while body.looking or body.posting:
                await body.wait()
            body.lookups -= 1
            acquired = body.looking = True
            yield
        finally:
            if acquired:
                body.looking = False
            else:
                body.lookups -= 1
            self._leave(key, body)

    def _leave(self, key: str, body: _Body) -> None:
        body.notify()
        if body.idle:
            self._bodies.pop(key, None)
