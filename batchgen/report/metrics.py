"""``--metrics-file PATH``: a Prometheus text file for node_exporter's textfile collector.

The file is rewritten whole through a temporary file and a rename (``write_atomic``),
so the collector never reads half of it: during the run every ``--log-every`` seconds
and once at the end, with the run's exit code. The format is Prometheus' text
exposition format 0.0.4; every series carries an ``out`` label, so that several
batches can write files side by side in the collector's directory.

``batchgen_last_success_timestamp_seconds`` (the end of the last run that exited 0) and
``batchgen_last_exit_code`` outlive a run: each run carries them over from the file it
replaces, and sets them when it ends. An alert then fires when last night's job did
not succeed: ``time() - batchgen_last_success_timestamp_seconds > 26 * 3600``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from batchgen.output.files import write_atomic
from batchgen.report.snapshot import ITEM_STATES, RunSnapshot

LAST_SUCCESS = "batchgen_last_success_timestamp_seconds"
LAST_EXIT_CODE = "batchgen_last_exit_code"

# name, type, help, the snapshot's value: this run's counters, then gauges.
_RUN_SERIES: tuple[tuple[str, str, str, str], ...] = (
    ("batchgen_submits_total", "counter", "Submits sent by this run.", "submits"),
    ("batchgen_status_polls_total", "counter", "Status polls by this run.", "polls"),
    ("batchgen_rate_limited_total", "counter", "Answers 429 to this run.", "rate_limited"),
    ("batchgen_retries_total", "counter", "Calls retried by this run.", "retries"),
    ("batchgen_in_doubt_submits_total", "counter",
     "Submits of this run whose outcome was unknown.", "in_doubt"),
    ("batchgen_credits_spent_total", "counter", "Credits this run spent.", "credits_spent"),
    ("batchgen_images_total", "counter", "Images this run wrote.", "images"),
    ("batchgen_images_per_minute", "gauge", "Images written per minute by this run.",
     "images_per_min"),
    ("batchgen_jobs_in_flight", "gauge", "Jobs submitted and not finished.", "in_flight"),
)


@dataclass(frozen=True, slots=True)
class Carried:
    """What a metrics file says about earlier runs."""

    last_success: float | None = None
    last_exit_code: int | None = None


def _value(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_carried(path: Path) -> Carried:
    """The last success and exit code in an existing metrics file (none when missing)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return Carried()
    found: dict[str, float] = {}
    for name in (LAST_SUCCESS, LAST_EXIT_CODE):
        match = re.search(rf"^{name}(?:{{[^}}\n]*}})?[ \t]+(\S+)", text, re.MULTILINE)
        value = _value(match[1]) if match else None
        if value is not None:
            found[name] = value
    code = found.get(LAST_EXIT_CODE)
    return Carried(found.get(LAST_SUCCESS), None if code is None else int(code))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(float(value))


def _family(name: str, kind: str, help_text: str,
            samples: list[tuple[dict[str, str], float]]) -> Iterator[str]:
    yield f"# HELP {name} {help_text}\n"
    yield f"# TYPE {name} {kind}\n"
    for labels, value in samples:
        inner = ",".join(f'{key}="{_escape(text)}"' for key, text in labels.items())
        yield f"{name}{{{inner}}} {_number(value)}\n"


def render(snap: RunSnapshot | None, *, labels: Mapping[str, str], running: bool,
           carried: Carried) -> str:
    """The whole file: this run's figures (when known), whether it runs, and the carried
    last success and exit code (each left out while unknown)."""
    base = dict(labels)
    lines: list[str] = []
    if snap is not None:
        items = snap.items
        lines += _family("batchgen_items", "gauge", "Items of the manifest by state.",
                         [({**base, "state": s}, items[s]) for s in ITEM_STATES])
        for name, kind, help_text, attr in _RUN_SERIES:
            lines += _family(name, kind, help_text, [(base, getattr(snap, attr))])
    lines += _family("batchgen_running", "gauge", "1 while a run is going, else 0.",
                     [(base, int(running))])
    if carried.last_exit_code is not None:
        lines += _family(LAST_EXIT_CODE, "gauge", "Exit code of the last finished run.",
                         [(base, carried.last_exit_code)])
    if carried.last_success is not None:
        lines += _family(LAST_SUCCESS, "gauge", "When the last run that exited 0 ended.",
                         [(base, carried.last_success)])
    return "".join(lines)


class MetricsFile:
    """One run's metrics file: ``update`` during the run, ``finish`` at its end. Blocking:
    call from a worker thread."""

    def __init__(self, path: Path, *, out: Path) -> None:
        self.path = path
        self.labels = {"out": str(out)}
        self.carried = read_carried(path)

    def update(self, snap: RunSnapshot) -> None:
        """Rewrite the file with the run's figures so far."""
        write_atomic(self.path, [render(snap, labels=self.labels, running=True,
                                        carried=self.carried)])

    def finish(self, snap: RunSnapshot | None, *, exit_code: int, ended: float) -> None:
        """Rewrite the file for a run that ended with ``exit_code`` at ``ended`` (epoch s);
        ``snap`` is None when the run ended before it had figures (a usage error)."""
        success = ended if exit_code == 0 else self.carried.last_success
        self.carried = Carried(success, exit_code)
        write_atomic(self.path, [render(snap, labels=self.labels, running=False,
                                        carried=self.carried)])
