"""Command line: argv -> settings -> work; errors -> exit codes; logging setup.

Environment variables are read here and nowhere else.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from batchgen import config, errors
from batchgen._version import __version__
from batchgen.config import RunConfig
from batchgen.manifest.reader import ManifestReader
from batchgen.report import status
from batchgen.report.summary import describe

log = logging.getLogger("batchgen")

# Exit codes, most specific class first. Documented in README "Exit codes".
EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_USAGE = 2
EXIT_FATAL_API = 3
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (errors.UsageError, EXIT_USAGE),
    (errors.ManifestError, EXIT_USAGE),
    (errors.OutputLockedError, EXIT_LOCKED),
    (errors.FatalApiError, EXIT_FATAL_API),
    (errors.BatchgenError, EXIT_ITEMS_FAILED),
)

MAX_PROBLEMS_SHOWN = 50


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error that ended the command."""
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_ITEMS_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchgen",
        description="Turn a manifest of image prompts into images through Segmind's v2 API.",
    )
    parser.add_argument("--version", action="version", version=f"batchgen {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = sub.add_parser("validate", help="check a manifest without sending anything")
    validate.add_argument("manifest", help="YAML or JSONL manifest")
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.add_argument("--allow-unknown-params", action="store_true",
                          help="send parameters the model schema does not know")
    validate.set_defaults(handler=_cmd_validate)

    _add_run_parser(sub)
    status = sub.add_parser("status", help="show a run's state from its output directory")
    status.add_argument("out", help="the output directory of a run")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=_cmd_status)

    gallery = sub.add_parser("gallery", help="write OUT/gallery.html from a run's store")
    gallery.add_argument("out", help="the output directory of a run")
    gallery.set_defaults(handler=_cmd_gallery)

    from batchgen.metadata import command as import_command

    images = sub.add_parser("import", help="read the parameters embedded in images back "
                            "into a JSONL manifest")
    import_command.add_arguments(images)
    images.set_defaults(handler=import_command.main)

    from batchgen.server import command as serve_command

    serve = sub.add_parser("serve", help="run a local Segmind-compatible v2 server")
    serve_command.add_arguments(serve)
    serve.set_defaults(handler=serve_command.main)
    return parser


def _add_run_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="generate every image of a manifest (resumes by itself)")
    run.add_argument("manifest", help="YAML or JSONL manifest")
    run.add_argument("-o", "--out", help="output directory (default: out/<manifest name>)")
    run.add_argument("--base-url", help=f"API base URL (env SEGMIND_BASE_URL; default "
                                        f"{config.DEFAULT_BASE_URL})")
    run.add_argument("--history-url", help="account-history API base URL "
                                           "(env SEGMIND_HISTORY_URL)")
    run.add_argument("--api-key-file", help="read the API key from this file "
                                            "(else env SEGMIND_API_KEY)")
    run.add_argument("--local", action="store_true",
                     help="start the embedded local server and run against it (no key)")
    run.add_argument("--concurrency", type=int, default=16, help="jobs in flight at most")
    run.add_argument("--download-concurrency", type=int, default=8,
                     help="simultaneous downloads at most")
    run.add_argument("--rpm", type=float, help="your plan's requests per minute; without it "
                     f"the limit is discovered from {config.DEFAULT_START_RPM:g} RPM")
    run.add_argument("--rate-scope", choices=("submits", "all"), default="submits",
                     help="which requests count against --rpm")
    run.add_argument("--max-cost", type=float, help="stop submitting before spending more")
    run.add_argument("--max-items", type=int, help="submit at most N new items (trial runs)")
    run.add_argument("--drain-timeout", type=float, default=60.0,
                     help="seconds to finish in-flight work after SIGINT/SIGTERM")
    run.add_argument("--retry-failed-jobs", type=int, default=0,
                     help="resubmit a job that ended FAILED up to K times")
    run.add_argument("--retry-failed", action="store_true",
                     help="also run items that failed in earlier runs")
    run.add_argument("--on-expired", choices=("resubmit", "fail"), default="resubmit")
    run.add_argument("--on-in-doubt", choices=("resubmit", "fail"), default="resubmit")
    run.add_argument("--max-image-mb", type=float, default=64.0)
    run.add_argument("--poll-first", type=float, default=config.DEFAULT_POLL_FIRST_S, metavar="S",
                     help="seconds before the first status poll, until job times are learned")
    run.add_argument("--history-wait", type=float, default=config.DEFAULT_HISTORY_WAIT_S,
                     metavar="S", help="how long to look in the history for an in-doubt "
                     "submit's job before resending it")
    deadline = run.add_mutually_exclusive_group()
    deadline.add_argument("--stop-submitting-at", metavar="HH:MM",
                          help="local time after which nothing new is submitted")
    deadline.add_argument("--submit-for", metavar="DURATION",
                          help="submit for this long (e.g. 7h30m), then drain")
    run.add_argument("--log-every", type=float, default=30.0,
                     help="seconds between progress lines when not on a terminal")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--notify-cmd", metavar="CMD",
                     help="shell command run at the end: summary path in $BATCHGEN_SUMMARY, "
                     "the morning report on stdin; its failure never fails the run")
    run.add_argument("--no-embed", action="store_true",
                     help="write images as the server sent them, without infotext")
    run.add_argument("--captions", choices=("none", "txt"), default="none",
                     help="txt: write <image>.txt with the prompt beside each image")
    run.add_argument("--allow-unknown-params", action="store_true")
    run.set_defaults(handler=_cmd_run)


