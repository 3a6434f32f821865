"""pool_means stacks zones of one shape into one pass and gives mean_intensities' values."""

from __future__ import annotations

import numpy as np
import pytest

from policies.means import ZoneSeries, mean_intensities, pool_means


def _series(
    rng: np.random.Generator, key: str, n: int, step_s: float, offset_s: float
) -> ZoneSeries:
    return ZoneSeries(key, rng.uniform(10.0, 700.0, n), step_s, offset_s)


@pytest.mark.parametrize("seed", range(8))
def test_pool_means_equal_one_zone_at_a_time_bit_for_bit(seed: int) -> None:
    """The compiled loop against the NumPy expressions, zone by zone."""
    rng = np.random.default_rng(seed)
    series = [
        _series(rng, "a", 48, 3600.0, -1200.0),
        _series(rng, "b", 48, 3600.0, -1200.0),  # stacked with a
        _series(rng, "c", 48, 1800.0, 5000.0),  # alone: another step; starts before it
        _series(rng, "d", 30, 3600.0, -1200.0),  # alone: another length
        _series(rng, "e", 48, 3600.0, -1200.0),  # stacked with a and b
    ]
    series.append(series[1])  # a second pool of b's zone and GPU type: b's means
    starts = np.maximum(np.arange(96) * 900.0, 37.0)
    duration = rng.uniform(0.0, 4 * 3600.0, (7, len(series)))
    duration[0, 2] = 0.0  # the value at the start
    duration[1, 3] = np.inf  # an OOM pool: read as 0
    duration[2] = rng.uniform(0.0, 3e5)  # runs past the end of the series
    duration[:, 5] = duration[:, 1]  # one GPU type: one estimate
    result = pool_means(series, starts, duration)
    assert result.shape == (len(series), 7, 96)
    for p, one in enumerate(series):
        finite = np.where(np.isfinite(duration[:, p]), duration[:, p], 0.0)
        alone = mean_intensities(one.values_g_per_kwh, one.step_s, one.offset_s,
                                 starts[None, :], finite[:, None])  # fmt: skip
        assert np.array_equal(result[p], alone)


def test_pool_means_of_a_flat_series_are_its_value() -> None:
    flat = ZoneSeries("z", np.full(24, 250.0), 3600.0, 0.0)
    other = ZoneSeries("y", np.full(24, 80.0), 3600.0, 0.0)
    means = pool_means([flat, other], np.array([0.0, 900.0]), np.array([[600.0, 7200.0]]))
    assert np.allclose(means[0], 250.0) and np.allclose(means[1], 80.0)


@pytest.mark.parametrize("seed", range(6))
def test_pool_means_bit_for_bit_on_odd_grids(seed: int) -> None:
    """Fractional offsets and steps, starts before and after the series, tiny and huge spans."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 60))
    step_s = float(rng.choice([900.0, 3600.0, 1234.5678]))
    offset_s = float(rng.uniform(-5e4, 5e4))
    one = ZoneSeries("z", rng.uniform(0.0, 900.0, n), step_s, offset_s)
    starts = np.sort(rng.uniform(-1e5, 1e5, int(rng.integers(1, 120))))
    duration = rng.choice([0.0, 1e-9, 0.3, 900.0, 7e4, 1e7], (5, 1)) * rng.uniform(0.5, 2.0)
    result = pool_means([one], starts, duration)
    alone = mean_intensities(one.values_g_per_kwh, step_s, offset_s, starts[None, :], duration)
    assert np.array_equal(result[0], alone)
