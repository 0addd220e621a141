"""Command line: argv -> settings -> work; errors -> exit codes; logging setup.

Environment variables are read here and nowhere else. One module per command group
(``validate``, ``run``, ``status``, ``serve``), each with ``register(sub)``, listed in
``app.COMMANDS``; ``parsing`` holds the parser every command shares, ``keys`` the API key,
``output`` what commands print, ``exits`` the table of exit codes by error class.
"""

from batchgen.cli.app import build_parser, main
from batchgen.cli.exits import EXIT_CODES, exit_code_for
from batchgen.cli.times import next_clock_time, parse_duration
from batchgen.cli.validate import MAX_PROBLEMS_SHOWN

__all__ = [
    "EXIT_CODES",
    "MAX_PROBLEMS_SHOWN",
    "build_parser",
    "exit_code_for",
    "main",
    "next_clock_time",
    "parse_duration",
]
