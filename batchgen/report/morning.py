"""What a person reads after an unattended run: ``failed.jsonl``, the morning report and
the notify command.

``OUT/failed.jsonl`` is a manifest: one line per failed item in the JSONL item format
(``{"id", "model", <params>}``), so ``batchgen run OUT/failed.jsonl -o OUT2`` re-runs
exactly those items under the same ids with the same parameters. The reader rejects
unknown keys, so each item's error travels in a comment line just above it::

    # server_error (job_failed): the server's message
    {"id": "fox.seed-1", "model": "sd1.5-epicrealism", "prompt": "...", ...}

The first word is the error's group (the classes of issue #8); the store's own
``error_class`` follows in parentheses when it differs from the group.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from batchgen.manifest.templates import as_sent
from batchgen.output.files import write_atomic
from batchgen.report.logs import fields
from batchgen.store import views
from batchgen.store.views import FailedRow

log = logging.getLogger(__name__)

FAILED_FILE = "failed.jsonl"
# The variable the key is read from (cli/keys.py): never passed to the notify command.
KEY_ENV = "SEGMIND_API_KEY"

# The store's error_class values, grouped into the classes a person acts on.
ERROR_GROUPS: dict[str, str] = {
    "rejected": "rejected",
    "model_refused": "model_refused",
    "safety_block": "safety_block",
    "server_error": "server_error",
    "job_failed": "server_error",
    "bad_result": "server_error",
    "transport": "server_error",
    "fatal": "server_error",
    "expired": "expired",
    "in_doubt": "in_doubt",
    "download": "download",
}

def error_group(error_class: str | None) -> str:
    """The group of a stored error class; an unknown class is its own group."""
    if not error_class:
        return "unknown"
    return ERROR_GROUPS.get(error_class, error_class)


def _one_line(text: str) -> str:
    return " ".join(text.split())


_WARNINGS = {
    "download": "# its job was paid for and its output is lost: running it again pays "
                "again\n",
    "in_doubt": "# its submit may have created a job: --retry-failed in this OUT looks in "
                "the history first; running it elsewhere may pay twice\n",
}


def failed_lines(row: FailedRow) -> str:
    """The comment line and the item line of one failed item."""
    group = error_group(row.error_class)
    label = group if row.error_class in (None, group) else f"{group} ({row.error_class})"
    message = _one_line(row.last_error or "no message recorded")
    # The prompt first, for people who read the file; the reader ignores key order.
    first = {"prompt": row.params["prompt"]} if "prompt" in row.params else {}
    item = {"id": row.id, "model": row.model, **first, **row.params}
    text = json.dumps(as_sent(item), ensure_ascii=False, separators=(",", ":"))
    paid = _WARNINGS.get(row.error_class or "", "")
    return f"# {label}: {message}\n{paid}{text}\n"


def write_failed(db: Path, out: Path) -> int:
    """Write ``OUT/failed.jsonl`` atomically; remove a stale one when nothing failed.

    Returns the number of items written. Blocking: call from a worker thread.
    """
    rows = views.iter_failed(db)
    first = next(rows, None)
    target = out / FAILED_FILE
    if first is None:
        target.unlink(missing_ok=True)
        return 0
    count = 0

    def lines() -> Iterator[str]:
        nonlocal count
        for row in itertools.chain([first], rows):
            count += 1
            yield failed_lines(row)

    try:
        write_atomic(target, lines())
    finally:
        rows.close()
    return count


def top_errors(db: Path, limit: int = 5) -> list[dict[str, Any]]:
    """The most frequent (error_class, message) pairs among failed items. Blocking."""
    return [
        {"error_class": cls, "group": error_group(cls), "message": msg, "count": n}
        for cls, msg, n in views.top_errors(db, limit)
    ]


def morning_report(
    summary: dict[str, Any], *, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The part of a summary a person checks first, as a JSON-ready dict.

    ``errors`` is ``top_errors(db)`` when the caller has the store; missing summary
    keys read as empty, so an interrupted run's summary still makes a report.
    """
    items = summary.get("items") or {}
    credits = summary.get("credits") or {}
    timing = summary.get("timing") or {}
    causes: dict[str, int] = summary.get("errors_by_cause") or {}
    return {
        "out": summary.get("out"),
        "exit_code": summary.get("exit_code"),
        "stop_reason": summary.get("stop_reason"),
        "items": {key: items.get(key, 0) for key in
                  ("in_manifest", "completed", "failed", "pending", "unfinished")},
        "credits": {key: credits.get(key) for key in
                    ("spent_this_run", "spent_total", "remaining")},
        "in_doubt_submits": summary.get("in_doubt_submits", 0),
        "possible_duplicate_charges": summary.get("possible_duplicate_charges", 0),
        "timing": {key: timing.get(key) for key in
                   ("queue_time_p50", "queue_time_p95",
                    "inference_time_p50", "inference_time_p95")},
        "errors_by_cause": dict(sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))),
        "top_errors": list(errors or []),
    }


