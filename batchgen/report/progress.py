"""Progress: a live bar on a terminal (tqdm), a log line every few seconds elsewhere, and
the metrics file on the same beat.

Everything shown comes from a ``RunSnapshot`` (plain numbers) and the run's ``Bounds``;
``context_snapshot`` is the one place that reads them off the engine. While the bar is
on screen, log records go through ``tqdm.write`` (tqdm's ``logging_redirect_tqdm``), so
a warning clears the bar and prints on a line of its own instead of tearing it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from batchgen.report.eta import estimate, format_duration
from batchgen.report.logs import fields
from batchgen.report.metrics import MetricsFile
from batchgen.report.snapshot import Bounds, RunSnapshot

if TYPE_CHECKING:
    from batchgen.engine.context import JobContext

log = logging.getLogger(__name__)

BAR_REFRESH_S = 0.5
BAR_FORMAT = "{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


def context_snapshot(ctx: JobContext, *, total: int, started: float) -> RunSnapshot:
    """The figures of the engine's run as it stands (``started``: its clock's ``now()``)."""
    c = ctx.counters
    now = ctx.clock.now()
    paused_until = ctx.gate.limiter.paused_until
    return RunSnapshot(
        elapsed_s=now - started, wall=ctx.clock.wall(), total=total,
        completed=c.completed + c.skipped_done, failed=c.failed + c.skipped_failed,
        in_flight=c.in_flight, in_flight_target=ctx.inflight.target(),
        completed_this_run=c.completed, failed_this_run=c.failed,
        images=c.images, submits=c.accepted, polls=c.polls,
        rate_limited=c.rate_limited, retries=c.retries, in_doubt=c.in_doubt,
        credits_spent=c.cost, credits_reserved=ctx.budget.reserved,
        cost_per_item=ctx.budget.cost_per_image,
        paused_s=0.0 if paused_until is None else max(0.0, paused_until - now),
        stop_reason=ctx.stop.reason, started_new=c.new_items,
    )


def figures(snap: RunSnapshot, bounds: Bounds) -> dict[str, Any]:
    """What a progress line says, as a JSON-ready dict."""
    eta = estimate(snap, bounds)
    return {"total": snap.total, "done": snap.completed, "failed": snap.failed,
            "in_flight": snap.in_flight, "in_flight_target": snap.in_flight_target,
            "queued": snap.queued,
            "images_per_min": round(snap.images_per_min, 3),
            "eta_s": None if eta.seconds is None else round(eta.seconds, 1),
            "eta_left": eta.left, "eta_bound": eta.bound, "paused_s": round(eta.paused_s, 1),
            "credits": round(snap.credits_spent, 6)}


def eta_text(f: dict[str, Any]) -> str:
    """``ETA 12 min``, with the limit that bounds it and a 429 pause when there is one."""
    notes = [f"{f['eta_left']} left"]
    if f["eta_bound"]:
        notes.append(f"bounded by {f['eta_bound']}")
    if f["paused_s"]:
        notes.append(f"paused {format_duration(f['paused_s'])} by 429")
    return f"ETA {format_duration(f['eta_s'])} ({', '.join(notes)})"


class Progress:
    """Reports a run's figures until cancelled, then ``close()``."""

    def __init__(self, ctx: JobContext, *, total: int) -> None:
        cfg = ctx.cfg
        self.total = total
        self.snapshot = partial(context_snapshot, ctx, total=total, started=ctx.clock.now())
        self.bounds = Bounds(max_items=cfg.max_items, max_cost=cfg.max_cost,
                             deadline_wall=cfg.submit_until_wall)
        self.clock = ctx.clock
        self.log_every_s = cfg.log_every_s
        self.stream = sys.stderr
        self.interactive = self.stream.isatty() if cfg.progress is None else cfg.progress
        self.metrics = None if cfg.metrics_file is None else MetricsFile(cfg.metrics_file,
                                                                         out=cfg.out)
        self._bar: Any = None
        self._redirect = contextlib.ExitStack()
        self._metrics_failed = False

    def figures(self) -> dict[str, Any]:
        """done, failed, in flight, queued, images/min, ETA and credits, as now."""
        return figures(self.snapshot(), self.bounds)

    def line(self, f: dict[str, Any] | None = None) -> str:
        f = f or self.figures()
        return (f"done {f['done']}/{f['total']}, failed {f['failed']}, in flight "
                f"{f['in_flight']} (target {f['in_flight_target']}), queued {f['queued']}, "
                f"{f['images_per_min']:.1f} images/min, {eta_text(f)}, credits {f['credits']:.4g}")

    async def run(self) -> None:
        if self.interactive:
            # tqdm's own "remaining" counts the whole manifest at the overall pace: left out
            # for the ETA of eta.py, which knows the bounds.
            self._bar = tqdm(total=self.total, unit="item", dynamic_ncols=True, file=self.stream,
                             bar_format=BAR_FORMAT)
            self._redirect.enter_context(logging_redirect_tqdm())
        ticks_per_line = max(1, round(self.log_every_s / BAR_REFRESH_S))
        tick = 0
        while True:
            if self.interactive:
                self._refresh_bar()
                if tick % ticks_per_line == 0:
                    await self._write_metrics()
                tick += 1
                await self.clock.sleep(BAR_REFRESH_S)
            else:
                await self._write_metrics()
                await self.clock.sleep(self.log_every_s)
                f = self.figures()
                log.info("progress: %s", self.line(f), extra=fields("run.progress", **f))

    async def _write_metrics(self) -> None:
        if self.metrics is None:
            return
        try:
            await anyio.to_thread.run_sync(self.metrics.update, self.snapshot())
        except OSError as exc:
            if not self._metrics_failed:  # once: the run goes on without its metrics
                log.warning("cannot write the metrics file %s: %s", self.metrics.path,
                            exc.strerror or exc, extra=fields("metrics.write_failed"))
            self._metrics_failed = True

    def _refresh_bar(self) -> None:
        f = self.figures()
        self._bar.n = f["done"] + f["failed"]
        self._bar.set_postfix_str(
            f"failed {f['failed']}, in flight {f['in_flight']}/{f['in_flight_target']}, "
            f"queued {f['queued']}, "
            f"{f['images_per_min']:.0f} img/min, {eta_text(f)}, credits {f['credits']:.4g}",
            refresh=False,
        )
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._refresh_bar()
            self._bar.close()
            self._bar = None
        self._redirect.close()
