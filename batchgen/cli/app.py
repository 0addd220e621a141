"""``batchgen``: the parser made of the command modules, logging set up, errors turned
into exit codes.

Each command group is a module with ``register(sub)``, listed once in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from batchgen import errors
from batchgen._version import __version__
from batchgen.cli import expand, images, plan, run, serve, status, validate
from batchgen.cli.exits import exit_code_for
from batchgen.cli.output import complain
from batchgen.cli.parsing import ArgumentsError, Parser, add_common, wants_json
from batchgen.exits import EXIT_ITEMS_FAILED, EXIT_USAGE
from batchgen.report.logs import LogFormat, fields, setup_logging

log = logging.getLogger("batchgen.cli")

COMMANDS = (validate, expand, plan, run, status, images, serve)

# The event of a JSON log line for an error that ended the command, most specific first.
ERROR_EVENTS: tuple[tuple[type[BaseException], str], ...] = (
    (errors.UsageError, "cli.usage_error"),
    (errors.OutputLockedError, "run.locked"),
    (errors.FatalApiError, "run.fatal_api_error"),
    (errors.StoreError, "run.store_error"),
    (errors.BatchgenError, "run.error"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="batchgen", description="Turn a manifest of image prompts into "
                    "images through Segmind's v2 API.")
    parser.add_argument("--version", action="version", version=f"batchgen {__version__}")
    add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    for child in {id(p): p for p in sub.choices.values()}.values():
        add_common(child, top=False)
    return parser


def _event(exc: BaseException) -> str:
    return next((event for cls, event in ERROR_EVENTS if isinstance(exc, cls)), "run.error")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``batchgen`` command; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    fmt: LogFormat = "json" if wants_json(args) else "text"
    setup_logging(0, fmt)
    try:
        ns = build_parser().parse_args(args)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except ArgumentsError as exc:
        if fmt == "text":
            print(exc.usage, end="", file=sys.stderr)
        complain(fmt, str(exc), "cli.usage_error")
        return EXIT_USAGE
    fmt = ns.sub_log_format or ns.log_format or "text"
    ns.log_format = fmt
    setup_logging(ns.verbose + ns.sub_verbose, fmt)
    try:
        code: int = ns.handler(ns)
    except errors.ManifestError as exc:
        validate.show_problems(fmt, exc.problems, exc.total)
        noun = "error" if exc.total == 1 else "errors"
        complain(fmt, f"batchgen: the manifest has {exc.total} {noun}; nothing was sent "
                 "(`batchgen validate` lists them too)", "manifest.invalid", errors=exc.total)
        return exit_code_for(exc)
    except errors.BatchgenError as exc:
        complain(fmt, f"batchgen: {exc}", _event(exc))
        return exit_code_for(exc)
    except OSError as exc:
        # Disk full, read-only OUT, a path that is a file: say which, no traceback. The
        # checkpoint commits whole transactions, so the next run resumes from it.
        where = f" ({exc.filename})" if exc.filename else ""
        complain(fmt, f"batchgen: {exc.strerror or exc}{where}", "run.os_error",
                 path=None if exc.filename is None else str(exc.filename))
        return EXIT_ITEMS_FAILED
    except KeyboardInterrupt as exc:
        return exit_code_for(exc)
    except Exception:
        if fmt != "json":
            raise
        log.exception("unexpected error", extra=fields("run.crash"))
        return EXIT_ITEMS_FAILED
    return code
