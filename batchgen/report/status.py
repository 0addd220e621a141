"""``batchgen status OUT``: read-only, instant, and safe while a run holds the lock."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from batchgen import lifecycle as lc
from batchgen.errors import StoreError, UsageError
from batchgen.report.eta import Eta, estimate, format_duration
from batchgen.report.morning import report_text
from batchgen.report.snapshot import Bounds, RunSnapshot
from batchgen.report.summary import iso
from batchgen.store import lock, views


def read_status(out: Path, *, now: float | None = None) -> dict[str, Any]:
    """Counts per state, images on disk, credits, the last run; documented in README."""
    db = out / ".batchgen" / "state.db"
    if not db.exists():
        raise UsageError(f"{out} holds no batchgen run (no {db})")
    try:
        snap = views.snapshot(db)
    except StoreError as exc:
        raise UsageError(str(exc)) from exc
    counts, run = snap.counts, snap.last_run
    live = lock.is_held(out / ".batchgen")
    summary = _load_json(out / "summary.json")
    last_run = None
    if run is not None:
        last_run = {
            "started_at": iso(run["started_at"]),
            "ended_at": iso(run["ended_at"]) if run["ended_at"] else None,
            "exit_code": run["exit_code"],
            "pid": run["pid"],
        }
    total = sum(counts.values())
    eta = _eta(snap, time.time() if now is None else now) if live else None
    return {
        "out": str(out),
        "live": live,
        "items": {state: counts.get(state, 0) for state in lc.STATES} | {"total": total},
        "images_on_disk": _count_images(out / "images"),
        "credits_spent": round(snap.cost, 6),
        "submits": snap.submits,
        "in_doubt_submits": snap.in_doubt,
        "possible_duplicate_charges": (summary or {}).get("possible_duplicate_charges"),
        "last_run": last_run,
        "eta_s": None if eta is None else eta.seconds,
        "eta_bound": None if eta is None else eta.bound,
        "report": (summary or {}).get("report"),
        # The last finished run's in-flight target and why (summary.json).
        "concurrency": (summary or {}).get("concurrency"),
    }


def _eta(snap: views.Snapshot, now: float) -> Eta | None:
    """What the live run still has to do, at its own pace: items it finished since it
    started, not those earlier runs into OUT finished (``report.eta``)."""
    run = snap.last_run
    if run is None:
        return None
    counts, mine = snap.counts, snap.last_run_progress
    options = _load_options(run.get("options"))
    max_items = options.get("max_items")
    figures = RunSnapshot(
        # A streamed manifest is read into the store as the run goes: its validated size
        # is the total.
        elapsed_s=now - run["started_at"], wall=now,
        total=max(sum(counts.values()), _int(options.get("manifest_items"))),
        completed=counts.get(lc.COMPLETED, 0), failed=counts.get(lc.FAILED, 0),
        in_flight=sum(counts.get(state, 0) for state in lc.STARTED),
        completed_this_run=mine.completed, failed_this_run=mine.failed,
        started_new=mine.started)
    deadline = options.get("submit_until_wall")
    eta = estimate(figures, Bounds(
        max_items=max_items if isinstance(max_items, int) else None,
        deadline_wall=float(deadline) if isinstance(deadline, int | float) else None))
    seconds = None if eta.seconds is None else float(round(eta.seconds, 1))
    return Eta(eta.left, seconds, eta.bound, eta.paused_s)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _load_options(text: object) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# images/ also holds the sidecars (metadata.jsonl, <image>.txt captions): not images.
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})


def _count_images(directory: Path) -> int:
    try:
        return sum(1 for entry in directory.iterdir() if not entry.name.startswith(".")
                   and entry.suffix.lower() in _IMAGE_SUFFIXES)
    except OSError:
        return 0


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _last_run_text(last: dict[str, Any] | None, *, live: bool) -> str:
    if not last:
        return "last run: none"
    if last["ended_at"] is not None:
        return (f"last run: started {last['started_at']}, ended {last['ended_at']}, "
                f"exit code {last['exit_code']}")
    # No end recorded: it is the live run, or one that was killed before its end.
    how = "still running" if live else "did not finish (killed?); run it again to resume"
    return f"last run: started {last['started_at']}, {how}"


def describe_status(report: dict[str, Any]) -> str:
    items = report["items"]
    states = ", ".join(f"{state} {items[state]}" for state in lc.STATES if items[state])
    lines = [
        f"{report['out']}: {'RUNNING' if report['live'] else 'idle'}; "
        f"{items['total']} items: {states or 'none'}",
        f"images on disk {report['images_on_disk']}, credits spent {report['credits_spent']}, "
        f"submits {report['submits']}, in-doubt submits {report['in_doubt_submits']}",
        _last_run_text(report["last_run"], live=report["live"]),
    ]
    if report["eta_s"] is not None:
        bound = report.get("eta_bound")
        lines.append(f"ETA {format_duration(report['eta_s'])}"
                     + (f" (bounded by {bound})" if bound else ""))
    concurrency = report.get("concurrency")
    if concurrency:
        lines.append(f"last run's in-flight target: {concurrency['why']}; peak in flight "
                     f"{concurrency['peak_in_flight']}")
    if report.get("report"):
        lines += ["", "last run's report:", report_text(report["report"])]
    return "\n".join(lines)
