"""Scoring one placement (job, devices, start) by its expected footprint: the scalar path.

Planners that score many cells at once use the vectorised scorer; this module is the reference
they must agree with, and what simple policies and counterfactuals use.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from policies.footprint.accounting import footprint
from policies.footprint.estimator import Estimate
from policies.types import Alternative, Device, ZoneIntensity

__all__ = ["mean_intensity_g_per_kwh", "place"]


def mean_intensity_g_per_kwh(forecast: ZoneIntensity, start: datetime, duration_s: float) -> float:
    """Time-weighted mean intensity over ``[start, start + duration_s]``.

    Outside the forecast's span the nearest value holds (first before, last after). A zero
    duration gives the value at ``start``.
    """
    values = np.asarray(forecast.values_g_per_kwh, dtype=np.float64)
    step = float(forecast.step_s)
    offset = (start - forecast.start).total_seconds() / step
    first = min(max(math.floor(offset), 0), len(values) - 1)  # the step holding ``start``
    if duration_s <= 0:
        return float(values[first])
    span = duration_s / step
    end = offset + span
    if values.size and (first == len(values) - 1 or end <= first + 1):  # within one step
        # The weighted sum below has one non-zero weight: it is that term's product, to the
        # bit, whatever order the dot product adds in (x + 0.0 is x for any x but 0; a NaN
        # or infinity anywhere would make the sum NaN).
        term = float(values[first]) * (end - offset)
        if term != 0 and _surely_finite(values):
            return term / span
    edges = np.arange(len(values) + 1, dtype=np.float64)
    edges[0], edges[-1] = -math.inf, math.inf
    lo = np.clip(edges[:-1], offset, offset + span)
    hi = np.clip(edges[1:], offset, offset + span)
    return float(np.dot(values, hi - lo) / span)


_SUMMED_IN_PYTHON = 128  # up to this many values: a NumPy reduction costs more per call


def _surely_finite(values: np.ndarray) -> bool:
    """True only when every value is finite: their sum is (a NaN or an infinity makes it NaN
    or infinite). Finite values whose sum overflows read False: the caller's general path
    gives the same answer then. A forecast's day of values is summed in Python, about a
    third of the time of ``np.isfinite(values).all()`` (the ``place`` of every run-now job);
    longer series by NumPy."""
    if values.size <= _SUMMED_IN_PYTHON:
        return math.isfinite(sum(values.tolist()))
    return bool(np.isfinite(values).all())


def place(
    estimate: Estimate,
    devices: tuple[Device, ...],
    start: datetime,
    forecast: ZoneIntensity,
    lifetime_years: float,
) -> Alternative:
    """The expected footprint of running ``estimate`` on ``devices`` (one region) from ``start``."""
    first = devices[0]
    intensity = mean_intensity_g_per_kwh(forecast, start, estimate.duration_s)
    grams = footprint(
        estimate.energy_j,
        estimate.duration_s,
        intensity,
        first.gpu.embodied_g,
        pue=first.pue,
        lifetime_years=lifetime_years,
        gpus=len(devices),
    )
    return Alternative(
        device_ids=tuple(d.device_id for d in devices),
        region=first.region,
        gpu=first.gpu.name,
        start=start,
        duration_s=estimate.duration_s,
        energy_j=estimate.energy_j,
        intensity_g_per_kwh=intensity,
        operational_g=grams.operational_g,
        embodied_g=grams.embodied_g,
    )
