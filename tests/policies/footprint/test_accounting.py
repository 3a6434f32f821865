from __future__ import annotations

import numpy as np
import pytest

from policies.footprint.accounting import (
    J_PER_KWH,
    SECONDS_PER_YEAR,
    embodied_g,
    footprint,
    operational_g,
)


def test_one_kwh_at_the_grid_intensity() -> None:
    assert operational_g(J_PER_KWH, 262.0) == pytest.approx(262.0)
    assert operational_g(J_PER_KWH, 262.0, pue=1.5) == pytest.approx(393.0)


def test_embodied_is_amortised_over_the_lifetime() -> None:
    # Holding a 10.3 kg T4 for its whole 5-year life charges all of it.
    assert embodied_g(5 * SECONDS_PER_YEAR, 10_300.0, 5.0) == pytest.approx(10_300.0)
    assert embodied_g(3600.0, 10_300.0, 5.0, gpus=2) == pytest.approx(
        2 * 3600 / (5 * SECONDS_PER_YEAR) * 10_300
    )


def test_footprint_adds_both_and_scales() -> None:
    fp = footprint(7_200_000, 3600, 31.0, 26_600.0, pue=1.2, lifetime_years=5.0)
    assert fp.operational_g == pytest.approx(2 * 31 * 1.2)
    assert fp.total_g == pytest.approx(fp.operational_g + fp.embodied_g)
    assert 0 < fp.embodied_share < 1
    half = fp.scaled(0.5)
    assert half.total_g == pytest.approx(fp.total_g / 2)


def test_functions_broadcast_over_arrays() -> None:
    energy = np.array([1.0, 2.0, 3.0]) * J_PER_KWH
    intensity = np.array([[10.0], [100.0]])
    grams = operational_g(energy, intensity)
    assert grams.shape == (2, 3)
    assert grams[1, 2] == pytest.approx(300.0)
