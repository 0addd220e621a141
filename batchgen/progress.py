"""Progress: a live bar on a terminal (tqdm), a log line every few seconds elsewhere."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import anyio
from tqdm import tqdm

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("batchgen.progress")

BAR_REFRESH_S = 0.5


class Progress:
    """Reports a run's counters until cancelled."""

    def __init__(self, rt: Runtime, *, total: int) -> None:
        self.rt = rt
        self.total = total
        interactive = rt.cfg.progress
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self._bar: Any = None
        self._started = rt.clock.now()

    def line(self) -> str:
        c = self.rt.counters
        minutes = max(1e-9, (self.rt.clock.now() - self._started) / 60)
        done = c.completed + c.skipped_done
        rate = c.completed / minutes
        left = self.total - done - c.failed - c.skipped_failed
        eta = f"{left / rate:.0f} min" if rate > 0 and left > 0 else "-"
        return (f"done {done}/{self.total}, failed {c.failed + c.skipped_failed}, "
                f"{c.images / minutes:.1f} images/min, ETA {eta}, credits {c.cost:.4g}")

    async def run(self) -> None:
        if self.interactive:
            self._bar = tqdm(total=self.total, unit="item", dynamic_ncols=True, file=sys.stderr)
            while True:
                self._refresh_bar()
                await anyio.sleep(BAR_REFRESH_S)
        else:
            while True:
                await anyio.sleep(self.rt.cfg.log_every_s)
                log.info("progress: %s", self.line())

    def _refresh_bar(self) -> None:
        c = self.rt.counters
        done = c.completed + c.skipped_done + c.failed + c.skipped_failed
        self._bar.n = done
        self._bar.set_postfix_str(
            f"failed {c.failed + c.skipped_failed}, submits {c.submits}, credits {c.cost:.4g}",
            refresh=False,
        )
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._refresh_bar()
            self._bar.close()
