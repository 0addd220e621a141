"""``batchgen import``: images back into a manifest (its flags: metadata/command.py)."""

from __future__ import annotations

from typing import Any

from batchgen.metadata import command


def register(sub: Any) -> None:
    images = sub.add_parser("import", help="read the parameters embedded in images back "
                            "into a JSONL manifest")
    command.add_arguments(images)
    images.set_defaults(handler=command.main)
