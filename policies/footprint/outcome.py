"""Measured outcomes: what a finished job really emitted, next to what was predicted.

Pure: the daemon passes the measured run, the prediction made at dispatch (the decision's
chosen :class:`~policies.types.Alternative`) and the intensity it saw; this module returns a
frozen :class:`Outcome`. Grams come from
:func:`policies.footprint.accounting.footprint` only.

Realised intensity is the time-weighted mean of the series over the run: each grid value holds
for its step; where the run reaches past the series, the edge value is held and ``coverage``
(the fraction of the run the series covered) says so.

Errors are relative, as fractions: ``(measured − predicted) / predicted`` (positive: the job cost
more than predicted).

The run-now counterfactual is not priced here: the ledger's ``run_now_total_g`` is the one
stored with the job's first decision, scaled as the run turned out and priced over its own
window (:mod:`daemon.accounting.finished`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from policies.errors import InvalidOutcomeError
from policies.fast_init import fast_init
from policies.footprint.accounting import DEFAULT_LIFETIME_YEARS, CarbonFootprint, footprint
from policies.placement import mean_intensity_g_per_kwh
from policies.types import Alternative, ZoneIntensity

__all__ = [
    "MeasuredRun",
    "Outcome",
    "RealisedIntensity",
    "compute_outcome",
    "measured_footprint",
    "realised_intensity",
    "relative_error",
    "time_weighted_intensity",
]


@dataclass(frozen=True, slots=True)
class MeasuredRun:
    """What the GPUs measured: the run's interval, devices and energy (``energy_method`` as the
    meter reports it: ``counter``, ``power_integral`` or ``mixed``)."""

    started_at: datetime
    ended_at: datetime
    gpu: str
    gpus: int
    energy_j: float
    energy_method: str
    energy_shared: bool = False

    @property
    def duration_s(self) -> float:
        """Seconds the job held its GPUs."""
        return (self.ended_at - self.started_at).total_seconds()


@fast_init
@dataclass(frozen=True, slots=True)
class RealisedIntensity:
    """The intensity a run saw, and how good the signal was: its fallback ``rung`` (``api``,
    ``cache``, ``forecast``, ``static``, ...), its ``age_s`` when the run ended, and the
    fraction of the run the series covered."""

    zone: str
    intensity_g_per_kwh: float
    rung: str
    age_s: float
    coverage: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished job's measured footprint, its prediction and the errors."""

    started_at: datetime
    ended_at: datetime
    duration_s: float
    gpu: str
    gpus: int
    measured_energy_j: float
    energy_method: str
    energy_shared: bool
    realised_intensity_g_per_kwh: float
    intensity_zone: str
    intensity_rung: str
    intensity_age_s: float
    intensity_coverage: float
    pue: float
    operational_g: float
    embodied_g: float
    total_g: float
    predicted_energy_j: float
    predicted_duration_s: float
    predicted_intensity_g_per_kwh: float
    predicted_total_g: float
    energy_error_rel: float
    duration_error_rel: float
    intensity_error_rel: float
    total_error_rel: float


def relative_error(measured: float, predicted: float) -> float:
    """``(measured − predicted) / predicted``; NaN where the prediction is 0 or not finite."""
    if predicted == 0 or not math.isfinite(predicted):
        return math.nan
    return (measured - predicted) / predicted


def time_weighted_intensity(
    series: ZoneIntensity, start: datetime, end: datetime
) -> tuple[float, float]:
    """Mean intensity (g/kWh) of ``series`` over ``[start, end]`` and the fraction covered.

    The mean is :func:`policies.placement.mean_intensity_g_per_kwh` (the planner's own: edge
    values held outside the series); a zero-length interval gives the value at ``start``.

    Raises:
        InvalidOutcomeError: ``end`` precedes ``start``, or the series is empty.
    """
    if end < start:
        raise InvalidOutcomeError(f"interval ends ({end}) before it starts ({start})")
    values = np.asarray(series.values_g_per_kwh, dtype=np.float64)
    if values.size == 0:
        raise InvalidOutcomeError(f"zone {series.zone}: empty intensity series")
    duration_s = (end - start).total_seconds()
    mean = mean_intensity_g_per_kwh(series, start, duration_s)
    a_s = (start - series.start).total_seconds()
    span_s = values.size * float(series.step_s)
    if duration_s == 0:
        return mean, float(0 <= a_s < span_s)
    covered_s = max(0.0, min(a_s + duration_s, span_s) - max(a_s, 0.0))
    return mean, covered_s / duration_s


