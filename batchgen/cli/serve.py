"""``batchgen serve``: the local Segmind-compatible server (its flags: server/command.py)."""

from __future__ import annotations

from typing import Any

from batchgen.server import command


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run a local Segmind-compatible v2 server")
    command.add_arguments(serve)
    serve.set_defaults(handler=command.main)
