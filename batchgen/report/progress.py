"""Progress: a live bar on a terminal (tqdm), a log line every few seconds elsewhere."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import anyio
from tqdm import tqdm

if TYPE_CHECKING:
    from batchgen.engine.context import JobContext

log = logging.getLogger(__name__)

BAR_REFRESH_S = 0.5


class Progress:
    """Reports a run's counters until cancelled."""

    def __init__(self, ctx: JobContext, *, total: int) -> None:
        self.ctx = ctx
        self.total = total
        interactive = ctx.cfg.progress
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self._bar: Any = None
        self._started = ctx.clock.now()

    def figures(self) -> dict[str, Any]:
        """done, failed, in flight, queued, images/min, ETA and credits, as now."""
        c = self.ctx.counters
        minutes = max(1e-9, (self.ctx.clock.now() - self._started) / 60)
        done = c.completed + c.skipped_done
        failed = c.failed + c.skipped_failed
        rate = c.completed / minutes
        queued = max(0, self.total - done - failed - c.in_flight)
        left = queued + c.in_flight
        return {"done": done, "failed": failed, "in_flight": c.in_flight, "queued": queued,
                "images_per_min": c.images / minutes,
                "eta_min": left / rate if rate > 0 and left > 0 else None,
                "credits": c.cost}

    def line(self) -> str:
        f = self.figures()
        eta = "-" if f["eta_min"] is None else f"{f['eta_min']:.0f} min"
        return (f"done {f['done']}/{self.total}, failed {f['failed']}, in flight "
                f"{f['in_flight']}, queued {f['queued']}, {f['images_per_min']:.1f} images/min,"
                f" ETA {eta}, credits {f['credits']:.4g}")

    async def run(self) -> None:
        if self.interactive:
            self._bar = tqdm(total=self.total, unit="item", dynamic_ncols=True, file=sys.stderr)
            while True:
                self._refresh_bar()
                await anyio.sleep(BAR_REFRESH_S)
        else:
            while True:
                await anyio.sleep(self.ctx.cfg.log_every_s)
                log.info("progress: %s", self.line())

    def _refresh_bar(self) -> None:
        f = self.figures()
        self._bar.n = f["done"] + f["failed"]
        self._bar.set_postfix_str(
            f"failed {f['failed']}, in flight {f['in_flight']}, queued {f['queued']}, "
            f"{f['images_per_min']:.0f} img/min, credits {f['credits']:.4g}",
            refresh=False,
        )
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._refresh_bar()
            self._bar.close()
