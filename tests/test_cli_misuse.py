"""Misuse of the command line (issue 16): keys on the command line or in odd files, a
closed stdout, abbreviations, a torn progress bar, and Python leaking into messages."""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import sys
from pathlib import Path

import anyio
import pytest
from child import against, batchgen
from conftest import StartServer, until
from test_eta import progress_context
from test_run import write_manifest

from batchgen import cli
from batchgen.clock import ManualClock
from batchgen.report.logs import setup_logging
from batchgen.report.morning import morning_report, report_text
from batchgen.report.progress import Progress
from batchgen.report.status import describe_status

KEY = "SG_cli_misuse_key_0123456789"


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every subparser under it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += parsers(child)
    return found


def test_no_parser_takes_abbreviations(tmp_path: Path) -> None:
    """allow_abbrev is off on every parser; a shortened flag is a usage error."""
    every = parsers(cli.build_parser())
    assert len(every) >= 6 and all(p.allow_abbrev is False for p in every)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    assert cli.main(["run", str(manifest), "--local", "--concurr", "3"]) == 2
    assert cli.main(["run", str(manifest), "--api-key-f", str(manifest)]) == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["--api-key", KEY], [f"--api-key={KEY}"], ["--key", KEY],
                                  ["--token", KEY], [KEY]])
async def test_key_on_the_command_line_is_refused_unechoed(tmp_path: Path,
                                                           args: list[str]) -> None:
    """A key typed as a flag is a usage error naming the right ways; it is never echoed."""
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    done = await batchgen("run", str(manifest), "-o", str(tmp_path / "out"), *args)
    assert done.returncode == 2
    assert KEY not in done.stdout + done.stderr
    if args[0].startswith(("--api-key", "--key")):
        assert "SEGMIND_API_KEY" in done.stderr and "--api-key-file" in done.stderr
    assert not (tmp_path / "out").exists()


async def test_key_file_with_bom_crlf_and_spaces_works(local_server: StartServer,
                                                       tmp_path: Path) -> None:
    """A key saved with a BOM, CRLF and blank lines is read as the key alone."""
    server = await local_server(api_key=KEY)
    key_file = tmp_path / "key"
    key_file.write_bytes(b"\xef\xbb\xbf  " + KEY.encode() + b" \r\n\r\n")
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    done = await batchgen("run", str(manifest), "-o", str(tmp_path / "out"), *against(server),
                          "--api-key-file", str(key_file))
    assert done.returncode == 0, done.stderr
    assert server.stats()["submits_accepted"] == 1


@pytest.mark.parametrize("content", [f"{KEY}\nSECOND-LINE-XYZ\n", f"{KEY} SECOND-LINE-XYZ\n",
                                     f"{KEY}\x07SECOND-LINE-XYZ", "\n \r\n"])
async def test_bad_key_file_is_a_usage_error_that_sends_nothing(
        local_server: StartServer, tmp_path: Path, content: str) -> None:
    """Two lines, inner spaces or control characters, or nothing: exit 2 before any
    request, and the file's content is not printed."""
    server = await local_server(api_key=KEY)
    key_file = tmp_path / "key"
    key_file.write_text(content)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    done = await batchgen("run", str(manifest), "-o", str(tmp_path / "out"), *against(server),
                          "--api-key-file", str(key_file))
    assert done.returncode == 2
    assert str(key_file) in done.stderr and "Traceback" not in done.stderr
    assert KEY not in done.stderr + done.stdout and "SECOND-LINE" not in done.stderr
    assert server.stats()["requests"] == 0
    assert not (tmp_path / "out").exists()


async def test_closed_stdout_keeps_the_exit_code(tmp_path: Path) -> None:
    """`batchgen run ... | head -1` with the reader gone: exit 0, as summary.json says."""
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b]\n")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line
    try:
        done = await batchgen("run", str(manifest), "--local", "-o", str(tmp_path / "out"),
                              "--no-progress", stdout=write_end)
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr
    assert '"exit_code": 0' in (tmp_path / "out" / "summary.json").read_text()


