"""Realised intensity from recorded samples: step values, coverage, age, sources."""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.accounting import realised_from_samples
from policies.footprint.outcome import RealisedIntensity

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


def _reference(
    zone: str, samples: list[tuple[datetime, float, str]], start: datetime, end: datetime
) -> RealisedIntensity | None:
    """The definition, written plainly: cut the run at every sample inside it and weight
    each stretch by the value in force at its beginning."""
    if not samples:
        return None
    times = [s[0] for s in samples]

    def in_force(t: datetime) -> int:
        return max(0, bisect_right(times, t) - 1)

    cuts = [start, *(t for t in times if start < t < end), max(start, end)]
    span_s = (cuts[-1] - start).total_seconds()
    used = {in_force(start)}
    weighted = 0.0
    for a, b in pairwise(cuts):
        i = in_force(a)
        used.add(i)
        weighted += samples[i][1] * (b - a).total_seconds()
    value = weighted / span_s if span_s > 0 else samples[in_force(start)][1]
    covered_s = max(0.0, (cuts[-1] - max(start, times[0])).total_seconds())
    last = samples[in_force(cuts[-1])]
    return RealisedIntensity(
        zone=zone,
        intensity_g_per_kwh=value,
        rung="+".join(sorted({samples[i][2] for i in used})),
        age_s=max(0.0, (cuts[-1] - last[0]).total_seconds()),
        coverage=min(1.0, covered_s / span_s) if span_s > 0 else float(times[0] <= start),
    )


@settings(max_examples=300, deadline=None)
@given(
    samples=st.lists(
        st.tuples(
            st.integers(-600, 600),  # seconds from T0; equal times allowed (two sources)
            st.floats(0, 2000, allow_nan=False),
            st.sampled_from(["api", "cache", "forecast"]),
        ),
        max_size=6,
    ),
    start_s=st.integers(-700, 700),
    length_s=st.integers(-120, 900),  # negative: a clock stepped back during the run
)
def test_realised_equals_the_definition_bit_for_bit(
    samples: list[tuple[int, float, str]], start_s: int, length_s: int
) -> None:
    rows = sorted((T0 + timedelta(seconds=s), v, src) for s, v, src in samples)
    start = T0 + timedelta(seconds=start_s)
    end = start + timedelta(seconds=length_s)
    assert repr(realised_from_samples("Z", rows, start, end)) == repr(
        _reference("Z", rows, start, end)
    )
