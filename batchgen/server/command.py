"""``batchgen serve``: run the local Segmind-compatible server until SIGINT/SIGTERM.

The first line printed is the base URL (flushed at once), so a script or test can start
the server with ``--port 0`` and read where it listens. Flags map one-to-one onto
``ServerConfig`` fields:

- ``--api-key`` the one key accepted (401 otherwise); ``--models`` extra known slugs,
  ``--forbidden`` slugs answered 403, ``--retired`` slugs answered 410.
- ``--workers``, ``--latency``, ``--jitter``: the simulated GPU pool; a job takes
  latency * steps/20 * pixels/512^2 * samples * (1 +- jitter) seconds.
- ``--fail-rate`` share of jobs ending FAILED; ``--fail-prompt`` substrings that always
  end FAILED as a safety block (``[[fail]]`` always does).
- ``--retention`` v2 record lifetime, ``--history-retention`` how long history outlives
  it, ``--history-lag`` delay before a job shows in history.
- ``--rpm``/``--rpm-scope`` sliding-minute limit per key, counting submits or all calls.
- ``--credits``/``--cost``/``--pricing`` account balance and prices (406 when short):
  ``image`` charges ``--cost`` per sample; ``gpu`` charges it per reference job of GPU
  work (steps/20 * pixels/512^2 * samples), so the price depends on the parameters.
- ``--state-dir`` keeps jobs, history and balance across restarts (``journal.py``).
- Faults, all seeded by ``--rng-seed`` (details in ``faults.py``): ``--error-50X-rate``
  5xx answers, ``--drop-before-rate``/``--drop-after-rate`` connections closed before or
  after a submit is accepted (``--drop-after-submit N`` aims at one), ``--slow-rate``/
  ``--slow-s`` held answers, ``--truncate-rate`` downloads cut short, ``--non-json-rate``
  text or HTML error bodies, ``--garbled-result-rate``/``--wrong-result-rate`` results
  that are not JSON or describe another job.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from ..errors import UsageError
from .config import DEMO_API_KEY, FAIL_MARKER, ServerConfig

_DEFAULTS = ServerConfig()


def _slugs(values: list[str] | None) -> tuple[str, ...]:
    """Repeated or comma-separated slugs, in order, without duplicates."""
    out: list[str] = []
    for value in values or []:
        out.extend(s.strip() for s in value.split(",") if s.strip())
    return tuple(dict.fromkeys(out))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the serve options to ``parser``."""
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    add("--port", type=int, default=8188, help="port; 0 picks a free one (default %(default)s)")
    add("--api-key", default=DEMO_API_KEY, help="the one accepted x-api-key (default %(default)s)")
    add("--models", action="append", metavar="SLUG", help="extra known slugs (repeatable, or a,b)")
    add("--forbidden", action="append", metavar="SLUG", help="slugs answered 403")
    add("--retired", action="append", metavar="SLUG", help="slugs answered 410")
    add("--workers", type=int, default=_DEFAULTS.workers, help="concurrent jobs")
    add("--latency", type=float, default=_DEFAULTS.latency_s, metavar="S",
        help="inference seconds at 20 steps, 512x512, 1 sample")
    add("--jitter", type=float, default=_DEFAULTS.jitter, help="latency +- fraction, 0..1")
    add("--rng-seed", type=int, default=_DEFAULTS.rng_seed, help="seed of every random draw")
    add("--fail-rate", type=float, default=0.0, help="share of jobs that end FAILED")
    add("--fail-prompt", action="append", metavar="SUBSTRING",
        help=f"prompts containing this end FAILED as a safety block ({FAIL_MARKER} always does)")
    add("--retention", type=float, default=_DEFAULTS.retention_s, metavar="S",
        help="seconds v2 records are kept")
    add("--history-retention", type=float, default=_DEFAULTS.history_retention_s, metavar="S",
        help="seconds history is kept after the v2 record expired")
    add("--history-lag", type=float, default=0.0, metavar="S",
        help="seconds before a job appears in history")
    add("--rpm", type=int, default=None, help="accepted requests per sliding minute per key")
    add("--rpm-scope", choices=("submits", "all"), default="submits",
        help="whether polls count against --rpm")
    add("--rpm-window", type=float, default=_DEFAULTS.rpm_window_s, metavar="S",
        help="length of the sliding window (the real API's is 60 s; shorter for tests)")
    add("--credits", type=float, default=_DEFAULTS.credits, help="account credits")
    add("--cost", type=float, default=_DEFAULTS.cost_per_image,
        help="credits per image (with --pricing gpu: per 20-step 512x512 image's work)")
    add("--pricing", choices=("image", "gpu"), default=_DEFAULTS.pricing,
        help="what a completed job costs: 'image' is --cost per sample whatever the "
             "parameters; 'gpu' is --cost x steps/20 x pixels/512^2 x samples, like "
             "per-GPU-second billing (the cost in metrics and in history follows it; "
             "FAILED jobs cost nothing)")
    add("--state-dir", type=Path, metavar="DIR",
        help="keep jobs, their records, the account history and the balance in DIR, so "
             "they survive a restart: request ids and output file paths stay valid (on "
             "the new address), retention counts by the wall clock, and --credits only "
             "starts a new DIR's balance (default: memory only)")
    for code in (500, 502, 503, 504):
        add(f"--error-{code}-rate", type=float, default=0.0, help=f"share answered {code}")
    add("--drop-before-rate", type=float, default=0.0,
        help="share of API calls whose connection is closed before anything is done")
    add("--drop-after-rate", type=float, default=0.0,
        help="share of accepted submits whose connection is closed before the answer")
    add("--truncate-rate", type=float, default=0.0, help="share of downloads cut short")
    add("--slow-rate", type=float, default=0.0, help="share of API calls held --slow-s")
    add("--slow-s", type=float, default=_DEFAULTS.slow_s, help="delay of a slow answer")
    add("--non-json-rate", type=float, default=0.0,
        help="share of error answers with a text/plain or HTML body")
    add("--drop-after-submit", type=int, action="append", metavar="N",
        help="always drop the connection of the N-th accepted submit (1 = first) after "
             "accepting it (repeatable)")
    add("--garbled-result-rate", type=float, default=0.0,
        help="share of results of COMPLETED jobs answered 200 with JSON cut in half")
    add("--wrong-result-rate", type=float, default=0.0,
        help="share of results of COMPLETED jobs answered with another job's result "
             "(its prompt, seed and images) under the requested id")


