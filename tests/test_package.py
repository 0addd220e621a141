"""The package surface: version, entry points, curated __all__."""

from __future__ import annotations

import subprocess
import sys

import pytest

import batchgen
from batchgen.cli import main


def test_all_names_exist() -> None:
    """Every name in __all__ is importable from the package."""
    missing = [name for name in batchgen.__all__ if not hasattr(batchgen, name)]
    assert missing == []


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """`batchgen --version` prints the package version and returns 0."""
    assert main(["--version"]) == 0
    assert batchgen.__version__ in capsys.readouterr().out


def test_python_dash_m_help() -> None:
    """`python -m batchgen --help` lists the subcommands."""
    done = subprocess.run(
        [sys.executable, "-m", "batchgen", "--help"], capture_output=True, text=True, check=True
    )
    assert "validate" in done.stdout
    assert "serve" in done.stdout
