"""--max-cost: reservations, prices learned per model and by parameters, freed money."""

from __future__ import annotations

import anyio
import pytest
from test_jobs import settle

from batchgen.engine.budget import Budget
from batchgen.manifest.item import Item

SMALL = Item("s", "sd1.5-epicrealism", {"prompt": "s"}, "m.yaml", 1)
BIG = Item("b", "sd1.5-epicrealism", {"prompt": "b", "num_inference_steps": 40,
                                      "img_width": 1024, "img_height": 1024, "samples": 2},
           "m.yaml", 2)


async def test_budget_holds_one_unpriced_job_at_a_time() -> None:
    """Until a price is known, a second reservation waits for the first job to end."""
    budget = Budget(1.0)
    first = await budget.reserve(SMALL)
    assert first is not None and first.unpriced
    second_done = anyio.Event()

    async def second() -> None:
        await budget.reserve(SMALL)
        second_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await settle()
        assert not second_done.is_set()
        budget.charge(SMALL, 0.3)
        budget.release(first)
    assert second_done.is_set()
    assert budget.reserved == pytest.approx(0.3)


async def test_budget_refuses_past_the_cap() -> None:
    """A reservation that spent credits alone would take past the cap is refused."""
    budget = Budget(1.0, paid=[(SMALL.model, SMALL.params, 0.2)])
    budget.charge(SMALL, 0.4)
    assert await budget.reserve(SMALL) is not None
    budget.charge(SMALL, 0.5)
    assert await budget.reserve(SMALL) is None  # spent 0.9, and a job costs about 0.3


async def test_budget_prices_a_job_by_its_own_parameters() -> None:
    """Learned from small jobs, a big job (twice the steps, four times the pixels, two
    samples) is not priced as a small one: with nothing to tell per-image from per-GPU
    pricing apart, the dearer reading holds."""
    budget = Budget(10.0, paid=[(SMALL.model, SMALL.params, 0.01)] * 3)
    assert budget.price(SMALL) == pytest.approx(0.01)
    assert budget.price(BIG) == pytest.approx(0.01 * 2 * 4 * 2)


async def test_budget_learns_which_pricing_fits() -> None:
    """Once jobs of different sizes were paid, the model that explains them is used."""
    per_image = Budget(10.0, paid=[(SMALL.model, SMALL.params, 0.01),
                                   (BIG.model, BIG.params, 0.02)])
    assert per_image.price(BIG) == pytest.approx(0.02)


async def test_budget_frees_a_failed_jobs_reservation() -> None:
    """A submit that in-flight reservations keep out waits; a job that ends FAILED (not
    billed) frees its reservation, and the waiting submit goes ahead."""
    budget = Budget(0.4, paid=[(SMALL.model, SMALL.params, 0.2)])
    first = await budget.reserve(SMALL)
    second = await budget.reserve(SMALL)
    assert first is not None and second is not None
    third: list[object] = []

    async def wait_for_room() -> None:
        third.append(await budget.reserve(SMALL))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_room)
        await settle()
        assert third == []  # 0.4 of 0.4 reserved
        budget.release(first)  # its job FAILED: nothing spent
    assert third and third[0] is not None
    assert budget.spent == 0.0 and budget.reserved == pytest.approx(0.4)


async def test_budget_known_price_needs_no_wait() -> None:
    """With a price known from earlier runs, many jobs may be in flight at once."""
    budget = Budget(1.0, paid=[(SMALL.model, SMALL.params, 0.1)])
    reservations = [await budget.reserve(SMALL) for _ in range(5)]
    assert all(r is not None and not r.unpriced for r in reservations)


async def test_budget_stops_waiting_when_no_price_is_reported() -> None:
    """A model whose results carry no cost does not keep the run to one job at a time."""
    budget = Budget(1.0)
    first = await budget.reserve(SMALL)
    assert first is not None and first.unpriced
    budget.unpriced_job_done(SMALL)
    with anyio.fail_after(1):
        assert await budget.reserve(SMALL) is not None
