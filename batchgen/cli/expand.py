"""``batchgen expand``: a manifest's items, expanded, one JSON line each, sending nothing."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from batchgen.cli.output import complain, say
from batchgen.cli.validate import add_manifest_arguments, manifest_reader, show_problems
from batchgen.exits import EXIT_OK, EXIT_USAGE
from batchgen.manifest.item import Item
from batchgen.manifest.templates import TEMPLATE_FIELDS, as_sent


def register(sub: Any) -> None:
    expand = sub.add_parser("expand", help="print a manifest's items as JSONL, with their ids")
    add_manifest_arguments(expand)
    expand.set_defaults(handler=command)


def command(ns: argparse.Namespace) -> int:
    """Every item, one JSON object a line: id, model, prompt, then the parameters.

    Items come in the order a run sends them. The output is itself a manifest of the
    same items under the same ids; a text that would still read as a template (a
    wildcard line with an escaped brace) is marked ``expand: none``, sent as it is.
    """
    with manifest_reader(ns) as reader:
        valid = reader.check()
        show_problems(ns.log_format, reader.problems, reader.errors + reader.warnings)
        if not valid:
            complain(ns.log_format, f"{reader.name}: INVALID: {reader.errors} errors; nothing "
                     "expanded", "manifest.invalid", errors=reader.errors)
            return EXIT_USAGE
        write = sys.stdout.write  # buffered: say() flushes, once a line is too often here
        try:
            for item in reader.items():
                write(json.dumps(_line(item), ensure_ascii=False) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            say("", end="")  # `| head`: the reader left; say() quiets stdout, exit stays 0
    return EXIT_OK


def _line(item: Item) -> dict[str, Any]:
    line: dict[str, Any] = {"id": item.id, "model": item.model}
    line.update((k, item.params[k]) for k in TEMPLATE_FIELDS if k in item.params)
    line.update(item.params)
    return as_sent(line)
