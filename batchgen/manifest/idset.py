"""A compact set of item ids, for duplicate checks over million-line manifests.

A Python ``set`` of a million id strings costs well over 100 MB; this open-addressing
table keeps a 64-bit digest of each id and the line it was first seen on, 12 bytes a
slot. Two different ids share a digest with probability about n^2 / 2^65, negligible
at the sizes batchgen meets.

The digest is Python's own string hash (SipHash, 64 bits on 64-bit builds): keyed per
process, so a manifest cannot be crafted to collide, and cached on the string. The set
lives only as long as one pass, so digests never need to agree between processes.
"""

from __future__ import annotations

from array import array

_EMPTY = 0


def _digest(key: str) -> int:
    return hash(key) or 1  # 0 marks an empty slot (repeated inline in add)


class IdSet:
    """Ids seen so far, each with the line it was first seen on (0 when unknown)."""

    def __init__(self, capacity: int = 1024) -> None:
        size = 1
        while _limit(size) < capacity:
            size *= 2
        self._keys = array("q", bytes(8 * size))
        self._lines = array("I", bytes(4 * size))
        self._count = 0
        self._limit = _limit(size)

    def __len__(self) -> int:
        return self._count

    def add(self, key: str, line: int | None = None) -> int | None:
        """Add ``key``; return None if it is new, else the line it was first seen on."""
        digest = hash(key) or 1  # 0 marks an empty slot
        keys = self._keys
        mask = len(keys) - 1
        slot = digest & mask
        # Linear probing, inlined: this runs once per item of a million-line manifest.
        while found := keys[slot]:
            if found == digest:
                return self._lines[slot]
            slot = (slot + 1) & mask
        keys[slot] = digest
        self._lines[slot] = line or 0
        self._count += 1
        if self._count > self._limit:
            self._grow()
        return None

    def __contains__(self, key: str) -> bool:
        digest = _digest(key)
        return self._keys[self._find(digest)] == digest

    def _find(self, digest: int) -> int:
        mask = len(self._keys) - 1
        slot = digest & mask
        keys = self._keys
        while keys[slot] != _EMPTY and keys[slot] != digest:
            slot = (slot + 1) & mask
        return slot

    def _grow(self) -> None:
        # Four times larger while small, so that a million ids are re-inserted a third
        # as often; twice past 2**20 slots, so that the table ends no larger than needed.
        old_keys, old_lines = self._keys, self._lines
        size = len(old_keys) * (4 if len(old_keys) < 1 << 20 else 2)
        keys = self._keys = array("q", bytes(8 * size))
        lines = self._lines = array("I", bytes(4 * size))
        self._limit = _limit(size)
        mask = size - 1
        for digest, line in zip(old_keys, old_lines, strict=True):
            if digest:
                slot = digest & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = digest
                lines[slot] = line


def _limit(size: int) -> int:
    # Grow past 70% full: linear probing stays short there, and a million ids plus
    # their sample names fit in 2**21 slots (24 MB) instead of 2**22.
    return size * 7 // 10
