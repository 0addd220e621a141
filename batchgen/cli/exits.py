"""The one table mapping error classes to exit codes (the codes: ``batchgen.exits``)."""

from __future__ import annotations

from batchgen import errors, exits

# Most specific class first.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (errors.UsageError, exits.EXIT_USAGE),
    (errors.ManifestError, exits.EXIT_USAGE),
    (errors.OutputLockedError, exits.EXIT_LOCKED),
    (errors.FatalApiError, exits.EXIT_FATAL_API),
    (errors.BatchgenError, exits.EXIT_ITEMS_FAILED),
    (KeyboardInterrupt, exits.EXIT_INTERRUPTED),
)


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error that ended the command."""
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return exits.EXIT_ITEMS_FAILED
