"""`batchgen run` and `batchgen status` from the command line: options, keys, deadlines."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import StartServer
from test_run import results, write_manifest

from batchgen import cli
from batchgen.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("45m", 2700.0), ("7h30m", 27000.0), ("1h5m30s", 3930.0), ("2.5h", 9000.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    """--submit-for accepts hours, minutes and seconds in one word."""
    assert cli.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "h"])
def test_parse_duration_rejects(text: str) -> None:
    """A word that is not a duration is a usage error."""
    with pytest.raises(UsageError):
        cli.parse_duration(text)


@pytest.mark.parametrize(
    ("now", "text", "expected"),
    [
        (datetime(2026, 11, 25, 23, 0), "06:30", datetime(2026, 11, 26, 6, 30)),  # overnight
        (datetime(2026, 11, 25, 23, 0), "23:30", datetime(2026, 11, 25, 23, 30)),
        (datetime(2026, 11, 26, 7, 5), "07:00", datetime(2026, 11, 26, 7, 0)),  # late start
        (datetime(2026, 11, 26, 9, 0), "07:00", datetime(2026, 11, 26, 7, 0)),  # after a boot
        (datetime(2026, 11, 26, 18, 30), "07:00", datetime(2026, 11, 27, 7, 0)),  # evening
        (datetime(2026, 11, 26, 0, 30), "23:30", datetime(2026, 11, 25, 23, 30)),
    ],
)
def test_next_clock_time_is_the_nearest(now: datetime, text: str, expected: datetime) -> None:
    """--stop-submitting-at HH:MM: the coming such local time, unless the last one passed
    less than 6 hours ago (a late start finds it passed)."""
    assert datetime.fromtimestamp(cli.next_clock_time(text, now.timestamp())) == expected


def test_next_clock_time_refuses_a_non_time() -> None:
    """25:00 is no time of day: a usage error."""
    with pytest.raises(UsageError):
        cli.next_clock_time("25:00", datetime(2026, 11, 25, 23, 0).timestamp())


async def test_a_late_start_past_the_stop_time_submits_nothing(
    local_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start a few minutes after --stop-submitting-at sends nothing and exits 0 (it
    used to submit for a whole day)."""
    import anyio

    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b]\n")
    passed = datetime.fromtimestamp(time.time() - 300).strftime("%H:%M")
    monkeypatch.setenv("SEGMIND_API_KEY", server.api_key)
    code = await anyio.to_thread.run_sync(cli.main, [
        "run", str(manifest), "-o", str(tmp_path / "out"), "--base-url", server.base_url,
        "--no-progress", "--stop-submitting-at", passed])
    assert code == 0
    assert server.stats()["submits_accepted"] == 0


def test_run_without_key_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """No SEGMIND_API_KEY and no --api-key-file: exit 2 with a sentence, nothing sent."""
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    assert cli.main(["run", str(manifest), "-o", str(tmp_path / "out")]) == 2
    assert "SEGMIND_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_local_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`batchgen run --local` needs no key and says where the images are."""
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b]\n")
    out = tmp_path / "out"
    assert cli.main(["run", str(manifest), "--local", "-o", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert str(out / "images") in printed
    assert len(results(out)) == 2


async def test_key_file_and_base_url_env(local_server: StartServer, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The key comes from --api-key-file and the base URL from SEGMIND_BASE_URL."""
    import anyio

    server = await local_server()
    key_file = tmp_path / "key"
    key_file.write_text(server.api_key + "\n")
    monkeypatch.setenv("SEGMIND_BASE_URL", server.base_url)
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    args = ["run", str(manifest), "-o", str(tmp_path / "out"), "--api-key-file", str(key_file),
            "--no-progress", "--rpm", "6000", "--poll-first", "0.05"]
    code = await anyio.to_thread.run_sync(cli.main, args)
    assert code == 0
    assert server.stats()["submits_accepted"] == 1


async def test_deadline_in_the_past_submits_nothing(local_server: StartServer,
                                                    tmp_path: Path) -> None:
    """Past the submit deadline nothing new is sent; the items stay pending, exit 0."""
    import batchgen

    server = await local_server()
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b]\n")
    summary = await batchgen.run(manifest, out=tmp_path / "out", base_url=server.base_url,
                                 api_key=server.api_key, progress=False,
                                 submit_until_wall=time.time() - 1)
    assert summary["stop_reason"] == "deadline"
    assert summary["items"]["pending"] == 2
    assert server.stats()["submits_accepted"] == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["exit_code"] == 0


def test_unwritable_out_is_a_clear_message(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """An OUT that cannot be created gives one line naming the path, not a traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    code = cli.main(["run", str(manifest), "--local", "-o", str(blocker / "out"),
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert str(blocker) in err


def test_run_lists_every_manifest_problem(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A bad manifest: every problem printed with file:line, exit 2, nothing sent."""
    text = "items:\n  - {prompt: a, num_steps: 30}\n  - {prompt: b, samples: true}\n"
    manifest = write_manifest(tmp_path / "m.yaml", text)
    out = tmp_path / "out"
    assert cli.main(["run", str(manifest), "--local", "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{manifest}:2:" in err and "num_inference_steps" in err
    assert f"{manifest}:3:" in err and "samples" in err
    assert "2 errors; nothing was sent" in err
    assert not out.exists()


def test_run_on_a_missing_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest that is not there is a usage error (exit 2) naming the path."""
    missing = tmp_path / "nope.yaml"
    assert cli.main(["run", str(missing), "--local", "-o", str(tmp_path / "out")]) == 2
    assert str(missing) in capsys.readouterr().err


def test_run_reads_the_manifest_from_stdin(tmp_path: Path) -> None:
    """`batchgen run - --local` takes JSON lines on standard input, and runs them."""
    import subprocess
    import sys

    lines = '{"prompt": "from a pipe"}\n{"prompt": "and another"}\n'
    done = subprocess.run([sys.executable, "-m", "batchgen", "run", "-", "--local", "-o",
                           str(tmp_path / "out"), "--no-progress"], input=lines, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(results(tmp_path / "out")) == 2


async def test_a_wildcard_edit_is_not_taken_for_an_unchanged_manifest(
    local_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JSONL manifest whose wildcard file changed is validated again on resume (its
    own bytes are the same, but what it expands to is not)."""
    from test_run import run

    from batchgen.engine import prepare

    server = await local_server()
    (tmp_path / "wildcards").mkdir()
    (tmp_path / "wildcards" / "colour.txt").write_text("red\nblue\n")
    manifest = write_manifest(tmp_path / "m.jsonl",
                              '{"prompt": "a {__colour__} door", "expand": "all"}\n')
    await run(server, manifest, tmp_path / "out")
    passes: list[Path] = []
    real = prepare.validate
    monkeypatch.setattr(prepare, "validate", lambda cfg: passes.append(cfg.manifest) or real(cfg))
    await run(server, manifest, tmp_path / "out")
    assert passes == []  # unchanged: not validated twice
    (tmp_path / "wildcards" / "colour.txt").write_text("red\nblue\ngreen\n")
    summary = await run(server, manifest, tmp_path / "out")
    assert passes == [manifest]
    assert summary["this_run"]["submits"] == 1
