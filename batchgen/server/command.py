"""``batchgen serve``: placeholder until the server lands (issue 4)."""

from __future__ import annotations

import argparse

from ..errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the serve options to ``parser``."""


def main(ns: argparse.Namespace) -> int:
    """Run the server until interrupted; returns the exit code."""
    raise UsageError("batchgen serve is not available yet")
