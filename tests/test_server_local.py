"""The embedded server behind ``run --local`` keeps its jobs in ``OUT/.batchgen/server/``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import batchgen
from batchgen.errors import OutputLockedError
from batchgen.server import ServerConfig, serve_local

FAST = {"poll_first_s": 0.05, "poll_min_s": 0.02, "progress": False, "history_wait_s": 0.2}


def _journaled_ids(out: Path) -> list[str]:
    lines = [line for path in sorted((out / ".batchgen" / "server").glob("jobs-*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines()]
    return [json.loads(line)["id"] for line in lines]


def _result_ids(out: Path) -> set[str]:
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["request_id"] for line in lines}


def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text("items: [a fox, a heron, {prompt: two owls, samples: 2}]\n")
    return path


async def test_local_run_keeps_its_jobs_in_out(tmp_path: Path) -> None:
    """Every job of a --local run is in OUT's server journal; a rerun submits nothing new."""
    out = tmp_path / "out"
    summary = await batchgen.run(_manifest(tmp_path), out=out, local=True, **FAST)
    assert summary["items"]["completed"] == 3
    assert sorted(_journaled_ids(out)) == sorted(_result_ids(out))
    await batchgen.run(_manifest(tmp_path), out=out, local=True, **FAST)
    assert len(_journaled_ids(out)) == 3


async def test_local_server_dir_in_use_means_out_is_locked(tmp_path: Path) -> None:
    """When another server holds OUT's server directory the run stops as for a locked OUT."""
    out = tmp_path / "out"
    (out / ".batchgen" / "server").mkdir(parents=True)
    async with serve_local(ServerConfig(state_dir=out / ".batchgen" / "server")):
        with pytest.raises(OutputLockedError):
            await batchgen.run(_manifest(tmp_path), out=out, local=True, **FAST)
    assert not (out / "results.jsonl").exists()
