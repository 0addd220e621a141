"""--metrics-file: Prometheus' own parser reads it, it is replaced atomically, and the last
success outlives the run that wrote it."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import until
from prometheus_client.parser import text_string_to_metric_families
from test_eta import progress_context
from test_run import write_manifest

from batchgen import cli
from batchgen.clock import ManualClock
from batchgen.report.metrics import Carried, MetricsFile, read_carried, render
from batchgen.report.progress import Progress
from batchgen.report.snapshot import RunSnapshot
from batchgen.store.lock import hold

SNAP = RunSnapshot(elapsed_s=120.0, wall=1_800_000_000.0, total=10, completed=6, failed=1,
                   in_flight=2, completed_this_run=4, images=8, submits=7, polls=11,
                   rate_limited=3, retries=2, in_doubt=1, credits_spent=0.35)


def parse(text: str) -> dict[str, list[Any]]:
    """Samples by family name, through prometheus_client's text parser."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(families: dict[str, list[Any]], family: str, **labels: str) -> float:
    matches = [s.value for s in families[family] if labels.items() <= s.labels.items()]
    assert len(matches) == 1, (family, labels, families.get(family))
    result: float = matches[0]
    return result


def test_file_passes_the_prometheus_parser() -> None:
    """Every figure is a sample the parser reads back, with an escaped ``out`` label."""
    out = 'night "7"\\a\nb'
    text = render(SNAP, labels={"out": out}, running=True, carried=Carried(1.7e9, 1))
    families = parse(text)
    assert {s.labels["out"] for samples in families.values() for s in samples} == {out}
    assert [value(families, "batchgen_items", state=s) for s in
            ("completed", "failed", "in_flight", "pending")] == [6, 1, 2, 1]
    assert value(families, "batchgen_submits") == 7
    assert value(families, "batchgen_status_polls") == 11
    assert value(families, "batchgen_rate_limited") == 3
    assert value(families, "batchgen_retries") == 2
    assert value(families, "batchgen_in_doubt_submits") == 1
    assert value(families, "batchgen_credits_spent") == pytest.approx(0.35)
    assert value(families, "batchgen_images_per_minute") == pytest.approx(4.0)
    assert value(families, "batchgen_jobs_in_flight") == 2
    assert value(families, "batchgen_running") == 1
    assert value(families, "batchgen_last_exit_code") == 1
    assert value(families, "batchgen_last_success_timestamp_seconds") == 1.7e9


def test_unknown_last_success_is_left_out() -> None:
    """Before any run succeeded there is no last-success sample (alert on absent())."""
    families = parse(render(None, labels={"out": "o"}, running=False, carried=Carried()))
    assert "batchgen_last_success_timestamp_seconds" not in families
    assert value(families, "batchgen_running") == 0


def test_rewrite_replaces_the_file_whole(tmp_path: Path) -> None:
    """A reader holding the old file still reads all of it; the path shows the new one;
    no temporary file is left."""
    path = tmp_path / "batchgen.prom"
    metrics = MetricsFile(path, out=tmp_path)
    metrics.update(SNAP)
    with path.open(encoding="utf-8") as old:
        metrics.update(dataclasses.replace(SNAP, submits=99))
        assert value(parse(old.read()), "batchgen_submits") == 7
    assert value(parse(path.read_text()), "batchgen_submits") == 99
    assert [p.name for p in tmp_path.iterdir()] == ["batchgen.prom"]


def test_concurrent_reader_never_sees_half_a_file(tmp_path: Path) -> None:
    """While one thread rewrites the file, every read of it parses whole."""
    path = tmp_path / "batchgen.prom"
    metrics = MetricsFile(path, out=tmp_path)
    metrics.update(SNAP)
    done = threading.Event()

    def writer() -> None:
        for n in range(300):
            metrics.update(dataclasses.replace(SNAP, submits=n))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not done.is_set() or reads == 0:
        families = parse(path.read_text(encoding="utf-8"))
        assert "batchgen_running" in families  # the last family: the file is whole
        reads += 1
    thread.join()


