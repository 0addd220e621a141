"""What commands print: results on stdout, complaints on stderr (a JSON line each with
``--log-format json``).

A reader that stops reading (``batchgen run ... | head -1``) is not the command's
failure: ``say`` stops writing and the exit code stays the command's own.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from batchgen.report.logs import LogFormat, fields

log = logging.getLogger("batchgen.cli")


def say(text: str = "", *, end: str = "\n") -> None:
    """Print ``text`` on stdout; once stdout is closed, print nothing more."""
    out = sys.stdout
    if out is None:
        return
    try:
        out.write(text + end)
        out.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null, so that the interpreter's last flush at exit cannot
        # fail too (it would make the exit code 120).
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, out.fileno())
        finally:
            os.close(devnull)


def complain(fmt: LogFormat, text: str, event: str, *, level: int = logging.ERROR,
             **values: Any) -> None:
    """An error or problem for a person (a plain line) or a machine (a JSON log line)."""
    if fmt == "json":
        log.log(level, "%s", text, extra=fields(event, **values))
    else:
        print(text, file=sys.stderr)
