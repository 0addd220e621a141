"""After a run: results.jsonl, the summary, failed.jsonl, the gallery, the runs row, and
the notify command, all from the store."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from batchgen.config import RunConfig
from batchgen.engine.context import JobContext
from batchgen.exits import EXIT_CRASHED
from batchgen.metadata.sidecars import METADATA_FILE, export_sidecars
from batchgen.output.results import export_results, write_summary
from batchgen.report.gallery import GALLERY_FILE, write_gallery
from batchgen.report.morning import morning_report, run_notify, top_errors, write_failed
from batchgen.report.summary import build_summary, exit_code
from batchgen.store.runs import end_run


async def finish(ctx: JobContext, *, run_id: int, started: float, manifest_items: int,
                 failure: BaseException | None) -> dict[str, Any]:
    """Write the end-of-run files and the runs row; returns the summary.

    Written after a crash too (with the error), so that the morning's files never
    describe an older run; a second failure while writing them is logged, and the first
    one is what the caller sees.
    """
    cfg, clock = ctx.cfg, ctx.clock
    db = cfg.state_dir / "state.db"
    summary: dict[str, Any] = {}
    fresh = _unchanged(ctx)
    try:
        if not (fresh and (cfg.out / "results.jsonl").exists()):
            await anyio.to_thread.run_sync(export_results, db, cfg.out)
        counts = await ctx.items.seen_counts()
        stored = sum((await ctx.items.counts()).values())
        spent = await ctx.items.credits_spent()
        summary = build_summary(cfg, ctx, counts=counts, stored=stored, spent_before=spent,
                                started=started, ended=clock.wall(),
                                manifest_items=manifest_items)
        summary["exit_code"] = exit_code(ctx, counts) if failure is None else EXIT_CRASHED
        summary["error"] = None if failure is None else f"{type(failure).__name__}: {failure}"
        await anyio.to_thread.run_sync(partial(write_views, db, cfg.out, summary,
                                               captions=cfg.captions == "txt",
                                               rewrite=not fresh))
        await end_run(ctx.items.db, run_id, now=clock.wall(), summary=summary,
                      exit_code=summary["exit_code"])
    except Exception:
        if failure is None:
            raise
        logging.getLogger(__name__).exception(
            "the summary could not be written after the run failed")
        return summary
    if cfg.notify_cmd:
        await anyio.to_thread.run_sync(partial(run_notify, cfg.notify_cmd,
                                               cfg.out / "summary.json",
                                               secrets=(cfg.api_key,)))
    return summary


def _unchanged(ctx: JobContext) -> bool:
    """Whether this run left every finished item as it found it: then results.jsonl and
    the sidecars, written from the store at the end of an earlier run, still hold (a
    resume of a million finished items need not write a million lines twice)."""
    c = ctx.counters
    return not (c.completed or c.failed or c.changed or c.retried or c.redownloads
                or c.not_delivered or c.rebuilt)


def write_views(db: Path, out: Path, summary: dict[str, Any], *,
                captions: bool = False, rewrite: bool = True) -> None:
    """The files people read in the morning, all from the store. Blocking.

    ``failed.jsonl`` and ``summary.json`` must be written; the gallery is a convenience
    whose failure is logged, never the run's. With ``rewrite`` False (the run changed no
    finished item), the sidecars and the gallery an earlier run wrote are left as they are.
    """
    summary["report"] = morning_report(summary, errors=top_errors(db))
    summary["failed_items"] = write_failed(db, out)
    if rewrite or captions or not (out / "images" / METADATA_FILE).exists():
        export_sidecars(db, out, captions=captions)
    try:
        if rewrite or not (out / GALLERY_FILE).exists():
            write_gallery(db, out)
    except Exception:
        logging.getLogger(__name__).exception(
            "the gallery could not be written; run `batchgen gallery %s`", out)
    write_summary(out, summary)


def options_of(cfg: RunConfig) -> dict[str, Any]:
    """The run's options for the runs table, without the key."""
    return {
        "base_url": cfg.base_url, "concurrency": cfg.concurrency,
        "max_concurrency": cfg.max_concurrency, "rpm": cfg.rpm,
        "rate_scope": cfg.rate_scope, "max_cost": cfg.max_cost, "max_items": cfg.max_items,
        "on_expired": cfg.on_expired, "on_in_doubt": cfg.on_in_doubt,
        "retry_failed": cfg.retry_failed, "retry_failed_jobs": cfg.retry_failed_jobs,
        "allow_unknown_params": cfg.allow_unknown_params,
        "submit_until_wall": cfg.submit_until_wall,
    }