async def test_log_line_does_not_tear_the_bar(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """With the bar on screen, a warning clears it and prints on a line of its own."""
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stderr", screen)
    handler = setup_logging(0, "text", screen)
    clock = ManualClock()
    progress = Progress(progress_context(clock, tmp_path, progress=True), total=10)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(progress.run)
            await until(lambda: clock.sleepers == 1)  # the bar is drawn
            logging.getLogger("batchgen.engine.test").warning("tear test %d", 2)
            tg.cancel_scope.cancel()
    finally:
        progress.close()
        logging.getLogger().removeHandler(handler)
    text = screen.getvalue()
    match = re.search(r"[\d-]+ [\d:,]+ WARNING batchgen\.engine\.test: tear test 2\n", text)
    assert match is not None, text
    assert text[match.start() - 1] in "\r\n"  # the bar was cleared first
    assert "item/s" not in text  # tqdm's own rate and remaining time are not drawn


def test_messages_say_unknown_not_none() -> None:
    """A report without remaining credits and a run without an end read as words."""
    report = morning_report({"exit_code": 0, "items": {}, "credits": {"spent_this_run": 0.1,
                                                                       "spent_total": 0.1}})
    text = report_text(report)
    assert "remaining unknown" in text and "None" not in text
    status = describe_status({
        "out": "out", "live": False, "items": {"total": 0, "pending": 0, "submitting": 0,
                                               "in_doubt": 0, "submitted": 0, "fetched": 0,
                                               "completed": 0, "failed": 0},
        "images_on_disk": 0, "credits_spent": 0.0, "submits": 0, "in_doubt_submits": 0,
        "last_run": {"started_at": "2026-11-25T01:30:00+00:00", "ended_at": None,
                     "exit_code": None, "pid": 1},
        "eta_s": None, "report": None})
    assert "None" not in status and "did not finish" in status


@pytest.mark.parametrize(("flag", "value"), [("--max-items", "0"), ("--concurrency", "-1"),
                                             ("--max-cost", "nan"), ("--log-every", "0")])
def test_bad_numbers_name_the_flag(capsys: pytest.CaptureFixture[str], flag: str,
                                   value: str) -> None:
    """`--max-items 0` names --max-items, not the field max_items."""
    assert cli.main(["run", "m.yaml", "--local", flag, value]) == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err and "_" not in err.split(f"argument {flag}:")[1]


def test_manifest_messages_are_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A seed past the bound shows the bound as written; a raw NUL gets a whole sentence."""
    seed = write_manifest(tmp_path / "s.jsonl", '{"prompt": "a", "seed": 99999999999999999999}\n')
    assert cli.main(["validate", str(seed)]) == 2
    assert "at most 9223372036854775807," in capsys.readouterr().err
    nul = write_manifest(tmp_path / "n.jsonl", '{"prompt": "a\x00b"}\n')
    assert cli.main(["validate", str(nul)]) == 2
    assert "raw control character U+0000 in a string (write it as \\u0000)" in (
        capsys.readouterr().err)


def test_verbose_after_the_command(tmp_path: Path) -> None:
    """-v and -vv work after the command name as before it."""
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    try:
        assert cli.main(["validate", str(manifest), "-vv"]) == 0
        assert logging.getLogger().level == logging.DEBUG
        assert cli.main(["-v", "validate", str(manifest)]) == 0
        assert logging.getLogger().level == logging.INFO
    finally:
        logging.getLogger().setLevel(logging.WARNING)


def test_run_help_shows_defaults_and_explains_every_flag(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`run --help`: every flag has help text, defaults shown, never 'None' or 'False'."""
    run = next(p for p in parsers(cli.build_parser()) if p.prog.endswith(" run"))
    silent = [a.option_strings for a in run._actions
              if a.option_strings and a.help is not argparse.SUPPRESS and not a.help]
    assert silent == []
    assert cli.main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "N is a hard cap (default: auto)" in text
    assert "the most jobs in flight auto may reach (default: 256)" in text
    assert "(default: resubmit)" in text and "(default: 30.0)" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "--api-key " not in text  # the refused flag is not advertised