def _seconds(value: Any) -> str:
    return f"{value:.2f}s" if isinstance(value, int | float) else "-"


def _known(value: Any) -> str:
    """A figure as a person reads it: ``unknown`` rather than ``None``."""
    if value is None:
        return "unknown"
    return f"{value + 0.0}" if isinstance(value, float) else f"{value}"  # never "-0.0"


def report_text(report: dict[str, Any]) -> str:
    """A few lines of a morning report, for a chat message or a mail body."""
    items, credits, timing = report["items"], report["credits"], report["timing"]
    lines = [
        f"batchgen {report['out'] or ''}: exit {_known(report['exit_code'])}, "
        f"{items['completed']}/{items['in_manifest']} completed, {items['failed']} failed, "
        f"{items['pending']} pending, {items['unfinished']} unfinished",
        f"credits {_known(credits['spent_this_run'])} this run, "
        f"{_known(credits['spent_total'])} in all, remaining {_known(credits['remaining'])}; "
        f"possible duplicate charges {report['possible_duplicate_charges']}",
        f"queue p50 {_seconds(timing['queue_time_p50'])} p95 "
        f"{_seconds(timing['queue_time_p95'])}; inference p50 "
        f"{_seconds(timing['inference_time_p50'])} p95 "
        f"{_seconds(timing['inference_time_p95'])}",
    ]
    if report["stop_reason"]:
        lines.append(f"stopped submitting: {report['stop_reason']}")
    if report["errors_by_cause"]:
        lines.append("errors: " + ", ".join(
            f"{cause} {count}" for cause, count in report["errors_by_cause"].items()))
    for error in report["top_errors"]:
        lines.append(f"  {error['count']} x {error['error_class']}: "
                     f"{_one_line(error['message'] or '')[:200]}")
    return "\n".join(lines) + "\n"


def _notify_text(summary_path: Path) -> tuple[str, dict[str, str]]:
    """The text for the command's stdin and extra environment, from the summary file."""
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("notify: cannot read %s: %s", summary_path, exc,
                    extra=fields("notify.no_summary"))
        return f"batchgen: no summary ({exc})\n", {}
    if not isinstance(summary, dict):
        return "batchgen: summary is not a JSON object\n", {}
    report = morning_report(summary)
    extra = {} if report["exit_code"] is None else {"BATCHGEN_EXIT_CODE": str(report["exit_code"])}
    return report_text(report), extra


def secret_variables(env: Mapping[str, str], secrets: Iterable[str]) -> list[str]:
    """The names in ``env`` that hold the key: ``SEGMIND_API_KEY`` whatever its value, and
    every variable whose value contains one of ``secrets`` (the key under another name,
    or inside a URL or a command line)."""
    needles = [secret for secret in secrets if secret]
    return [name for name, value in env.items()
            if name == KEY_ENV or any(needle in value for needle in needles)]


def run_notify(cmd: str, summary_path: Path, timeout_s: float = 60, *,
               secrets: Iterable[str] = ()) -> int | None:
    """Run the user's notify command; its exit code, or None when it could not finish.

    The command runs through the shell (``sh -c``): it is the user's own configured
    command line, with pipes and quoting of their choosing, never built from manifest
    data. Its environment is ours without the key (``secret_variables``: pass the run's
    key in ``secrets``), plus ``BATCHGEN_SUMMARY`` (the summary file's absolute path) and
    ``BATCHGEN_EXIT_CODE``; the report text arrives on stdin; its stdout and stderr
    are the caller's. It runs in a session of its own so that a timeout kills the
    whole process group, not only the shell. Never raises: a failure is a warning.
    Blocking: call from a worker thread.
    """
    text, extra = _notify_text(summary_path)
    secrets = list(secrets)
    hidden = set(secret_variables(os.environ, secrets))
    env = {name: value for name, value in os.environ.items() if name not in hidden}
    env.update(extra, BATCHGEN_SUMMARY=str(summary_path.resolve()))
    try:
        proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.PIPE, env=env,
                                text=True, start_new_session=True)
    except OSError as exc:
        log.warning("notify command could not start: %s", exc, extra=fields("notify.not_started"))
        return None
    try:
        proc.communicate(text, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("notify command still running after %ss: killed", timeout_s,
                    extra=fields("notify.timeout"))
        _kill_group(proc)
        return None
    if proc.returncode != 0:
        log.warning("notify command exited with %s", proc.returncode,
                    extra=fields("notify.failed", exit_code=proc.returncode))
    return proc.returncode


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()  # closes stdin and reaps the shell
