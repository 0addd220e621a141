"""Real processes: SIGINT drains and resumes; SIGKILL at random moments loses nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from conftest import StartServer
from stores import records
from test_run import png_size, results, write_manifest

from batchgen.server import LocalServer
from batchgen.server.stats import body_key

# How often the test looks at the server's counters while a child runs.
LOOK_EVERY_S = 0.01


def start_child(server: LocalServer, manifest: Path, out: Path,
                *extra: str) -> subprocess.Popen[bytes]:
    """`batchgen run` in a child process, the key passed through the environment.

    Its output goes to ``child.log`` beside the manifest, for the failure message.
    """
    env = {**os.environ, "SEGMIND_API_KEY": server.api_key}
    args = [sys.executable, "-m", "batchgen", "run", str(manifest), "-o", str(out),
            "--base-url", server.base_url, "--rpm", "6000", "--no-progress", "--poll-first", "0.1",
            "--history-wait", "0.5", *extra]
    with (manifest.parent / "child.log").open("ab") as log:
        return subprocess.Popen(args, env=env, stdout=log, stderr=log)


def child_log(manifest: Path) -> str:
    return (manifest.parent / "child.log").read_text(errors="replace")[-3000:]


async def watch(child: subprocess.Popen[bytes], condition: Callable[[], bool],
                limit_s: float = 30.0) -> bool:
    """Until ``condition`` holds (True) or the child exits (False), reading counters."""
    with anyio.fail_after(limit_s):
        while child.poll() is None:
            if condition():
                return True
            await anyio.sleep(LOOK_EVERY_S)
    return False


async def finish(child: subprocess.Popen[bytes]) -> int:
    """The child's exit code, waited for in a worker thread (60 s at most)."""
    code: int = await anyio.to_thread.run_sync(partial(child.wait, 60))
    return code


def jsonl_manifest(path: Path, count: int) -> Path:
    lines = [json.dumps({"id": f"item-{n:03d}", "prompt": f"prompt number {n}"})
             for n in range(count)]
    return write_manifest(path, "\n".join(lines) + "\n")


def accepted(server: LocalServer) -> int:
    value: int = server.stats()["submits_accepted"]
    return value


async def test_sigint_drains_and_resumes(local_server: StartServer, tmp_path: Path) -> None:
    """SIGINT stops submitting and exits 130; the next run finishes with no duplicate."""
    server = await local_server(latency_s=0.5, workers=4)
    manifest = jsonl_manifest(tmp_path / "m.jsonl", 12)
    out = tmp_path / "out"
    child = start_child(server, manifest, out, "--concurrency", "3")
    assert await watch(child, lambda: accepted(server) >= 3)
    live = status_json(out)  # read-only, beside the run that holds the lock
    assert live["live"] is True
    assert live["items"]["total"] == 12
    child.send_signal(signal.SIGINT)
    assert await finish(child) == 130, child_log(manifest)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "interrupted"
    assert summary["items"]["completed"] < 12
    child = start_child(server, manifest, out)
    assert await finish(child) == 0, child_log(manifest)
    stats = server.stats()
    assert stats["duplicate_bodies"] == 0
    assert stats["submits_accepted"] == 12
    assert len(results(out)) == 12


async def test_sigkill_loop_loses_nothing(local_server: StartServer, tmp_path: Path) -> None:
    """Killed with SIGKILL at random moments, then resumed: every item once, paid once."""
    server = await local_server(latency_s=0.2, workers=8, error_500_rate=0.03,
                                drop_after_rate=0.03, truncate_rate=0.03, rng_seed=11)
    # Enough items that six kills, each a few accepted submits in (plus what a child gets
    # through before the kill lands on a slow machine), cannot use them all up.
    count = 80
    manifest = jsonl_manifest(tmp_path / "m.jsonl", count)
    out = tmp_path / "out"
    chance = random.Random(5)
    kills = 0
    for _ in range(6):
        child = start_child(server, manifest, out, "--concurrency", "3",
                            "--drain-timeout", "5")
        target = accepted(server) + chance.randint(1, 4)
        if await watch(child, lambda goal=target: accepted(server) >= goal):
            child.kill()
            kills += 1
        await finish(child)
    assert kills >= 3
    child = start_child(server, manifest, out)
    assert await finish(child) == 0, child_log(manifest)
    lines = results(out)
    assert sorted(line["id"] for line in lines) == [f"item-{n:03d}" for n in range(count)]
    for line in lines:
        assert line["status"] == "completed"
        data = (out / line["files"][0]["path"]).read_bytes()
        assert png_size(data) == (512, 512)
    report = status_json(out)
    stats = server.stats()
    # Every body accepted twice must be one the store recorded as in doubt.
    assert stats["duplicate_bodies"] <= report["in_doubt_submits"]
    assert stats["submits_accepted"] <= count + report["in_doubt_submits"]
    # ... and belong to an item whose own submit really was in doubt.
    doubted = {body_key(r.model, r.params) for r in await records(out / ".batchgen" / "state.db")
               if r.in_doubt}
    twice = {key for key, n in stats["accepted_by_body"].items() if n > 1}
    assert twice <= doubted


def status_json(out: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "batchgen", "status", str(out), "--json"],
                          capture_output=True, text=True, check=True)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


async def test_second_sigint_stops_at_once(local_server: StartServer, tmp_path: Path) -> None:
    """A second SIGINT cuts the drain short; the saved request ids finish next run, unpaid twice."""
    server = await local_server(latency_s=30.0, workers=8)
    manifest = jsonl_manifest(tmp_path / "m.jsonl", 4)
    out = tmp_path / "out"
    child = start_child(server, manifest, out, "--drain-timeout", "600")
    assert await watch(child, lambda: accepted(server) >= 4)
    child.send_signal(signal.SIGINT)
    # The first signal is logged once the drain starts; then the second one cuts it.
    assert await watch(child, lambda: "draining" in child_log(manifest))
    child.send_signal(signal.SIGINT)
    assert await finish(child) == 130, child_log(manifest)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["items"]["completed"] == 0
    assert summary["items"]["unfinished"] == 4
    assert server.stats()["submits_accepted"] == 4


async def test_sigterm_while_reading_a_long_manifest(local_server: StartServer,
                                                     tmp_path: Path) -> None:
    """SIGTERM while the reader still has most of the manifest ahead: exit 143, no traceback."""
    server = await local_server(latency_s=0.2)
    manifest = jsonl_manifest(tmp_path / "m.jsonl", 5000)
    child = start_child(server, manifest, tmp_path / "out", "--concurrency", "2")
    assert await watch(child, lambda: accepted(server) >= 2)
    child.send_signal(signal.SIGTERM)
    assert await finish(child) == 143, child_log(manifest)
    assert "Traceback" not in child_log(manifest)