def realised_intensity(
    series: ZoneIntensity, start: datetime, end: datetime, *, rung: str, signal_time: datetime
) -> RealisedIntensity:
    """:func:`time_weighted_intensity` with the signal's rung and its age at ``end``.

    ``signal_time`` is when the signal's data was current (fetch or publication time).

    Raises:
        InvalidOutcomeError: as :func:`time_weighted_intensity`.
    """
    value, coverage = time_weighted_intensity(series, start, end)
    return RealisedIntensity(
        zone=series.zone,
        intensity_g_per_kwh=value,
        rung=rung,
        age_s=max(0.0, (end - signal_time).total_seconds()),
        coverage=coverage,
    )


def measured_footprint(
    energy_j: float,
    duration_s: float,
    intensity_g_per_kwh: float,
    gpu_embodied_g: float,
    *,
    pue: float = 1.0,
    lifetime_years: float = DEFAULT_LIFETIME_YEARS,
    gpus: int = 1,
) -> CarbonFootprint:
    """The grams of a measured run: ``energy_j`` over ``duration_s`` on ``gpus`` GPUs at the
    realised ``intensity_g_per_kwh`` (:func:`compute_outcome`'s, without the comparison with
    the prediction).

    Raises:
        InvalidOutcomeError: negative energy or duration.
    """
    if energy_j < 0 or duration_s < 0:
        raise InvalidOutcomeError(
            f"measured run has energy {energy_j} J and duration {duration_s} s; both must be >= 0"
        )
    return footprint(
        energy_j,
        duration_s,
        intensity_g_per_kwh,
        gpu_embodied_g,
        pue=pue,
        lifetime_years=lifetime_years,
        gpus=gpus,
    )


def compute_outcome(
    run: MeasuredRun,
    predicted: Alternative,
    intensity: RealisedIntensity,
    *,
    gpu_embodied_g: float,
    pue: float = 1.0,
    lifetime_years: float = DEFAULT_LIFETIME_YEARS,
) -> Outcome:
    """The outcome of ``run``, which was dispatched with prediction ``predicted``.

    Args:
        run: the measured run.
        predicted: the decision's chosen alternative (the estimate used at decision time).
        intensity: the realised intensity over the run (:func:`realised_intensity`).
        gpu_embodied_g: embodied grams of one GPU of ``run.gpu``.
        pue: the site's PUE.
        lifetime_years: GPU lifetime for amortising embodied carbon.

    Raises:
        InvalidOutcomeError: negative energy or duration.
    """
    duration_s = run.duration_s
    measured = measured_footprint(
        run.energy_j,
        duration_s,
        intensity.intensity_g_per_kwh,
        gpu_embodied_g,
        pue=pue,
        lifetime_years=lifetime_years,
        gpus=run.gpus,
    )
    return Outcome(
        started_at=run.started_at,
        ended_at=run.ended_at,
        duration_s=duration_s,
        gpu=run.gpu,
        gpus=run.gpus,
        measured_energy_j=run.energy_j,
        energy_method=run.energy_method,
        energy_shared=run.energy_shared,
        realised_intensity_g_per_kwh=intensity.intensity_g_per_kwh,
        intensity_zone=intensity.zone,
        intensity_rung=intensity.rung,
        intensity_age_s=intensity.age_s,
        intensity_coverage=intensity.coverage,
        pue=pue,
        operational_g=measured.operational_g,
        embodied_g=measured.embodied_g,
        total_g=measured.total_g,
        predicted_energy_j=predicted.energy_j,
        predicted_duration_s=predicted.duration_s,
        predicted_intensity_g_per_kwh=predicted.intensity_g_per_kwh,
        predicted_total_g=predicted.total_g,
        energy_error_rel=relative_error(run.energy_j, predicted.energy_j),
        duration_error_rel=relative_error(duration_s, predicted.duration_s),
        intensity_error_rel=relative_error(
            intensity.intensity_g_per_kwh, predicted.intensity_g_per_kwh
        ),
        total_error_rel=relative_error(measured.total_g, predicted.total_g),
    )
