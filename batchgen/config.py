"""Run settings: one frozen, keyword-only dataclass, validated when built.

Defaults live here and nowhere else. Environment variables are read in ``cli.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from batchgen.errors import UsageError

DEFAULT_BASE_URL = "https://api.segmind.com"
DEFAULT_HISTORY_URL = "https://api.spotprod.segmind.com"
# Without --rpm the limiter starts here and discovers the real limit from 429s; the
# Pro plan's documented limit is 50 RPM (API-FACTS, "Rate limits").
DEFAULT_START_RPM = 50.0
# v2 request records live one hour (API-FACTS); stop polling a little before that.
RECORD_RETENTION_S = 3600.0

# Before any job has finished, the first status poll waits this long, then backs off;
# afterwards the timing is learned from finished jobs' metrics (jobs.poll_until_done).
DEFAULT_POLL_FIRST_S = 2.0
# How long an in-doubt submit's job is looked for in the (possibly lagging) history.
DEFAULT_HISTORY_WAIT_S = 20.0
# With --concurrency auto (the default) the jobs in flight follow the rate and the
# learned job times (engine/inflight.py), never above this.
DEFAULT_MAX_CONCURRENCY = 256

# Items one manifest entry may expand to (matrix, zip, templates), at most.
DEFAULT_MAX_EXPANSIONS = 1_000_000

RateScope = Literal["submits", "all"]
Policy = Literal["resubmit", "fail"]
Captions = Literal["none", "txt"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunConfig:
    """Everything one run needs to know; see README "batchgen run" for each option."""

    manifest: Path
    out: Path
    base_url: str = DEFAULT_BASE_URL
    history_url: str | None = None
    api_key: str = field(default="", repr=False)
    # Jobs in flight: None sizes them to the rate and the job times (engine/inflight.py)
    # up to max_concurrency; a number is a hard cap that sizing stays under.
    concurrency: int | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    download_concurrency: int = 8
    rpm: float | None = None
    start_rpm: float = DEFAULT_START_RPM
    rate_scope: RateScope = "submits"
    # The API's sliding window (API-FACTS, "Rate limits"); a setting only for tests.
    rate_window_s: float = 60.0
    max_cost: float | None = None
    max_items: int | None = None
    drain_timeout_s: float = 60.0
    retry_failed_jobs: int = 0
    retry_failed: bool = False
    # A finished item whose parameters changed in the manifest keeps its old result
    # instead of being generated again.
    keep_changed: bool = False
    max_expansions: int = DEFAULT_MAX_EXPANSIONS
    # How messages name the manifest when it is not its path (``-``: "<stdin>").
    manifest_name: str | None = None
    on_expired: Policy = "resubmit"
    on_in_doubt: Policy = "resubmit"
    history_wait_s: float = DEFAULT_HISTORY_WAIT_S
    max_image_mb: float = 64.0
    request_timeout_s: float = 60.0
    # Backoff of retried calls: full jitter from this base, doubling (retry.py).
    retry_base_delay_s: float = 0.5
    poll_first_s: float = DEFAULT_POLL_FIRST_S
    poll_min_s: float = 0.05
    poll_cap_s: float = 30.0
    record_retention_s: float = RECORD_RETENTION_S
    submit_until_wall: float | None = None
    allow_unknown_params: bool = False
    log_every_s: float = 30.0
    progress: bool | None = None
    # A shell command run at the end with the summary (reports.run_notify); its failure
    # never fails the run.
    notify_cmd: str | None = None
    # A Prometheus text file rewritten every log_every_s and at the end (report/metrics.py).
    metrics_file: Path | None = None
    seed: int | None = None
    # Stored URLs name the server that answered then; an embedded (--local) server comes
    # back on another port, so its stored URLs are moved to the current base URL.
    rebase_stored_urls: bool = False
    # Metadata in each image (batchgen.metadata): the infotext and batchgen's record.
    embed: bool = True
    captions: Captions = "none"

    def __post_init__(self) -> None:
        positive = {
            "max_concurrency": self.max_concurrency,
            "download_concurrency": self.download_concurrency,
            "start_rpm": self.start_rpm,
            "rate_window_s": self.rate_window_s,
            "max_image_mb": self.max_image_mb,
            "request_timeout_s": self.request_timeout_s,
            "retry_base_delay_s": self.retry_base_delay_s,
            "poll_first_s": self.poll_first_s,
            "poll_min_s": self.poll_min_s,
            "poll_cap_s": self.poll_cap_s,
            "record_retention_s": self.record_retention_s,
            "log_every_s": self.log_every_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise UsageError(f"{name} must be greater than 0, got {value}")
        optional_positive = {"rpm": self.rpm, "max_cost": self.max_cost,
                             "max_items": self.max_items, "concurrency": self.concurrency}
        for name, opt in optional_positive.items():
            if opt is not None and not opt > 0:
                raise UsageError(f"{name} must be greater than 0, got {opt}")
        if self.drain_timeout_s < 0 or self.retry_failed_jobs < 0:
            raise UsageError("drain_timeout_s and retry_failed_jobs must not be negative")
        if self.rate_scope not in ("submits", "all"):
            raise UsageError(f"rate_scope must be 'submits' or 'all', got {self.rate_scope!r}")
        for name, policy in (("on_expired", self.on_expired), ("on_in_doubt", self.on_in_doubt)):
            if policy not in ("resubmit", "fail"):
                raise UsageError(f"{name} must be 'resubmit' or 'fail', got {policy!r}")
        if self.captions not in ("none", "txt"):
            raise UsageError(f"captions must be 'none' or 'txt', got {self.captions!r}")
        if not self.base_url.startswith(("http://", "https://")):
            raise UsageError(f"base_url must be an http(s) URL, got {self.base_url!r}")

    @property
    def max_in_flight(self) -> int:
        """The cap on jobs in flight: ``concurrency`` when given, else ``max_concurrency``."""
        return self.concurrency if self.concurrency is not None else self.max_concurrency

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 1024 * 1024)

    @property
    def state_dir(self) -> Path:
        return self.out / ".batchgen"

    @property
    def images_dir(self) -> Path:
        return self.out / "images"
