"""The scalar mean intensity: a run within one forecast step gives, to the bit, what the
weighted sum over every step gives (the general path), whatever the values."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.placement import mean_intensity_g_per_kwh
from tests.policies.conftest import NOW, forecast

_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e3, max_value=1e3),
    st.sampled_from([0.0, -0.0, 1.0, 31.0, 262.0, 647.0, 5e-324, 1e308]),
)
_OFFSETS_S = st.one_of(
    st.floats(min_value=-5e5, max_value=5e5, allow_nan=False),
    st.integers(min_value=-20, max_value=60).map(lambda h: h * 3600.0),  # on a step's edge
    st.integers(min_value=-20, max_value=60).map(lambda h: h * 3600.0 - 1e-3),
)
_DURATIONS_S = st.one_of(
    st.floats(min_value=1e-6, max_value=2e5),
    st.sampled_from([1e-6, 1.0, 60.0, 3599.999, 3600.0, 3600.001, 7200.0]),
)


def _weighted_sum(values: list[float], step_s: int, offset_s: float, duration_s: float) -> float:
    """The general path (every step's overlap as a weight, one dot product)."""
    array = np.asarray(values, dtype=np.float64)
    offset, span = offset_s / step_s, duration_s / step_s
    edges = np.arange(len(array) + 1, dtype=np.float64)
    edges[0], edges[-1] = -math.inf, math.inf
    lo = np.clip(edges[:-1], offset, offset + span)
    hi = np.clip(edges[1:], offset, offset + span)
    return float(np.dot(array, hi - lo) / span)


@given(
    st.one_of(  # both sides of how the values' finiteness is checked (placement._surely_finite)
        st.lists(_VALUES, min_size=1, max_size=60),
        st.lists(_VALUES, min_size=120, max_size=200),
    ),
    st.sampled_from([900, 1800, 3600]),
    _OFFSETS_S,
    _DURATIONS_S,
)
def test_the_mean_is_the_weighted_sum_to_the_bit(
    values: list[float], step_s: int, offset_s: float, duration_s: float
) -> None:
    fc = forecast("Z", values, step_s=step_s)
    start = NOW + timedelta(seconds=offset_s)
    offset_s = (start - NOW).total_seconds()  # what the datetime keeps of it
    with np.errstate(all="ignore"):  # inf x 0 in the weighted sum
        got = mean_intensity_g_per_kwh(fc, start, duration_s)
        want = _weighted_sum(values, step_s, offset_s, duration_s)
    assert repr(got) == repr(want)  # NaN and the sign of zero included


def test_runs_within_one_step_and_across_steps() -> None:
    fc = forecast("Z", [100.0, 300.0, 50.0])

    def mean(offset: timedelta, duration_s: float) -> float:
        return mean_intensity_g_per_kwh(fc, NOW + offset, duration_s)

    assert mean(timedelta(minutes=10), 600) == pytest.approx(100.0, rel=1e-12)
    assert mean(timedelta(minutes=30), 3600) == pytest.approx(200.0, rel=1e-12)
    assert mean(timedelta(hours=-5), 600) == pytest.approx(100.0, rel=1e-12)  # before
    assert mean(timedelta(hours=9), 600) == pytest.approx(50.0, rel=1e-12)  # after
    assert math.isnan(mean_intensity_g_per_kwh(forecast("Z", [1.0, math.nan]), NOW, 60))
