"""Outcome maths: time-weighted realised intensity, grams, errors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from policies.errors import InvalidOutcomeError
from policies.footprint.accounting import SECONDS_PER_YEAR
from policies.footprint.outcome import (
    MeasuredRun,
    compute_outcome,
    realised_intensity,
    relative_error,
    time_weighted_intensity,
)
from policies.types import Alternative

T0 = datetime(2024, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)


@dataclass(frozen=True)
class Series:
    zone: str = "US-CAL-CISO"
    start: datetime = T0
    step_s: int = 3600
    values_g_per_kwh: npt.NDArray[np.float64] = field(
        default_factory=lambda: np.array([100.0, 200.0, 300.0])
    )


@pytest.mark.parametrize(
    ("start", "end", "mean", "coverage"),
    [
        (T0, T0 + H, 100.0, 1.0),
        (T0 + H / 2, T0 + 1.5 * H, 150.0, 1.0),
        (T0, T0 + 3 * H, 200.0, 1.0),
        (T0 + 1.25 * H, T0 + 1.25 * H, 200.0, 1.0),  # zero length: the value at start
        (T0 + 2.5 * H, T0 + 4.5 * H, 300.0, 0.25),  # past the end: last value held
        (T0 - H, T0 + H, 100.0, 0.5),  # before the start: first value held
        (T0 + 0.75 * H, T0 + 2.25 * H, (0.25 * 100 + 200 + 0.25 * 300) / 1.5, 1.0),
    ],
)
def test_time_weighted_intensity(
    start: datetime, end: datetime, mean: float, coverage: float
) -> None:
    value, covered = time_weighted_intensity(Series(), start, end)
    assert value == pytest.approx(mean)
    assert covered == pytest.approx(coverage)


def test_bad_intervals_and_empty_series_are_refused() -> None:
    with pytest.raises(InvalidOutcomeError, match="before it starts"):
        time_weighted_intensity(Series(), T0 + H, T0)
    with pytest.raises(InvalidOutcomeError, match="US-CAL-CISO: empty"):
        time_weighted_intensity(Series(values_g_per_kwh=np.array([])), T0, T0 + H)


def test_realised_intensity_carries_rung_and_age() -> None:
    got = realised_intensity(Series(), T0, T0 + H, rung="cache", signal_time=T0 - H)
    assert (got.zone, got.intensity_g_per_kwh, got.rung) == ("US-CAL-CISO", 100.0, "cache")
    assert got.age_s == 2 * 3600


def alternative(gpu: str = "A100-80GB", **fields: object) -> Alternative:
    values: dict[str, object] = {
        "device_ids": ("node1:0",),
        "region": "cal",
        "gpu": gpu,
        "start": T0,
        "duration_s": 3000.0,
        "energy_j": 3_000_000.0,
        "intensity_g_per_kwh": 120.0,
        "operational_g": 100.0,
        "embodied_g": 20.0,
    }
    values.update(fields)
    return Alternative(**values)  # type: ignore[arg-type]


RUN = MeasuredRun(T0, T0 + H, "A100-80GB", 1, 3_600_000.0, "counter")


def test_outcome_grams_and_errors() -> None:
    intensity = realised_intensity(
        Series(), RUN.started_at, RUN.ended_at, rung="api", signal_time=RUN.ended_at
    )
    outcome = compute_outcome(
        RUN,
        alternative(),
        intensity,
        gpu_embodied_g=26_600.0,
        pue=1.2,
        lifetime_years=5.0,
    )
    embodied = 26_600.0 * 3600 / (5 * SECONDS_PER_YEAR)
    assert outcome.operational_g == pytest.approx(1.0 * 100.0 * 1.2)  # 1 kWh at 100 g/kWh
    assert outcome.embodied_g == pytest.approx(embodied)
    assert outcome.total_g == pytest.approx(120.0 + embodied)
    assert outcome.energy_error_rel == pytest.approx(0.2)
    assert outcome.duration_error_rel == pytest.approx(0.2)
    assert outcome.intensity_error_rel == pytest.approx(100 / 120 - 1)
    assert outcome.predicted_total_g == 120.0
    assert outcome.total_error_rel == pytest.approx((120.0 + embodied) / 120.0 - 1)
    assert (outcome.started_at, outcome.energy_method, outcome.intensity_rung) == (
        T0,
        "counter",
        "api",
    )


def test_negative_energy_is_refused() -> None:
    intensity = realised_intensity(Series(), T0, T0 + H, rung="api", signal_time=T0)
    bad = MeasuredRun(T0, T0 + H, "A100-80GB", 1, -1.0, "counter")
    with pytest.raises(InvalidOutcomeError, match=r"energy -1\.0 J"):
        compute_outcome(bad, alternative(), intensity, gpu_embodied_g=0.0)


@pytest.mark.parametrize(
    ("measured", "predicted", "expected"),
    [(130.0, 100.0, 0.3), (70.0, 100.0, -0.3), (1.0, 0.0, math.nan), (1.0, math.inf, math.nan)],
)
def test_relative_error(measured: float, predicted: float, expected: float) -> None:
    assert relative_error(measured, predicted) == pytest.approx(expected, nan_ok=True)
