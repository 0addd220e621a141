"""``batchgen run``: flags -> ``RunConfig`` -> the engine; the summary printed, the metrics
file finished with the exit code."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from batchgen import config, errors
from batchgen.cli import keys, times
from batchgen.cli.exits import exit_code_for
from batchgen.cli.output import say
from batchgen.cli.parsing import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    refuse_key_flags,
)
from batchgen.config import RunConfig
from batchgen.manifest.files import spooled_stdin
from batchgen.report import logs
from batchgen.report.metrics import MetricsFile
from batchgen.report.snapshot import from_summary
from batchgen.report.summary import describe

log = logging.getLogger(__name__)
_DEFAULTS = RunConfig(manifest=Path("-"), out=Path("-"))


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="generate every image of a manifest (resumes by itself)",
                         description="Generate every image of a manifest into OUT; the same "
                         "command resumes an interrupted run.")
    add = run.add_argument
    add("manifest", help="YAML or JSONL manifest (- reads standard input)")
    add("-o", "--out", help="output directory (default: out/<manifest name>)")
    add_api_flags(run)
    add("--local", action="store_true",
        help="start the embedded local server and run against it (no key)")
    add("--concurrency", type=_concurrency, default=None, metavar="auto|N",
        help="jobs in flight: auto follows the rate and the learned job times, up to "
        "--max-concurrency; N is a hard cap (default: auto)")
    add("--max-concurrency", type=positive_int, default=_DEFAULTS.max_concurrency,
        metavar="N", help="the most jobs in flight auto may reach")
    add("--download-concurrency", type=positive_int, default=_DEFAULTS.download_concurrency,
        metavar="N", help="simultaneous downloads at most")
    add("--rpm", type=positive_float, metavar="R", help="your plan's requests per minute; "
        f"without it the limit is discovered from {config.DEFAULT_START_RPM:g} RPM")
    add("--rate-scope", choices=("submits", "all"), default=_DEFAULTS.rate_scope,
        help="which requests count against --rpm")
    add("--max-cost", type=positive_float, metavar="C",
        help="stop submitting before this run's spend could pass C credits")
    add("--max-items", type=positive_int, metavar="N", help="submit at most N new items")
    add("--drain-timeout", type=non_negative_float, default=_DEFAULTS.drain_timeout_s,
        metavar="S", help="seconds to finish in-flight work after SIGINT/SIGTERM")
    add("--retry-failed-jobs", type=non_negative_int, default=_DEFAULTS.retry_failed_jobs,
        metavar="K", help="resubmit a job that ended FAILED up to K times")
    add("--retry-failed", action="store_true", help="also run items that failed in earlier runs")
    add("--on-expired", choices=("resubmit", "fail"), default=_DEFAULTS.on_expired,
        help="a job whose record expired before it was fetched, and the history has not")
    add("--on-in-doubt", choices=("resubmit", "fail"), default=_DEFAULTS.on_in_doubt,
        help="a submit whose outcome is unknown and that the history does not show")
    add("--max-image-mb", type=positive_float, default=_DEFAULTS.max_image_mb, metavar="M",
        help="larger downloads are cut off and retried")
    add("--poll-first", type=positive_float, default=_DEFAULTS.poll_first_s, metavar="S",
        help="seconds before the first status poll, until job times are learned")
    add("--history-wait", type=non_negative_float, default=_DEFAULTS.history_wait_s,
        metavar="S", help="how long to look in the history for an in-doubt submit's job "
        "before resending it")
    deadline = run.add_mutually_exclusive_group()
    deadline.add_argument("--stop-submitting-at", metavar="HH:MM",
                          help="local time after which nothing new is submitted")
    deadline.add_argument("--submit-for", metavar="DURATION",
                          help="submit for this long (e.g. 7h30m), then drain")
    add("--log-every", type=positive_float, default=_DEFAULTS.log_every_s, metavar="S",
        help="seconds between progress lines when not on a terminal, and between rewrites "
        "of --metrics-file")
    add("--no-progress", action="store_true", help="no progress bar")
    add("--metrics-file", metavar="PATH", help="Prometheus text file for node_exporter's "
        "textfile collector, rewritten atomically every --log-every seconds and at the end")
    add("--notify-cmd", metavar="CMD", help="shell command run at the end: summary path in "
        "$BATCHGEN_SUMMARY, the morning report on stdin; its failure never fails the run")
    add("--allow-unknown-params", action="store_true",
        help="send parameters the model schema does not know")
    add("--max-expansions", type=positive_int, default=_DEFAULTS.max_expansions, metavar="N",
        help="the most items one manifest entry may expand to (matrix, zip, templates)")
    add("--keep-changed", action="store_true", help="keep the result of a finished item "
        "whose parameters changed in the manifest, instead of generating it again")
    add("--no-embed", action="store_true",
        help="write images as the server sent them, without infotext")
    add("--captions", choices=("none", "txt"), default=_DEFAULTS.captions,
        help="txt: write <image>.txt with the prompt beside each image")
    refuse_key_flags(run)
    run.set_defaults(handler=command)


def _concurrency(text: str) -> int | None:
    """``--concurrency``: ``auto`` (None: sized by engine/inflight.py) or a cap."""
    return None if text.strip().lower() == "auto" else positive_int(text)


def add_api_flags(parser: argparse.ArgumentParser) -> None:
    """Where the API and its account history are, and where the key comes from."""
    add = parser.add_argument
    add("--base-url", help="API base URL (env SEGMIND_BASE_URL; default "
        f"{config.DEFAULT_BASE_URL})")
    add("--history-url", help="account-history API base URL (env SEGMIND_HISTORY_URL)")
    add("--api-key-file", metavar="FILE", help=f"read the API key from FILE (else env "
        f"{keys.KEY_ENV}); the key is never taken on the command line")


def out_dir(ns: argparse.Namespace) -> Path:
    stem = "stdin" if ns.manifest == "-" else Path(ns.manifest).stem
    return Path(ns.out) if ns.out else Path("out") / stem


def api_urls(ns: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, str]:
    """The v2 API's base URL and the account history's, from the flags or the
    environment; the history is Segmind's own host only for Segmind's API."""
    base_url = ns.base_url or env.get("SEGMIND_BASE_URL") or config.DEFAULT_BASE_URL
    history_url = ns.history_url or env.get("SEGMIND_HISTORY_URL") or (
        config.DEFAULT_HISTORY_URL if base_url == config.DEFAULT_BASE_URL else base_url)
    return base_url, history_url


def run_config(ns: argparse.Namespace, env: Mapping[str, str]) -> RunConfig:
    base_url, history_url = api_urls(ns, env)
    return RunConfig(
        manifest=Path(ns.manifest),
        out=out_dir(ns),
        base_url=base_url,
        history_url=history_url,
        api_key="" if ns.local else keys.api_key(ns.api_key_file, env),
        concurrency=ns.concurrency,
        max_concurrency=ns.max_concurrency,
        download_concurrency=ns.download_concurrency,
        rpm=ns.rpm,
        rate_scope=ns.rate_scope,
        max_cost=ns.max_cost,
        max_items=ns.max_items,
        drain_timeout_s=ns.drain_timeout,
        retry_failed_jobs=ns.retry_failed_jobs,
        retry_failed=ns.retry_failed,
        on_expired=ns.on_expired,
        on_in_doubt=ns.on_in_doubt,
        max_image_mb=ns.max_image_mb,
        poll_first_s=ns.poll_first,
        history_wait_s=ns.history_wait,
        submit_until_wall=times.deadline(ns.stop_submitting_at, ns.submit_for, time.time()),
        log_every_s=ns.log_every,
        # JSON logs are for machines: progress comes as JSON lines, never as a bar.
        progress=False if ns.no_progress or ns.log_format == "json" else None,
        allow_unknown_params=ns.allow_unknown_params,
        notify_cmd=ns.notify_cmd,
        metrics_file=Path(ns.metrics_file) if ns.metrics_file else None,
        keep_changed=ns.keep_changed,
        max_expansions=ns.max_expansions,
        embed=not ns.no_embed,
        captions=ns.captions,
    )


def _options(cfg: RunConfig) -> dict[str, Any]:
    skip = {"manifest", "out"}
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in skip}


def command(ns: argparse.Namespace) -> int:
    if ns.manifest == "-":  # read more than once: spooled to a file for the run's life
        with spooled_stdin() as path:
            return _command(argparse.Namespace(**{**vars(ns), "manifest": str(path),
                                                  "out": str(out_dir(ns))}), "<stdin>")
    return _command(ns, None)


def _command(ns: argparse.Namespace, name: str | None) -> int:
    from batchgen.engine import run as api  # the engine and aiohttp: only for commands that run it

    metrics = MetricsFile(Path(ns.metrics_file), out=out_dir(ns)) if ns.metrics_file else None
    try:
        try:
            cfg = dataclasses.replace(run_config(ns, os.environ), manifest_name=name)
        except errors.UsageError:
            _manifest_first(ns)  # a bad manifest is the first thing to fix, key or not
            raise
        # The key is read: no child of this run (the notify command) may inherit it.
        keys.scrub_environment(os.environ, [cfg.api_key,
                                            os.environ.get(keys.KEY_ENV, "").strip()])
        summary = anyio.run(partial(api.run, cfg.manifest, out=cfg.out, local=ns.local,
                                    handle_signals=True, **_options(cfg)))
    except errors.OutputLockedError:
        raise  # the live run owns the metrics file
    except BaseException as exc:
        if metrics is not None:
            _finish_metrics(metrics, None, exit_code_for(exc))
        raise
    code: int = summary["exit_code"]
    if metrics is not None:
        _finish_metrics(metrics, summary, code)
    say(describe(summary), end="")
    say(f"images: {cfg.images_dir}  results: {cfg.out / 'results.jsonl'}  "
        f"summary: {cfg.out / 'summary.json'}")
    if summary.get("failed_items"):
        say(f"failed items, as a manifest: {cfg.out / 'failed.jsonl'}")
    say(f"gallery: {cfg.out / 'gallery.html'}")
    return code


def _manifest_first(ns: argparse.Namespace) -> None:
    """Raise the manifest's errors, if it has any, before a usage error of the flags."""
    from batchgen.engine.prepare import validate

    manifest = Path(ns.manifest)
    if manifest.is_file():
        validate(RunConfig(manifest=manifest, out=out_dir(ns),
                           allow_unknown_params=ns.allow_unknown_params))


def _finish_metrics(metrics: MetricsFile, summary: dict[str, Any] | None, code: int) -> None:
    snap = None if summary is None else from_summary(summary)
    try:
        metrics.finish(snap, exit_code=code, ended=(snap.wall if snap else 0.0) or time.time())
    except OSError as exc:
        log.warning("cannot write the metrics file %s: %s", metrics.path, exc.strerror or exc,
                    extra=logs.fields("metrics.write_failed"))
