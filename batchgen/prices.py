"""What a job will cost, learned from jobs already paid for: a price model fitted to them.

A price may depend on the parameters: per-GPU-second billing charges for steps x pixels
x samples, a flat price per image does not. Each candidate says cost = rate x units:

    request   1 per job, whatever it asks
    image     samples
    steps     steps/20 x samples
    pixels    pixels/512^2 x samples
    work      steps/20 x pixels/512^2 x samples (GPU time)

Units are counted against a reference job (20 steps, 512 x 512, one sample: the model's
defaults), so every rate reads "credits per reference image". The rate of a candidate is
the observed total cost over its total units (the observed jobs' bill is reproduced
exactly), and its error is the root mean square of the relative misses on each job.
The candidate with the smallest error explains the observations best. Candidates within
``TIE`` of it cannot be told apart by these jobs (they all had the same size, say): the
estimate of a manifest is then the dearest of them, and says so, since a bill lower than
planned hurts nobody.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchgen.manifest.schema import schema_for

KINDS = ("request", "image", "steps", "pixels", "work")
DESCRIPTIONS = {
    "request": "per request",
    "image": "per image",
    "steps": "per image step (steps x samples)",
    "pixels": "per image pixel (pixels x samples)",
    "work": "per unit of work (steps x pixels x samples)",
}
REFERENCE_STEPS = 20
REFERENCE_PIXELS = 512 * 512
# Relative RMS error within which two candidates explain the jobs equally well.
TIE = 0.01

Units = tuple[float, float, float, float, float]  # in the order of KINDS
NO_UNITS: Units = (0.0, 0.0, 0.0, 0.0, 0.0)


def _positive(value: Any, default: float) -> float:
    if isinstance(value, bool):
        return default
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return default
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return float(value)
    return default


def units_of(model: str, params: Mapping[str, Any]) -> Units:
    """The units of one job of ``model`` with ``params`` (the model's defaults filled in;
    values that are missing or not numbers count as the reference's)."""
    full = schema_for(model).with_defaults(params)
    samples = _positive(full.get("samples"), 1.0)
    steps = _positive(full.get("num_inference_steps"), REFERENCE_STEPS) / REFERENCE_STEPS
    pixels = (_positive(full.get("img_width"), 512) * _positive(full.get("img_height"), 512)
              / REFERENCE_PIXELS)
    return (1.0, samples, steps * samples, pixels * samples, steps * pixels * samples)


def add(a: Units, b: Units) -> Units:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4])


@dataclass(frozen=True, slots=True)
class Fit:
    """One candidate: its rate (credits per unit) and how well it explains the jobs."""

    kind: str
    rate: float
    error: float  # root mean square of relative misses; 0 is a perfect fit


@dataclass(frozen=True, slots=True)
class Estimate:
    """Credits for some work, by the candidate used, with the cheapest tied reading."""

    credits: float
    kind: str
    low: float  # the cheapest candidate the jobs cannot rule out (== credits when one fits)


@dataclass(frozen=True, slots=True)
class PriceModel:
    """Candidates fitted to observed jobs, best first."""

    fits: tuple[Fit, ...]

    @property
    def best(self) -> Fit:
        return self.fits[0]

    @property
    def tied(self) -> tuple[Fit, ...]:
        """The candidates these jobs cannot tell from the best."""
        return tuple(f for f in self.fits if f.error <= self.best.error + TIE)

    def get(self, kind: str) -> Fit:
        return next(f for f in self.fits if f.kind == kind)

    def estimate(self, units: Units) -> Estimate:
        """Credits for work of ``units``: the dearest candidate still in the running."""
        readings = [(f.rate * units[KINDS.index(f.kind)], f.kind) for f in self.tied]
        credits, kind = max(readings)
        return Estimate(credits, kind, min(r for r, _ in readings))

    @classmethod
    def flat(cls, per_image: float) -> PriceModel:
        """A price given by hand: credits per image."""
        return cls((Fit("image", per_image, 0.0),))


def fit(jobs: Sequence[tuple[Units, float]]) -> PriceModel | None:
    """The candidates fitted to ``jobs`` (units, cost), best first; None without jobs."""
    if not jobs:
        return None
    fits = []
    for index, kind in enumerate(KINDS):
        total_units = sum(u[index] for u, _ in jobs)
        rate = sum(cost for _, cost in jobs) / total_units if total_units else 0.0
        misses = [(rate * u[index] - cost) / cost for u, cost in jobs if cost > 0]
        error = math.sqrt(sum(m * m for m in misses) / len(misses)) if misses else 0.0
        fits.append(Fit(kind, rate, error))
    # Stable: on equal errors the simpler candidate (earlier in KINDS) comes first.
    return PriceModel(tuple(sorted(fits, key=lambda f: f.error)))


def observed(jobs: Iterable[tuple[str, Mapping[str, Any], float]]) -> list[tuple[Units, float]]:
    """(model, params, cost) of paid jobs as (units, cost) for ``fit``."""
    return [(units_of(model, params), cost) for model, params, cost in jobs]
