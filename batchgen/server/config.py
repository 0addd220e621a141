"""Settings of the local server: one frozen, keyword-only dataclass, validated when built.

Defaults suit fast tests: short latency, no faults, no rate limit. Every fault is a rate
in 0..1 drawn from a generator seeded by ``rng_seed``, so a failing test replays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from ..manifest.schema import DEFAULT_MODEL

DEMO_API_KEY = "SG_local_demo_key"
# A prompt containing this marker always ends FAILED as a safety block, so a test can aim
# at one item of a batch.
FAIL_MARKER = "[[fail]]"
SAFETY_ERROR = "Content blocked by safety filter (NSFW content detected)"
WORKER_ERROR = "Inference failed: worker crashed while generating"

RpmScope = Literal["submits", "all"]
Pricing = Literal["image", "gpu"]
ERROR_CODES = (500, 502, 503, 504)
DAY_S = 86_400.0
# The reference job that ``latency_s`` and ``cost_per_image`` describe: 20 steps,
# 512 x 512, one sample.
REFERENCE_STEPS = 20
REFERENCE_PIXELS = 512 * 512


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Everything ``batchgen serve`` and ``start_server`` can be told."""

    api_key: str = DEMO_API_KEY
    models: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    retired: tuple[str, ...] = ()

    # Inference time = latency_s * work (steps/20 * pixels/512^2 * samples) * (1 +- jitter).
    workers: int = 4
    latency_s: float = 0.05
    jitter: float = 0.0
    rng_seed: int = 0

    fail_rate: float = 0.0
    fail_prompts: tuple[str, ...] = (FAIL_MARKER,)

    # Retention of v2 records and of account history after them (API-FACTS).
    retention_s: float = 3600.0
    history_retention_s: float = 7 * DAY_S
    history_lag_s: float = 0.0

    rpm: int | None = None
    rpm_scope: RpmScope = "submits"
    # The real API's window is a minute; shorter only to test a 429 cycle quickly.
    rpm_window_s: float = 60.0

    credits: float = 1_000_000.0
    cost_per_image: float = 0.01
    # "image": cost_per_image per sample, whatever the parameters. "gpu": cost_per_image
    # per reference job of GPU work (``work``), as per-GPU-second billing would charge
    # without the jitter: a 40-step 1024x1024 image costs 8 reference images.
    pricing: Pricing = "image"

    error_500_rate: float = 0.0
    error_502_rate: float = 0.0
    error_503_rate: float = 0.0
    error_504_rate: float = 0.0
    drop_before_rate: float = 0.0
    drop_after_rate: float = 0.0
    # Accepted submits (1 = this process's first) always dropped after acceptance, so a
    # test can aim at one submit whatever the rates and the order of the others.
    drop_after_submits: tuple[int, ...] = ()
    truncate_rate: float = 0.0
    slow_rate: float = 0.0
    slow_s: float = 5.0
    non_json_rate: float = 0.0
    garbled_result_rate: float = 0.0
    wrong_result_rate: float = 0.0

    # Rendered PNGs are a few KB at 512x512: a few hundred cost little memory.
    image_cache_size: int = 256

    # Where jobs are kept across restarts (``journal.py``); None keeps them in memory only.
    # The balance then continues from the directory: ``credits`` starts a new one.
    state_dir: Path | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_rate") or f.name == "jitter":
                _check_fraction(f.name, value)
            elif f.name.endswith("_s") or f.name in ("credits", "cost_per_image"):
                _check_non_negative(f.name, value)
        if sum(self.error_rates().values()) > 1.0:
            raise ValueError("error_5xx_rate: the four error rates must sum to at most 1")
        if self.jitter >= 1.0:
            raise ValueError(f"jitter: must be below 1, got {self.jitter!r}")
        if not self.api_key:
            raise ValueError("api_key: must not be empty")
        if self.workers < 1:
            raise ValueError(f"workers: must be at least 1, got {self.workers!r}")
        if self.rpm_window_s <= 0:
            raise ValueError(f"rpm_window_s: must be positive, got {self.rpm_window_s!r}")
        if self.retention_s <= 0:
            raise ValueError(f"retention_s: must be positive, got {self.retention_s!r}")
        if self.rpm is not None and self.rpm < 1:
            raise ValueError(f"rpm: must be at least 1 or None, got {self.rpm!r}")
        if self.pricing not in ("image", "gpu"):
            raise ValueError(f"pricing: must be 'image' or 'gpu', got {self.pricing!r}")
        if self.rpm_scope not in ("submits", "all"):
            raise ValueError(f"rpm_scope: must be 'submits' or 'all', got {self.rpm_scope!r}")
        if self.image_cache_size < 0:
            raise ValueError(f"image_cache_size: must be >= 0, got {self.image_cache_size!r}")
        if any(not isinstance(n, int) or n < 1 for n in self.drop_after_submits):
            raise ValueError("drop_after_submits: every entry must be an integer >= 1")
        for name in ("models", "forbidden", "retired", "fail_prompts"):
            if any(not isinstance(s, str) or not s for s in getattr(self, name)):
                raise ValueError(f"{name}: every entry must be a non-empty string")

    def error_rates(self) -> dict[int, float]:
        """The injected 5xx answers, by status code."""
        return {
            500: self.error_500_rate,
            502: self.error_502_rate,
            503: self.error_503_rate,
            504: self.error_504_rate,
        }

    def price(self, *, samples: int, work: float) -> float:
        """Credits an accepted job costs if it completes (a FAILED job costs nothing)."""
        units = work if self.pricing == "gpu" else samples
        return round(self.cost_per_image * units, 6)

    def known_slugs(self) -> frozenset[str]:
        """Slugs that exist: the default model, ``models``, and the forbidden/retired ones."""
        return frozenset((DEFAULT_MODEL, *self.models, *self.forbidden, *self.retired))


def work(*, steps: int, width: int, height: int, samples: int) -> float:
    """A job's GPU work in reference jobs: what its inference time and "gpu" price scale by."""
    return steps / REFERENCE_STEPS * (width * height) / REFERENCE_PIXELS * samples


def _check_fraction(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: must be a number in 0..1, got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if not isinstance(value, int | float) or math.isnan(value) or value < 0:
        raise ValueError(f"{name}: must be a number >= 0, got {value!r}")
