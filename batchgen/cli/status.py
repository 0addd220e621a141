"""``batchgen status`` and ``batchgen gallery``: read a run's OUT, change nothing else."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from batchgen import errors
from batchgen.cli.output import say
from batchgen.exits import EXIT_OK
from batchgen.report import status


def register(sub: Any) -> None:
    show = sub.add_parser("status", help="show a run's state from its output directory")
    show.add_argument("out", help="the output directory of a run")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=status_command)

    gallery = sub.add_parser("gallery", help="write OUT/gallery.html from a run's store")
    gallery.add_argument("out", help="the output directory of a run")
    gallery.set_defaults(handler=gallery_command)


def status_command(ns: argparse.Namespace) -> int:
    report = status.read_status(Path(ns.out))
    say(json.dumps(report, indent=2) if ns.json else status.describe_status(report))
    return EXIT_OK


def gallery_command(ns: argparse.Namespace) -> int:
    from batchgen.report.gallery import write_gallery

    out = Path(ns.out)
    db = out / ".batchgen" / "state.db"
    if not db.exists():
        raise errors.UsageError(f"{out} holds no batchgen run (no {db})")
    say(str(write_gallery(db, out)))
    return EXIT_OK