def test_last_success_is_carried_over_runs(tmp_path: Path) -> None:
    """A failed run keeps the last success and records its exit code; a good one moves it."""
    path = tmp_path / "batchgen.prom"
    MetricsFile(path, out=tmp_path).finish(SNAP, exit_code=0, ended=1000.0)
    second = MetricsFile(path, out=tmp_path)
    second.update(SNAP)
    assert read_carried(path) == Carried(1000.0, 0)  # during the run: the last run's
    second.finish(SNAP, exit_code=1, ended=2000.0)
    assert read_carried(path) == Carried(1000.0, 1)
    MetricsFile(path, out=tmp_path).finish(None, exit_code=0, ended=3000.0)
    assert read_carried(path) == Carried(3000.0, 0)


async def test_progress_rewrites_the_file_every_log_every(tmp_path: Path) -> None:
    """On the manual clock: a write at the start, another after --log-every, with the
    run's new figures and running=1."""
    clock = ManualClock()
    path = tmp_path / "batchgen.prom"
    ctx = progress_context(clock, tmp_path, metrics_file=path, progress=False,
                           log_every_s=30.0)
    progress = Progress(ctx, total=10)
    written = [anyio.Event(), anyio.Event()]

    class Signalled(MetricsFile):
        def update(self, snap: RunSnapshot) -> None:
            super().update(snap)
            anyio.from_thread.run_sync(written[0].set if not written[0].is_set()
                                       else written[1].set)

    progress.metrics = Signalled(path, out=tmp_path)
    async with anyio.create_task_group() as tg:
        tg.start_soon(progress.run)
        with anyio.fail_after(10):
            await written[0].wait()
        assert value(parse(path.read_text()), "batchgen_submits") == 0
        await until(lambda: clock.sleepers == 1)  # waiting for the next beat
        ctx.counters.accepted, ctx.counters.completed = 4, 3
        clock.advance(30.0)
        with anyio.fail_after(10):
            await written[1].wait()
        tg.cancel_scope.cancel()
    families = parse(path.read_text())
    assert value(families, "batchgen_submits") == 4
    assert value(families, "batchgen_items", state="completed") == 3
    assert value(families, "batchgen_running") == 1


def test_run_ends_the_file_with_its_exit_code(tmp_path: Path) -> None:
    """`batchgen run --metrics-file`: exit 0 sets the last success; a later bad run keeps
    it and records exit 2; a run that finds OUT locked leaves the file alone."""
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b]\n")
    out, path = tmp_path / "out", tmp_path / "prom" / "batchgen.prom"
    path.parent.mkdir()
    args = ["run", str(manifest), "--local", "-o", str(out), "--no-progress",
            "--metrics-file", str(path)]
    assert cli.main(args) == 0
    families = parse(path.read_text())
    ended = json.loads((out / "summary.json").read_text())["ended_at"]
    success = value(families, "batchgen_last_success_timestamp_seconds")
    assert success == pytest.approx(datetime.fromisoformat(ended).timestamp())
    assert value(families, "batchgen_items", state="completed", out=str(out)) == 2
    assert (value(families, "batchgen_last_exit_code"), value(families, "batchgen_running")
            ) == (0, 0)

    write_manifest(manifest, "items:\n  - {prompt: a, samples: 9}\n")
    assert cli.main(args) == 2
    families = parse(path.read_text())
    assert value(families, "batchgen_last_exit_code") == 2
    assert value(families, "batchgen_last_success_timestamp_seconds") == success

    before, text = os.stat(path), path.read_text()
    write_manifest(manifest, "items: [a, b]\n")
    with hold(out / ".batchgen", out):
        assert cli.main(args) == 75
    assert (os.stat(path).st_ino, path.read_text()) == (before.st_ino, text)
