"""Summary arithmetic: percentiles and the bounded sample they are taken from."""

from __future__ import annotations

import pytest

from batchgen.engine.runstate import Reservoir
from batchgen.report.summary import percentile


@pytest.mark.parametrize(
    ("values", "share", "expected"),
    [([], 0.5, None), ([4.0], 0.95, 4.0), ([1.0, 2.0, 3.0], 0.5, 2.0),
     ([float(n) for n in range(1, 101)], 0.95, 95.05)],
)
def test_percentile(values: list[float], share: float, expected: float | None) -> None:
    """Percentiles of none, one and many values."""
    assert percentile(values, share) == (pytest.approx(expected) if expected else expected)


def test_reservoir_is_bounded_and_uniform() -> None:
    """A reservoir keeps at most its size, and its median tracks the stream's."""
    sample = Reservoir(size=1000, seed=1)
    for n in range(100_000):
        sample.add(float(n))
    assert len(sample.values) == 1000
    assert sample.seen == 100_000
    assert 40_000 < percentile(sample.values, 0.5) < 60_000  # type: ignore[operator]
