"""failed.jsonl, top errors, the morning report and the notify command."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from conftest import StartServer

import batchgen
from batchgen.manifest.reader import ManifestReader
from batchgen.report.morning import (
    morning_report,
    report_text,
    run_notify,
    top_errors,
    write_failed,
)
from batchgen.server import FAIL_MARKER
from batchgen.store.db import connect

MODEL = "sd1.5-epicrealism"
PARAMS = {"prompt": "a red fox", "negative_prompt": "blurry", "scheduler": "DPM Multi",
          "num_inference_steps": 25, "guidance_scale": 7.5, "samples": 1, "seed": 7,
          "img_width": 512, "img_height": 768, "base64": False}
FAST = {"poll_first_s": 0.05, "poll_min_s": 0.02, "progress": False, "rpm": 6000,
        "history_wait_s": 0.2}


def add(conn: sqlite3.Connection, item_id: str, state: str, *, error_class: str | None = None,
        last_error: str | None = None, **params: Any) -> None:
    conn.execute(
        "INSERT INTO items (id, model, body, state, error_class, last_error, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 0)",
        (item_id, MODEL, json.dumps({**PARAMS, **params}), state, error_class, last_error),
    )


def store(tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    db = tmp_path / ".batchgen" / "state.db"
    return db, connect(db)


def mixed(tmp_path: Path) -> Path:
    """A store with one of each: completed, failed twice, undelivered, pending."""
    db, conn = store(tmp_path)
    add(conn, "done", "completed")
    add(conn, "blocked", "failed", error_class="safety_block", last_error="NSFW", seed=1)
    add(conn, "broken", "failed", error_class="job_failed", last_error="GPU\nfell over",
        prompt="a teapot")
    add(conn, "unwritten", "fetched", error_class="download", last_error="disk full")
    add(conn, "waiting", "pending")
    conn.close()
    return db


def test_failed_file_lists_failed_items_only(tmp_path: Path) -> None:
    """failed.jsonl holds failed items; a paid job whose images are not written yet is
    not one (the next run writes it; re-running it elsewhere would pay again)."""
    db = mixed(tmp_path)
    assert write_failed(db, tmp_path) == 2
    lines = (tmp_path / "failed.jsonl").read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines if not line.startswith("#")]
    assert [item["id"] for item in items] == ["blocked", "broken"]


def test_failed_file_warns_that_a_lost_paid_output_pays_again(tmp_path: Path) -> None:
    """A failed item whose paid output is lost says that running it again pays again."""
    db, conn = store(tmp_path)
    add(conn, "lost", "failed", error_class="download", last_error="output lost")
    conn.close()
    write_failed(db, tmp_path)
    lines = (tmp_path / "failed.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# download: output lost"
    assert "pays again" in lines[1] and lines[1].startswith("#")


def test_failed_file_comment_names_group_class_and_message(tmp_path: Path) -> None:
    """Each item is preceded by a one-line comment: group, store class, message."""
    write_failed(mixed(tmp_path), tmp_path)
    lines = (tmp_path / "failed.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# safety_block: NSFW"
    assert lines[2] == "# server_error (job_failed): GPU fell over"


def test_failed_file_round_trips_through_the_manifest_reader(tmp_path: Path) -> None:
    """The reader accepts failed.jsonl and yields the same ids, models and parameters."""
    db = mixed(tmp_path)
    write_failed(db, tmp_path)
    reader = ManifestReader(tmp_path / "failed.jsonl")
    items = list(reader.items())
    assert reader.valid, reader.problems
    assert reader.warnings == 0
    conn = connect(db, read_only=True)
    stored = {row[0]: json.loads(row[1]) for row in conn.execute("SELECT id, body FROM items")}
    conn.close()
    assert {item.id: item.params for item in items} == {
        key: stored[key] for key in ("blocked", "broken")}
    assert {item.model for item in items} == {MODEL}


def test_stale_failed_file_is_removed_when_nothing_failed(tmp_path: Path) -> None:
    """With no failed item, write_failed returns 0 and removes an old failed.jsonl."""
    db, conn = store(tmp_path)
    add(conn, "done", "completed")
    conn.close()
    (tmp_path / "failed.jsonl").write_text("# old\n", encoding="utf-8")
    assert write_failed(db, tmp_path) == 0
    assert not (tmp_path / "failed.jsonl").exists()


def test_top_errors_groups_messages_by_count(tmp_path: Path) -> None:
    """top_errors groups failed rows by class and message, most frequent first, limited."""
    db, conn = store(tmp_path)
    for n in range(3):
        add(conn, f"a{n}", "failed", error_class="rejected", last_error="bad seed")
    for n in range(2):
        add(conn, f"b{n}", "failed", error_class="job_failed", last_error="oom")
    add(conn, "c", "failed", error_class="transport", last_error="reset")
    conn.close()
    assert top_errors(db, limit=2) == [
        {"error_class": "rejected", "group": "rejected", "message": "bad seed", "count": 3},
        {"error_class": "job_failed", "group": "server_error", "message": "oom", "count": 2},
    ]


SUMMARY: dict[str, Any] = {
    "out": "out/night", "exit_code": 1, "stop_reason": None,
    "items": {"in_manifest": 10, "completed": 8, "failed": 2, "pending": 0, "unfinished": 0},
    "credits": {"spent_this_run": 0.08, "spent_total": 0.1, "remaining": 5.0},
    "in_doubt_submits": 1, "possible_duplicate_charges": 1,
    "errors_by_cause": {"rejected": 1, "safety_block": 1},
    "timing": {"queue_time_p50": 1.0, "queue_time_p95": 2.5,
               "inference_time_p50": 3.0, "inference_time_p95": 4.0},
}


def test_morning_report_keeps_what_a_person_checks() -> None:
    """The report carries counts, credits, duplicates, percentiles and errors."""
    errors = [{"error_class": "rejected", "group": "rejected", "message": "x", "count": 1}]
    report = morning_report(SUMMARY, errors=errors)
    assert report["items"]["failed"] == 2
    assert report["credits"]["remaining"] == 5.0
    assert report["possible_duplicate_charges"] == 1
    assert report["timing"]["queue_time_p95"] == 2.5
    assert report["errors_by_cause"] == {"rejected": 1, "safety_block": 1}
    assert report["top_errors"] == errors
    assert "8/10 completed" in report_text(report)


def test_morning_report_accepts_a_partial_summary() -> None:
    """A summary missing sections still gives a report with empty values."""
    report = morning_report({"exit_code": 130})
    assert report["items"]["completed"] == 0
    assert report["timing"]["inference_time_p50"] is None
    assert "exit 130" in report_text(report)


def results(out: Path) -> list[dict[str, Any]]:
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def python(code: str) -> str:
    return f'"{sys.executable}" -c "{code}"'


def test_notify_gets_summary_path_and_text(tmp_path: Path) -> None:
    """The command sees BATCHGEN_SUMMARY and the report on stdin, and its code is returned."""
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(SUMMARY), encoding="utf-8")
    seen = tmp_path / "seen.txt"
    code = ("import os, sys, pathlib; pathlib.Path(sys.argv[1]).write_text("
            "os.environ['BATCHGEN_SUMMARY'] + chr(10) + sys.stdin.read())")
    assert run_notify(python(code) + f' "{seen}"', summary) == 0
    path, text = seen.read_text(encoding="utf-8").split("\n", 1)
    assert path == str(summary.resolve())
    assert "8/10 completed" in text


def test_notify_failure_returns_its_exit_code(tmp_path: Path) -> None:
    """A failing command does not raise: its exit code comes back."""
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(SUMMARY), encoding="utf-8")
    assert run_notify(python("raise SystemExit(3)"), summary) == 3


def test_notify_timeout_kills_the_command(tmp_path: Path) -> None:
    """A command still running at the timeout is killed and None is returned."""
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(SUMMARY), encoding="utf-8")
    assert run_notify(python("import time; time.sleep(30)"), summary, timeout_s=0.3) is None


def test_notify_runs_without_a_readable_summary(tmp_path: Path) -> None:
    """A missing summary file is a warning; the command still runs."""
    assert run_notify(python("pass"), tmp_path / "missing.json") == 0


async def test_failed_file_reruns_just_the_failed_items(
    local_server: StartServer, tmp_path: Path
) -> None:
    """After a real run, failed.jsonl is a manifest that runs exactly the failed item."""
    server = await local_server()
    manifest = tmp_path / "m.yaml"
    manifest.write_text(f"items: ['fine', 'bad {FAIL_MARKER}']\n", encoding="utf-8")
    out = tmp_path / "out"
    await batchgen.run(manifest, out=out, base_url=server.base_url, api_key=server.api_key,
                       history_url=server.base_url, **FAST)
    assert write_failed(out / ".batchgen" / "state.db", out) == 1
    again = await batchgen.run(out / "failed.jsonl", out=tmp_path / "out2",
                               base_url=server.base_url, api_key=server.api_key,
                               history_url=server.base_url, **FAST)
    assert again["items"]["in_manifest"] == 1
    first = results(out)
    second = results(tmp_path / "out2")
    failed = next(line for line in first if line["status"] == "failed")
    assert [(line["id"], line["params"]) for line in second] == [(failed["id"], failed["params"])]
