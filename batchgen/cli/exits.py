"""The one table mapping error classes to exit codes (the codes: ``batchgen.exits``)."""

from __future__ import annotations

from batchgen import errors
from batchgen.exits import (
    EXIT_FATAL_API,
    EXIT_INTERRUPTED,
    EXIT_ITEMS_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
)

__all__ = ["EXIT_CODES", "EXIT_FATAL_API", "EXIT_INTERRUPTED", "EXIT_ITEMS_FAILED",
           "EXIT_LOCKED", "EXIT_OK", "EXIT_TERMINATED", "EXIT_USAGE", "exit_code_for"]

# Most specific class first.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (errors.UsageError, EXIT_USAGE),
    (errors.ManifestError, EXIT_USAGE),
    (errors.OutputLockedError, EXIT_LOCKED),
    (errors.FatalApiError, EXIT_FATAL_API),
    (errors.BatchgenError, EXIT_ITEMS_FAILED),
    (KeyboardInterrupt, EXIT_INTERRUPTED),
)


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error that ended the command."""
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_ITEMS_FAILED
