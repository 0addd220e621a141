"""Identical items (same model, same body) cannot be told apart in the account history.

A job found there for an in-doubt submit could be the one an identical item's POST is
creating at this moment; adopting it would leave two items on one job. So a POST and a
history look-up of the same body never overlap: each holds the body's lock. Claims are
then exact: the store lets one request id belong to one item only, so N identical
in-doubt items and k matching jobs end as min(N, k) adoptions.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from batchgen.manifest.ids import canonical_json
from batchgen.manifest.item import Item


def body_key(item: Item) -> str:
    """What identical items share: their model and canonical body, digested."""
    text = f"{item.model}\n{canonical_json(item.params)}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class BodyLocks:
    """One lock per body in use; a lock is dropped when its last holder leaves."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[anyio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, item: Item) -> AsyncIterator[None]:
        key = body_key(item)
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = anyio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
