"""``--local`` runs resume like any other: the embedded server keeps its jobs in OUT, and
stored URLs follow it to its new port (issue 16 item 7)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from test_crash import finish, jsonl_manifest, watch
from test_run import results

import batchgen


def submitted(out: Path) -> int:
    """Items the store holds as submitted (a job in flight), read beside the live run."""
    db = out / ".batchgen" / "state.db"
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return int(conn.execute(
                "SELECT COUNT(*) FROM items WHERE state = 'submitted'").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def local_child(manifest: Path, out: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "batchgen", "run", str(manifest), "--local", "-o",
            str(out), "--no-progress"]
    with (manifest.parent / "child.log").open("ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=log)


async def test_a_killed_local_run_resumes_its_jobs(tmp_path: Path) -> None:
    """kill -9 with jobs in flight; the next --local run fetches them on the new
    server's port, exit 0, with every item delivered once."""
    manifest = jsonl_manifest(tmp_path / "m.jsonl", 300)
    out = tmp_path / "out"
    child = local_child(manifest, out)
    assert await watch(child, lambda: submitted(out) >= 3, limit_s=60), (
        tmp_path / "child.log").read_text()
    child.kill()
    await finish(child)
    in_flight = submitted(out)
    assert in_flight >= 1
    child = local_child(manifest, out)
    assert await finish(child) == 0, (tmp_path / "child.log").read_text()[-3000:]
    lines = results(out)
    assert len(lines) == 300
    assert all(line["status"] == "completed" for line in lines)


async def test_a_deleted_local_image_is_fetched_again(tmp_path: Path) -> None:
    """An image deleted from a --local OUT is downloaded again from the restarted
    embedded server, with no new submit."""
    manifest = jsonl_manifest(tmp_path / "m.jsonl", 2)
    out = tmp_path / "out"
    await batchgen.run(manifest, out=out, local=True, progress=False)
    image = out / results(out)[0]["files"][0]["path"]
    before = image.read_bytes()
    image.unlink()
    summary = await batchgen.run(manifest, out=out, local=True, progress=False)
    assert summary["exit_code"] == 0
    assert summary["this_run"]["redownloads"] == 1
    assert summary["this_run"]["submits"] == 0
    assert image.read_bytes() == before