def config_from(ns: argparse.Namespace) -> ServerConfig:
    """The ``ServerConfig`` the parsed flags describe."""
    extra = tuple(ns.fail_prompt or ())
    return ServerConfig(
        api_key=ns.api_key,
        models=_slugs(ns.models),
        forbidden=_slugs(ns.forbidden),
        retired=_slugs(ns.retired),
        workers=ns.workers,
        latency_s=ns.latency,
        jitter=ns.jitter,
        rng_seed=ns.rng_seed,
        fail_rate=ns.fail_rate,
        fail_prompts=tuple(dict.fromkeys((FAIL_MARKER, *extra))),
        retention_s=ns.retention,
        history_retention_s=ns.history_retention,
        history_lag_s=ns.history_lag,
        rpm=ns.rpm,
        rpm_scope=ns.rpm_scope,
        rpm_window_s=ns.rpm_window,
        credits=ns.credits,
        cost_per_image=ns.cost,
        pricing=ns.pricing,
        error_500_rate=ns.error_500_rate,
        error_502_rate=ns.error_502_rate,
        error_503_rate=ns.error_503_rate,
        error_504_rate=ns.error_504_rate,
        drop_before_rate=ns.drop_before_rate,
        drop_after_rate=ns.drop_after_rate,
        drop_after_submits=tuple(ns.drop_after_submit or ()),
        truncate_rate=ns.truncate_rate,
        slow_rate=ns.slow_rate,
        slow_s=ns.slow_s,
        non_json_rate=ns.non_json_rate,
        garbled_result_rate=ns.garbled_result_rate,
        wrong_result_rate=ns.wrong_result_rate,
        state_dir=ns.state_dir,
    )


async def _serve(config: ServerConfig, host: str, port: int) -> None:
    from .runner import start_server  # aiohttp.web only when serving

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await start_server(config, host=host, port=port)
    try:
        print(server.base_url, flush=True)
        print(f"api key: {server.api_key}", file=sys.stderr, flush=True)
        if config.state_dir is not None:
            print(f"state dir: {config.state_dir} ({len(server.state.book)} jobs kept)",
                  file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await server.close()


def main(ns: argparse.Namespace) -> int:
    """Run the server until interrupted; returns the exit code."""
    try:
        config = config_from(ns)
    except ValueError as exc:
        raise UsageError(f"serve: {exc}") from exc
    asyncio.run(_serve(config, ns.host, ns.port))
    return 0
