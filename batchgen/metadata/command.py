"""``batchgen import FILES_OR_DIRS -o MANIFEST``: images back into a JSONL manifest.

Each item is preceded by a comment naming its file (and the settings that map to no
parameter), which the manifest reader skips. Files that give no item are listed on
stderr; they never stop the others. Exit 0 when at least one item was written, 1 when
none was; an existing MANIFEST is not overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from batchgen.errors import UsageError
from batchgen.manifest.schema import DEFAULT_MODEL
from batchgen.manifest.templates import as_sent
from batchgen.metadata.importer import Imported, Skipped, import_images
from batchgen.output.files import write_atomic
from batchgen.output.results import dumps_line

EXIT_OK, EXIT_NOTHING = 0, 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="FILE_OR_DIR",
                        help="images, or folders searched for .png/.jpg/.jpeg/.webp")
    parser.add_argument("-o", "--out", required=True, metavar="MANIFEST",
                        help="the JSONL manifest to write ('-' for stdout)")
    parser.add_argument("--seed", choices=("used", "sent", "random"), default="used",
                        help="the seed the server used (default: the same images again), "
                        "the one batchgen sent (-1 stays random), or -1 for new images")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"model slug for images made by other tools (default {DEFAULT_MODEL})")
    parser.add_argument("--force", action="store_true", help="overwrite MANIFEST")


def _comment(result: Imported) -> str:
    text = f"# from {result.path}"
    if result.unmapped:
        text += "; not mapped: " + ", ".join(f"{k}: {v}" for k, v in result.unmapped.items())
    return _CONTROL.sub(" ", text)[:2000] + "\n"


def main(ns: argparse.Namespace) -> int:
    """Run ``batchgen import``; returns the exit code."""
    target = None if ns.out == "-" else Path(ns.out)
    if target is not None and target.exists() and not ns.force:
        raise UsageError(f"{target} exists; pass --force to overwrite it")
    lines: list[str] = []  # an import is of files a person chose: thousands, not millions
    skipped: list[Skipped] = []
    for result in import_images([Path(p) for p in ns.paths], seed=ns.seed, model=ns.model):
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            lines += [_comment(result), dumps_line(as_sent(result.line))]
    for entry in skipped:
        print(f"skipped {entry.path}: {entry.reason}", file=sys.stderr)
    items = len(lines) // 2
    if items == 0:
        print(f"batchgen import: no image held parameters ({len(skipped)} files skipped); "
              "nothing written", file=sys.stderr)
        return EXIT_NOTHING
    if target is None:
        sys.stdout.writelines(lines)
    else:
        write_atomic(target, lines)
    print(f"batchgen import: {items} items into {target or 'stdout'}; "
          f"{len(skipped)} files skipped", file=sys.stderr)
    return EXIT_OK
