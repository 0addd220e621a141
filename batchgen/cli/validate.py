"""``batchgen validate``: check a manifest, send nothing."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from batchgen import errors
from batchgen.cli.output import complain, say
from batchgen.exits import EXIT_OK, EXIT_USAGE
from batchgen.manifest.reader import ManifestReader
from batchgen.report.logs import LogFormat

MAX_PROBLEMS_SHOWN = 50


def register(sub: Any) -> None:
    validate = sub.add_parser("validate", help="check a manifest without sending anything")
    validate.add_argument("manifest", help="YAML or JSONL manifest")
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.add_argument("--allow-unknown-params", action="store_true",
                          help="send parameters the model schema does not know")
    validate.set_defaults(handler=command)


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
    reader = ManifestReader(ns.manifest, allow_unknown_params=ns.allow_unknown_params)
    reader.check()
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
            "problems": [problem_dict(p) for p in reader.problems[:MAX_PROBLEMS_SHOWN]],
        }
        say(json.dumps(report, indent=2))
    else:
        show_problems(ns.log_format, reader.problems, reader.errors + reader.warnings)
        for model, counts in sorted(reader.counts.items()):
            say(f"{model}: {counts.requests} requests, {counts.images} images")
        verdict = "valid" if reader.valid else "INVALID"
        say(f"{ns.manifest}: {verdict}: {reader.entries} entries, {reader.requests} requests, "
            f"{reader.images} images; {reader.errors} errors, {reader.warnings} warnings")
    return EXIT_OK if reader.valid else EXIT_USAGE
