"""Every manifest shipped in jobs/ passes `batchgen validate`."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.cli import main
from batchgen.manifest.reader import ManifestReader

JOBS = Path(__file__).resolve().parent.parent / "jobs"
MANIFESTS = sorted(JOBS.glob("*.yaml"))


def test_jobs_directory_has_the_documented_manifests() -> None:
    """demo, epicrealism-portraits and sweep are all there."""
    assert {p.stem for p in MANIFESTS} >= {"demo", "epicrealism-portraits", "sweep"}


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(manifest: Path) -> None:
    """The manifest has no errors and at least one request."""
    reader = ManifestReader(manifest)
    assert reader.check(), [str(p) for p in reader.problems]
    assert reader.requests > 0


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_validate_command_exits_0(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`batchgen validate MANIFEST` exits 0 and reports the manifest valid."""
    assert main(["validate", str(manifest)]) == 0
    assert "valid" in capsys.readouterr().out
