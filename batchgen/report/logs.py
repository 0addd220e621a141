"""Log lines on stderr: text for people (the default), JSON lines for machines.

``--log-format json`` writes one JSON object per line and per event::

    {"time": "2026-11-25T01:30:00.123Z", "level": "warning", "event": "item.failed",
     "logger": "batchgen.lifecycle", "message": "item fox-1 failed ...",
     "item_id": "fox-1", "request_id": "9f1c..."}

Call sites name their event and its subjects through ``extra``: a plain dict, or one
built by ``fields``, which also checks the names::

    log.warning("item %s failed (%s): %s", item.id, cls, message,
                extra=fields("item.failed", item_id=item.id, request_id=rid))

Event names are lower_snake_case words, dotted by domain (``item.failed``,
``run.progress``, ``manifest.problem``, ``cli.usage_error``). Every key of ``extra``
becomes a key of the JSON object. A call without an ``event`` still gets a stable one,
made from its logger and its message template (not the formatted message, so arguments
never change it): ``log.info("removed %d temporary files ...")`` in
``batchgen.engine.prepare`` is ``engine.prepare.removed_temporary_files``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Progress lines are what a cron log is for: shown without -v.
PROGRESS_LOGGER = "batchgen.report.progress"

# What every LogRecord carries by itself: anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName"}
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_.]*")
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[a-zA-Z%]")
_WORD = re.compile(r"[a-z]+")
FALLBACK_WORDS = 4


def fields(event: str, **values: Any) -> dict[str, Any]:
    """The ``extra`` of a log call: its event name and subjects (``item_id``, ``request_id``
    ...); raises ValueError on a name that a LogRecord already uses (``name``, ``msg`` ...)."""
    if not _EVENT_NAME.fullmatch(event):
        raise ValueError(f"event names are dotted lower_snake_case, got {event!r}")
    clash = sorted(set(values) & _STANDARD)
    if clash:
        raise ValueError(f"log fields clash with LogRecord attributes: {clash}")
    return {"event": event, **values}


def event_name(record: logging.LogRecord) -> str:
    """The record's ``event``, else one made from its logger and message template."""
    given = getattr(record, "event", None)
    if isinstance(given, str) and given:
        return given
    module = record.name.removeprefix("batchgen.").removeprefix("batchgen")
    template = _PLACEHOLDER.sub(" ", record.msg) if isinstance(record.msg, str) else ""
    words = _WORD.findall(template.lower())[:FALLBACK_WORDS]
    return ".".join(part for part in (module, "_".join(words)) if part) or "log"


def _plain(value: Any) -> Any:
    """``value`` as JSON allows it: non-finite floats become null, unknown types strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; always with ``event``."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": event_name(record),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line:
                line[key] = _plain(value)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, allow_nan=False)


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``setup_logging`` installs; tagged so a second call replaces it."""


def setup_logging(verbosity: int, fmt: LogFormat = "text",
                  stream: TextIO | None = None) -> logging.Handler:
    """Log WARNING and up (INFO with -v, DEBUG with -vv) to stderr in ``fmt``.

    The handler goes on the root logger, so that other libraries' records are formatted
    too (every JSON line is an object); handlers others installed there are kept.
    """
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else (
        logging.DEBUG)
    handler = _ConsoleHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ConsoleHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger(PROGRESS_LOGGER).setLevel(min(level, logging.INFO))
    return handler
