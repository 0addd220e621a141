"""Command line: argv -> settings -> work; errors -> exit codes; logging setup.

Environment variables are read here and nowhere else.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from . import errors
from ._version import __version__
from .manifest import ManifestReader

log = logging.getLogger("batchgen")

# Exit codes, most specific class first. Documented in README "Exit codes".
EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_USAGE = 2
EXIT_FATAL_API = 3
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (errors.UsageError, EXIT_USAGE),
    (errors.ManifestError, EXIT_USAGE),
    (errors.OutputLockedError, EXIT_LOCKED),
    (errors.FatalApiError, EXIT_FATAL_API),
    (errors.BatchgenError, EXIT_ITEMS_FAILED),
)

MAX_PROBLEMS_SHOWN = 50


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error that ended the command."""
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_ITEMS_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchgen",
        description="Turn a manifest of image prompts into images through Segmind's v2 API.",
    )
    parser.add_argument("--version", action="version", version=f"batchgen {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = sub.add_parser("validate", help="check a manifest without sending anything")
    validate.add_argument("manifest", help="YAML or JSONL manifest")
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.add_argument("--allow-unknown-params", action="store_true",
                          help="send parameters the model schema does not know")
    validate.set_defaults(handler=_cmd_validate)

    from .server import command as serve_command

    serve = sub.add_parser("serve", help="run a local Segmind-compatible v2 server")
    serve_command.add_arguments(serve)
    serve.set_defaults(handler=serve_command.main)
    return parser


def _problem_dict(problem: errors.Problem) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "item": problem.item,
        "field": problem.field,
        "severity": problem.severity,
        "message": problem.message,
    }


def _cmd_validate(ns: argparse.Namespace) -> int:
    reader = ManifestReader(ns.manifest, allow_unknown_params=ns.allow_unknown_params)
    reader.check()
    shown = reader.problems[:MAX_PROBLEMS_SHOWN]
    if ns.json:
        report = {
            "manifest": ns.manifest,
            "valid": reader.valid,
            "entries": reader.entries,
            "requests": reader.requests,
            "images": reader.images,
            "models": {m: {"requests": c.requests, "images": c.images}
                       for m, c in sorted(reader.counts.items())},
            "errors": reader.errors,
            "warnings": reader.warnings,
            "problems": [_problem_dict(p) for p in shown],
        }
        print(json.dumps(report, indent=2))
    else:
        for problem in shown:
            print(problem, file=sys.stderr)
        hidden = reader.errors + reader.warnings - len(shown)
        if hidden > 0:
            print(f"... and {hidden} more problems not shown", file=sys.stderr)
        for model, counts in sorted(reader.counts.items()):
            print(f"{model}: {counts.requests} requests, {counts.images} images")
        verdict = "valid" if reader.valid else "INVALID"
        print(
            f"{ns.manifest}: {verdict}: {reader.entries} entries, {reader.requests} requests, "
            f"{reader.images} images; {reader.errors} errors, {reader.warnings} warnings"
        )
    return EXIT_OK if reader.valid else EXIT_USAGE


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``batchgen`` command; returns the exit code."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    _setup_logging(ns.verbose)
    try:
        code: int = ns.handler(ns)
    except errors.BatchgenError as exc:
        print(f"batchgen: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code
