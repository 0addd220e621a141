"""The unattended setup as shipped: cron and systemd command lines, reports, notify."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import StartServer
from test_run import run, write_manifest

from batchgen import cli
from batchgen.server import FAIL_MARKER
from batchgen.store.lock import hold

ROOT = Path(__file__).resolve().parent.parent


def project_copy(tmp_path: Path) -> Path:
    """A stand-in for /srv/batchgen: the jobs, a logs folder and a .venv/bin/batchgen."""
    home = tmp_path / "srv"
    (home / "jobs").mkdir(parents=True)
    (home / "logs").mkdir()
    (home / "jobs" / "demo.yaml").write_text((ROOT / "jobs" / "demo.yaml").read_text())
    shim = home / ".venv" / "bin" / "batchgen"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m batchgen "$@"\n')
    shim.chmod(0o755)
    return home


def localize(command: str, home: Path) -> str:
    """The shipped command with the key file swapped for the embedded server."""
    command = re.sub(r"--api-key-file \S+", "--local", command)
    return command.replace("/srv/batchgen", str(home))


def cron_command() -> str:
    for line in (ROOT / "jobs" / "nightly.crontab").read_text().splitlines():
        if line and not line.startswith("#") and "=" not in line.split()[0]:
            return line.split(None, 5)[5]
    raise AssertionError("no active crontab line")


def exec_start() -> str:
    text = (ROOT / "jobs" / "batchgen-nightly.service").read_text().replace("\\\n", " ")
    match = re.search(r"^ExecStart=(.+)$", text, re.MULTILINE)
    assert match is not None
    return match[1]


def test_cron_line_runs_and_resumes(tmp_path: Path) -> None:
    """The crontab's command line runs the demo, logs its exit code, and resumes the next night."""
    home = project_copy(tmp_path)
    command = localize(cron_command(), home)
    for _ in range(2):
        subprocess.run(["/bin/sh", "-c", command], check=True, timeout=120)
    log = (home / "logs" / "nightly.log").read_text()
    assert log.count("batchgen exit 0") == 2
    summary = json.loads((home / "out" / "nightly" / "summary.json").read_text())
    assert summary["this_run"]["skipped_done"] == 18
    assert (home / "out" / "nightly" / "gallery.html").exists()


def test_cron_line_while_locked_exits_75(tmp_path: Path) -> None:
    """When last night's run still holds OUT, the cron line logs exit 75 and does nothing."""
    home = project_copy(tmp_path)
    out = home / "out" / "nightly"
    with hold(out / ".batchgen", out):
        subprocess.run(["/bin/sh", "-c", localize(cron_command(), home)], timeout=120)
    assert "batchgen exit 75" in (home / "logs" / "nightly.log").read_text()
    assert not (out / "results.jsonl").exists()


def test_systemd_exec_start_runs(tmp_path: Path) -> None:
    """The service's ExecStart, run from its WorkingDirectory, completes the demo."""
    home = project_copy(tmp_path)
    args = shlex.split(localize(exec_start(), home))
    done = subprocess.run(args, cwd=home, timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len((home / "out" / "nightly" / "results.jsonl").read_text().splitlines()) == 18


async def test_run_writes_reports_and_gallery(local_server: StartServer, tmp_path: Path) -> None:
    """A run with a failure leaves failed.jsonl, gallery.html and a report in the summary."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", f"items: [fine, 'bad {FAIL_MARKER}']\n")
    summary = await run(server, manifest, tmp_path / "out")
    out = tmp_path / "out"
    assert summary["failed_items"] == 1
    assert "bad" in (out / "failed.jsonl").read_text()
    assert (out / "gallery.html").stat().st_size > 0
    report = json.loads((out / "summary.json").read_text())["report"]
    assert report["top_errors"][0]["error_class"] == "safety_block"


@pytest.mark.parametrize("command_fails", [False, True])
async def test_notify_command_gets_the_summary(local_server: StartServer, tmp_path: Path,
                                               command_fails: bool) -> None:
    """--notify-cmd runs with $BATCHGEN_SUMMARY; its failure does not change the exit code."""
    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    seen = tmp_path / "seen"
    tail = "; exit 9" if command_fails else ""
    command = f'cp "$BATCHGEN_SUMMARY" {shlex.quote(str(seen))}{tail}'
    summary = await run(server, manifest, tmp_path / "out", notify_cmd=command)
    assert summary["exit_code"] == 0
    assert json.loads(seen.read_text())["items"]["completed"] == 1


def test_gallery_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`batchgen gallery OUT` rewrites the gallery and prints its path."""
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    out = tmp_path / "out"
    assert cli.main(["run", str(manifest), "--local", "-o", str(out), "--no-progress"]) == 0
    (out / "gallery.html").unlink()
    capsys.readouterr()
    assert cli.main(["gallery", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "gallery.html")
    assert (out / "gallery.html").exists()

