"""Where embedded files are written: a file that counts and hashes what goes through it."""

from __future__ import annotations

import hashlib
from typing import BinaryIO, Protocol


class FormatError(ValueError):
    """The bytes are not an image of the format they seem to be, or cannot take the text."""


class Sink(Protocol):
    """Anything the embedders can write bytes to."""

    def write(self, data: bytes, /) -> object: ...


class HashingWriter:
    """Writes to ``handle`` and keeps the size and SHA-256 of everything written, so the
    written file's digest costs no second read."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._digest.update(data)
        self.size += len(data)
        return self._handle.write(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()
