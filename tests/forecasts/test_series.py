"""IntensitySeries: exact time-weighted maths, slicing, resampling, merging, kinds."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from forecasts import (
    J_PER_KWH,
    IntensitySeries,
    KindMismatchError,
    OutOfRangeError,
    SeriesError,
    SignalKind,
)

T0 = datetime(2023, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def _series(
    values: list[float], kind: SignalKind = "lifecycle", start: datetime = T0
) -> IntensitySeries:
    return IntensitySeries("XX", start, 3600, np.array(values), kind=kind)


def test_shape_and_times() -> None:
    s = _series([100.0, 200.0, 300.0])
    assert len(s) == 3
    assert s.end == T0 + 3 * H
    assert s.times() == [T0, T0 + H, T0 + 2 * H]
    assert not s.is_estimated.any()


def test_arrays_are_read_only_copies() -> None:
    raw = np.array([1.0, 2.0])
    s = _series(list(raw))
    with pytest.raises(ValueError):
        s.values_g_per_kwh[0] = 5.0


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (T0, T0 + H, 100.0),
        (T0, T0 + 2 * H, 150.0),
        (T0 + 0.5 * H, T0 + 1.5 * H, 150.0),  # half of each of two points
        (T0 + 0.75 * H, T0 + 2 * H, (0.25 * 100 + 200) / 1.25),
        (T0 + 2.5 * H, T0 + 3 * H, 300.0),
    ],
)
def test_mean_between_weights_partial_steps(
    start: datetime, end: datetime, expected: float
) -> None:
    assert _series([100.0, 200.0, 300.0]).mean_between(start, end) == pytest.approx(expected)


def test_integral_and_emissions() -> None:
    s = _series([100.0, 200.0])
    assert s.integral_between(T0, T0 + 2 * H) == pytest.approx(300.0 * 3600)
    # 1 kWh drawn evenly over the two hours: 150 g.
    assert s.emissions_g(J_PER_KWH, T0, T0 + 2 * H) == pytest.approx(150.0)


@pytest.mark.parametrize(
    ("start", "end", "error"),
    [
        (T0 - H, T0 + H, OutOfRangeError),
        (T0, T0 + 4 * H, OutOfRangeError),
        (T0 + H, T0 + H, SeriesError),
        (T0 + 2 * H, T0 + H, SeriesError),
    ],
)
def test_mean_between_rejects_bad_intervals(
    start: datetime, end: datetime, error: type[Exception]
) -> None:
    with pytest.raises(error):
        _series([1.0, 2.0, 3.0]).mean_between(start, end)


def test_missing_point_makes_overlapping_means_nan_only() -> None:
    s = _series([100.0, math.nan, 300.0])
    assert math.isnan(s.mean_between(T0, T0 + 2 * H))
    assert s.mean_between(T0 + 2 * H, T0 + 3 * H) == 300.0
    assert s.missing_count() == 1


def test_at_and_out_of_range() -> None:
    s = _series([10.0, 20.0])
    assert s.at(T0 + 1.5 * H) == 20.0
    with pytest.raises(OutOfRangeError):
        s.at(T0 + 2 * H)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(SeriesError, match="naive"):
        IntensitySeries("XX", datetime(2023, 1, 1), 3600, np.array([1.0]))


def test_start_is_normalised_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    s = IntensitySeries("XX", datetime(2023, 1, 1, 2, tzinfo=plus2), 3600, np.array([1.0]))
    assert s.start == T0 and s.start.tzinfo == UTC


def test_slice_keeps_overlapping_points() -> None:
    s = _series([1.0, 2.0, 3.0, 4.0])
    part = s.slice(T0 + 0.5 * H, T0 + 2.5 * H)
    assert part.start == T0 and list(part.values_g_per_kwh) == [1.0, 2.0, 3.0]
    assert len(s.slice(T0 + 10 * H, T0 + 12 * H)) == 0


def test_resample_coarser_is_time_weighted_and_flags_estimates() -> None:
    s = IntensitySeries(
        "XX", T0, 1800, np.array([100.0, 200.0, 300.0]), np.array([False, True, False])
    )
    hourly = s.resample(3600)
    assert list(hourly.values_g_per_kwh) == [150.0, 300.0]  # last point covers what exists
    assert list(hourly.is_estimated) == [True, False]


def test_resample_finer_repeats_values() -> None:
    s = _series([100.0, 200.0]).resample(1800)
    assert list(s.values_g_per_kwh) == [100.0, 100.0, 200.0, 200.0]


def test_merge_newer_wins_and_gaps_are_missing() -> None:
    old = _series([1.0, 2.0, 3.0])
    new = _series([20.0, math.nan, 40.0], start=T0 + H)
    merged = old.merge(new)
    assert list(merged.values_g_per_kwh) == [1.0, 20.0, 3.0, 40.0]
    later = _series([9.0], start=T0 + 5 * H)
    gap = old.merge(later)
    assert len(gap) == 6 and gap.missing_count() == 2


def test_mixing_kinds_raises() -> None:
    with pytest.raises(KindMismatchError):
        _series([1.0]).merge(_series([2.0], kind="marginal"))


def test_from_points_places_on_grid() -> None:
    s = IntensitySeries.from_points(
        "XX", [T0 + 2 * H, T0], [30.0, 10.0], [True, False], step_s=3600
    )
    assert s.start == T0
    assert s.values_g_per_kwh[0] == 10.0 and math.isnan(s.values_g_per_kwh[1])
    assert list(s.is_estimated) == [False, False, True]


def test_last_valid_skips_missing_and_future() -> None:
    s = _series([1.0, 2.0, math.nan, 4.0])
    assert s.last_valid(before=T0 + 2.5 * H) == (T0 + H, 2.0, False)
    assert s.last_valid() == (T0 + 3 * H, 4.0, False)
