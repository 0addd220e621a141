"""``batchgen validate``: check a manifest, send nothing.

Also what ``validate`` and ``expand`` share: the manifest argument (``-`` reads standard
input, spooled to a temporary file since it is read more than once), ``--max-expansions``
and the printing of problems.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batchgen import errors
from batchgen.cli.output import complain, say
from batchgen.exits import EXIT_OK, EXIT_USAGE
from batchgen.manifest.files import STDIN, spooled_stdin
from batchgen.manifest.reader import DEFAULT_MAX_EXPANSIONS, ManifestReader
from batchgen.report.logs import LogFormat

MAX_PROBLEMS_SHOWN = 50


def register(sub: Any) -> None:
    validate = sub.add_parser("validate", help="check a manifest without sending anything")
    add_manifest_arguments(validate)
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.set_defaults(handler=command)


def add_manifest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="YAML or JSONL manifest (- reads standard input)")
    parser.add_argument("--allow-unknown-params", action="store_true",
                        help="send parameters the model schema does not know")
    parser.add_argument("--max-expansions", type=int, default=DEFAULT_MAX_EXPANSIONS,
                        metavar="N", help="the most items one entry may expand to")


@contextmanager
def manifest_reader(ns: argparse.Namespace) -> Iterator[ManifestReader]:
    """The manifest named on the command line, with the options every reader takes."""
    if ns.max_expansions < 1:
        raise errors.UsageError("--max-expansions must be at least 1")
    fmt: LogFormat = ns.log_format
    options: dict[str, Any] = {
        "allow_unknown_params": ns.allow_unknown_params,
        "max_expansions": ns.max_expansions,
        "announce": lambda text: complain(fmt, text, "manifest.sweep", level=logging.INFO),
    }
    if ns.manifest != STDIN:
        yield ManifestReader(ns.manifest, **options)
        return
    with spooled_stdin() as path:
        yield ManifestReader(path, name="<stdin>", base=Path.cwd(), **options)


def problem_dict(problem: errors.Problem) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "item": problem.item,
        "field": problem.field,
        "severity": problem.severity,
        "message": problem.message,
    }


def show_problems(fmt: LogFormat, problems: list[errors.Problem], total: int) -> None:
    """Print the first problems on stderr (a JSON line each in JSON mode), and how many
    more there are."""
    shown = problems[:MAX_PROBLEMS_SHOWN]
    for problem in shown:
        level = logging.ERROR if problem.severity == "error" else logging.WARNING
        where = {k: v for k, v in problem_dict(problem).items() if k != "message"}
        complain(fmt, str(problem), "manifest.problem",
                 level=level, **where)
    hidden = total - len(shown)
    if hidden > 0:
        complain(fmt, f"... and {hidden} more problems not shown", "manifest.problems_not_shown",
                 hidden=hidden)


def command(ns: argparse.Namespace) -> int:
    with manifest_reader(ns) as reader:
        reader.check()
    if ns.json:
        report = {
            "manifest": reader.name,
            "valid": reader.valid,
            "entries": reader.entries,
            "items": reader.requests,
            "requests": reader.requests,
            "images": reader.images,
            "models": {m: {"requests": c.requests, "images": c.images}
                       for m, c in sorted(reader.counts.items())},
            "errors": reader.errors,
            "warnings": reader.warnings,
            "problems": [problem_dict(p) for p in reader.problems[:MAX_PROBLEMS_SHOWN]],
        }
        say(json.dumps(report, indent=2))
    else:
        show_problems(ns.log_format, reader.problems, reader.errors + reader.warnings)
        for model, counts in sorted(reader.counts.items()):
            say(f"{model}: {counts.requests} requests, {counts.images} images")
        verdict = "valid" if reader.valid else "INVALID"
        say(f"{reader.name}: {verdict}: {reader.entries} entries expand to {reader.requests} "
            f"items ({reader.requests} requests, {reader.images} images); {reader.errors} "
            f"errors, {reader.warnings} warnings")
    return EXIT_OK if reader.valid else EXIT_USAGE