def _run_config(ns: argparse.Namespace, env: Mapping[str, str]) -> RunConfig:
    base_url = ns.base_url or env.get("SEGMIND_BASE_URL") or config.DEFAULT_BASE_URL
    history_url = ns.history_url or env.get("SEGMIND_HISTORY_URL") or (
        config.DEFAULT_HISTORY_URL if base_url == config.DEFAULT_BASE_URL else base_url)
    manifest = Path(ns.manifest)
    return RunConfig(
        manifest=manifest,
        out=Path(ns.out) if ns.out else Path("out") / manifest.stem,
        base_url=base_url,
        history_url=history_url,
        api_key="" if ns.local else _api_key(ns, env),
        concurrency=ns.concurrency,
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
        submit_until_wall=_deadline(ns, time.time()),
        log_every_s=ns.log_every,
        progress=False if ns.no_progress else None,
        allow_unknown_params=ns.allow_unknown_params,
        notify_cmd=ns.notify_cmd,
        embed=not ns.no_embed,
        captions=ns.captions,
    )


def _api_key(ns: argparse.Namespace, env: Mapping[str, str]) -> str:
    if ns.api_key_file:
        try:
            key = Path(ns.api_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise errors.UsageError(f"cannot read --api-key-file {ns.api_key_file}: "
                                    f"{exc.strerror or exc}") from None
    else:
        key = env.get("SEGMIND_API_KEY", "").strip()
    if not key:
        raise errors.UsageError("no API key: set SEGMIND_API_KEY or pass --api-key-file "
                                "(or use --local for the embedded server)")
    return key


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90``, ``45m``, ``7h30m`` or ``1h5m30s``."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
                         r"(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not match or not any(match.groups()):
        raise errors.UsageError(f"--submit-for: not a duration: {text!r} (try 7h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def next_clock_time(text: str, now: float) -> float:
    """The next local wall time ``HH:MM`` after ``now``, as epoch seconds."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise errors.UsageError(f"--stop-submitting-at: not a time HH:MM: {text!r}")
    current = datetime.fromtimestamp(now)
    target = current.replace(hour=int(match[1]), minute=int(match[2]), second=0,
                             microsecond=0)
    if target.timestamp() <= now:
        target += timedelta(days=1)
    return target.timestamp()


def _deadline(ns: argparse.Namespace, now: float) -> float | None:
    if ns.stop_submitting_at:
        return next_clock_time(ns.stop_submitting_at, now)
    if ns.submit_for:
        return now + parse_duration(ns.submit_for)
    return None


def _cmd_run(ns: argparse.Namespace) -> int:
    from batchgen.engine import run as api  # the engine and aiohttp: only for commands that run it

    cfg = _run_config(ns, os.environ)
    summary = anyio.run(partial(api.run, cfg.manifest, out=cfg.out, local=ns.local,
                                handle_signals=True, **_options(cfg)))
    print(describe(summary), end="")
    print(f"images: {cfg.images_dir}  results: {cfg.out / 'results.jsonl'}  "
          f"summary: {cfg.out / 'summary.json'}")
    if summary.get("failed_items"):
        print(f"failed items, as a manifest: {cfg.out / 'failed.jsonl'}")
    print(f"gallery: {cfg.out / 'gallery.html'}")
    code: int = summary["exit_code"]
    return code


def _options(cfg: RunConfig) -> dict[str, Any]:
    skip = {"manifest", "out"}
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in skip}


def _cmd_status(ns: argparse.Namespace) -> int:
    report = status.read_status(Path(ns.out))
    print(json.dumps(report, indent=2) if ns.json else status.describe_status(report))
    return EXIT_OK


def _cmd_gallery(ns: argparse.Namespace) -> int:
    from batchgen.report.gallery import write_gallery

    out = Path(ns.out)
    db = out / ".batchgen" / "state.db"
    if not db.exists():
        raise errors.UsageError(f"{out} holds no batchgen run (no {db})")
    print(write_gallery(db, out))
    return EXIT_OK


def _problem_dict(problem: errors.Problem) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "item": problem.item,
        "field": problem.field,
        "severity": problem.severity,
        "message": problem.message,
    }


def _cmd_validate(ns: argparse.Namespace) -> int:
    reader = ManifestReader(ns.manifest, allow_unknown_params=ns.allow_unknown_params)
    reader.check()
    shown = reader.problems[:MAX_PROBLEMS_SHOWN]
    if ns.json:
        report = {
            "manifest": ns.manifest,
            "valid": reader.valid,
            "entries": reader.entries,
            "requests": reader.requests,
            "images": reader.images,
            "models": {m: {"requests": c.requests, "images": c.images}
                       for m, c in sorted(reader.counts.items())},
            "errors": reader.errors,
            "warnings": reader.warnings,
            "problems": [_problem_dict(p) for p in shown],
        }
        print(json.dumps(report, indent=2))
    else:
        for problem in shown:
            print(problem, file=sys.stderr)
        hidden = reader.errors + reader.warnings - len(shown)
        if hidden > 0:
            print(f"... and {hidden} more problems not shown", file=sys.stderr)
        for model, counts in sorted(reader.counts.items()):
            print(f"{model}: {counts.requests} requests, {counts.images} images")
        verdict = "valid" if reader.valid else "INVALID"
        print(
            f"{ns.manifest}: {verdict}: {reader.entries} entries, {reader.requests} requests, "
            f"{reader.images} images; {reader.errors} errors, {reader.warnings} warnings"
        )
    return EXIT_OK if reader.valid else EXIT_USAGE


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Progress lines are what a cron log is for: shown without -v.
    logging.getLogger("batchgen.report.progress").setLevel(min(level, logging.INFO))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``batchgen`` command; returns the exit code."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    _setup_logging(ns.verbose)
    try:
        code: int = ns.handler(ns)
    except errors.ManifestError as exc:
        for problem in exc.problems[:MAX_PROBLEMS_SHOWN]:
            print(problem, file=sys.stderr)
        hidden = exc.total - min(len(exc.problems), MAX_PROBLEMS_SHOWN)
        if hidden > 0:
            print(f"... and {hidden} more problems not shown", file=sys.stderr)
        noun = "error" if exc.total == 1 else "errors"
        print(f"batchgen: the manifest has {exc.total} {noun}; nothing was sent "
              "(`batchgen validate` lists them too)", file=sys.stderr)
        return exit_code_for(exc)
    except errors.BatchgenError as exc:
        print(f"batchgen: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except OSError as exc:
        # Disk full, read-only OUT, a path that is a file: say which, no traceback. The
        # checkpoint commits whole transactions, so the next run resumes from it.
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"batchgen: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code
