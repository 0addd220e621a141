"""The price model of `batchgen plan`, and its time at the rate: pure logic on numbers."""

from __future__ import annotations

import random
from typing import Any

import pytest

from batchgen.prices import PriceModel, fit, observed, units_of
from batchgen.report.plan import Tally, rate, timing

MODEL = "sd1.5-epicrealism"
SHAPES: list[dict[str, Any]] = [
    {"prompt": "a"},
    {"prompt": "b", "num_inference_steps": 40, "samples": 2},
    {"prompt": "c", "img_width": 1024, "img_height": 768},
    {"prompt": "d", "num_inference_steps": 30, "img_height": 1024, "samples": 3},
]
BIG = {"prompt": "x", "num_inference_steps": 40, "img_width": 1024, "img_height": 1024}


def work(params: dict[str, Any]) -> float:
    full = {"num_inference_steps": 20, "img_width": 512, "img_height": 512, "samples": 1,
            **params}
    return (full["num_inference_steps"] / 20 * full["img_width"] * full["img_height"]
            / 512 ** 2 * full["samples"])


def model_of(jobs: list[tuple[dict[str, Any], float]]) -> PriceModel:
    fitted = fit(observed((MODEL, params, cost) for params, cost in jobs))
    assert fitted is not None
    return fitted


@pytest.mark.parametrize(
    ("price", "kind"),
    [
        (lambda p: 0.01 * work(p), "work"),
        (lambda p: 0.02 * p.get("samples", 1), "image"),
        (lambda p: 0.5, "request"),
        (lambda p: 0.01 * p.get("num_inference_steps", 20) / 20 * p.get("samples", 1), "steps"),
    ],
)
def test_the_candidate_that_priced_the_jobs_wins(price: Any, kind: str) -> None:
    """Jobs priced by one rule are explained best, and alone, by that rule."""
    fitted = model_of([(p, price(p)) for p in SHAPES])
    assert (fitted.best.kind, [f.kind for f in fitted.tied]) == (kind, [kind])
    assert fitted.estimate(units_of(MODEL, BIG)).credits == pytest.approx(price(BIG))


def test_jobs_that_cannot_tell_plan_with_the_dearest() -> None:
    """Jobs all of one shape fit every candidate: a 40-step 1024x1024 image is planned at
    8 reference images (work), and the cheapest reading is given beside it."""
    fitted = model_of([({"prompt": f"p{i}"}, 0.1) for i in range(3)])
    assert len(fitted.tied) == 5
    estimate = fitted.estimate(units_of(MODEL, BIG))
    assert (estimate.kind, estimate.credits, estimate.low) == ("work", pytest.approx(0.8),
                                                               pytest.approx(0.1))


def test_noisy_gpu_prices_still_fit_work() -> None:
    """Prices that vary +-5% around GPU work still choose work, and the total holds."""
    rng = random.Random(3)
    shapes = SHAPES * 10
    fitted = model_of([(p, 0.01 * work(p) * rng.uniform(0.95, 1.05)) for p in shapes])
    assert fitted.best.kind == "work" and fitted.best.error < 0.05
    assert fitted.estimate(units_of(MODEL, BIG)).credits == pytest.approx(0.08, rel=0.03)


def test_free_jobs_and_no_jobs() -> None:
    """Jobs that cost nothing price at zero; no job at all gives no model."""
    assert model_of([({"prompt": "a"}, 0.0)]).estimate(units_of(MODEL, BIG)).credits == 0.0
    assert fit([]) is None


@pytest.mark.parametrize(
    ("model", "params", "units"),
    [
        (MODEL, {"prompt": "a"}, (1, 1, 1, 1, 1)),
        (MODEL, {"samples": 2, "img_width": 1024}, (1, 2, 2, 4, 4)),
        # Numbers sent as text (another client's history row) are read; junk is ignored.
        (MODEL, {"num_inference_steps": "40", "img_height": "tall"}, (1, 1, 2, 1, 2)),
        # A model without a parameter table counts as the reference job.
        ("some-other-model", {"prompt": "a"}, (1, 1, 1, 1, 1)),
    ],
)
def test_units_of(model: str, params: dict[str, Any], units: tuple[float, ...]) -> None:
    """Units against the 20-step 512x512 one-sample reference, the model's defaults filled in."""
    assert units_of(model, params) == pytest.approx(units)


def test_time_at_the_rate_counts_polls_when_they_count() -> None:
    """--rate-scope all adds polls and a result GET per job, those in flight too; the time
    is given in nights of --submit-for."""
    tally = Tally(to_send=100, unpaid_jobs=20)
    measured = rate(rpm=None, scope="all", summaries=[
        {"rate": {"rpm_limit": None, "rpm_at_end": 40.0},
         "this_run": {"status_polls": 150, "result_fetches": 100}}])
    assert (measured.rpm, measured.polls_per_job) == (40.0, 1.5)
    figures = timing(tally, measured, submit_for_s=1800.0)
    assert figures["requests"] == 100 + 120 * 2.5
    assert figures["hours"] == pytest.approx(400 / 40 / 60, abs=1e-3)
    # 400 requests at 40 RPM: 600 s, a third of a 30-minute night.
    assert (figures["nights"], figures["nights_needed"]) == (pytest.approx(1 / 3, abs=1e-3), 1)
    submits = timing(tally, rate(rpm=10.0, scope="submits", summaries=[]), None)
    assert (submits["requests"], submits["rpm_source"], submits["nights"]) == (100, "--rpm",
                                                                               None)


def test_rate_without_rpm_or_runs_is_the_documented_limit() -> None:
    """No --rpm and no earlier run: 50 RPM, the Pro plan's limit, and polls assumed."""
    assumed = rate(rpm=None, scope="all", summaries=[])
    assert assumed.rpm == 50.0 and "assumed" in assumed.polls_source
