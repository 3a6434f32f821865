"""Realised intensity from recorded samples: step values, coverage, age, sources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from daemon.accounting import realised_from_samples

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("samples", "start", "end", "mean", "coverage", "age_min", "rung"),
    [
        # one sample before the run holds throughout
        ([(-10, 100.0, "api")], 0, 60, 100.0, 1.0, 70, "api"),
        # a change half way: the time-weighted mean
        ([(-10, 100.0, "api"), (30, 300.0, "cache")], 0, 60, 200.0, 1.0, 30, "api+cache"),
        # the first sample arrives a quarter into the run: its value holds before, flagged
        ([(15, 80.0, "api")], 0, 60, 80.0, 0.75, 45, "api"),
        # a zero-length run takes the value in force
        ([(-10, 100.0, "api"), (30, 300.0, "api")], 40, 40, 300.0, 1.0, 10, "api"),
    ],
)
def test_realised_from_samples(
    samples: list[tuple[float, float, str]], start: float, end: float, mean: float,
    coverage: float, age_min: float, rung: str,
) -> None:  # fmt: skip
    rows = [(_at(m), v, s) for m, v, s in samples]
    realised = realised_from_samples("CA-QC", rows, _at(start), _at(end))
    assert realised is not None
    assert realised.intensity_g_per_kwh == pytest.approx(mean)
    assert realised.coverage == pytest.approx(coverage)
    assert realised.age_s == pytest.approx(age_min * 60)
    assert realised.rung == rung


def test_no_samples_no_intensity() -> None:
    assert realised_from_samples("CA-QC", [], T0, _at(5)) is None
