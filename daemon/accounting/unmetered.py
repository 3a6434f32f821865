"""Carbon figures for a job no GPU meter followed: energy from the executor's own accounting
(Slurm's ``sacct``) or estimated, realised intensity from the recorded samples (pure).

The estimate is the power predicted at dispatch (expected energy over expected duration, which
includes any recalibration then in use) times the run's real duration, so a job that ended
early or late is charged for the time it held its GPUs. Embodied grams follow the real
duration too. Grams come from :func:`policies.footprint.outcome.measured_footprint`, as
:func:`~policies.footprint.outcome.compute_outcome`'s do for metered jobs.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.accounting.methods import ESTIMATED
from daemon.ledger import DecisionRecord
from policies import Alternative
from policies.fast_init import fast_init
from policies.footprint.outcome import RealisedIntensity, measured_footprint

__all__ = [
    "MEASURED_POWER_MARGIN",
    "EnergySource",
    "best_energy",
    "measured_energy_bound_j",
    "predicted_alternative",
    "unmetered_columns",
]

# An executor's measured energy may be a whole node's (sacct with ipmi: CPUs, fans, the
# neighbours' jobs), so it may well exceed the job's GPUs' TDP, but not this many times over: a
# figure above it is a broken sensor or counter (1e12 J for a minute's job), not a measurement.
MEASURED_POWER_MARGIN = 20.0


@fast_init
@dataclass(frozen=True, slots=True)
class EnergySource:
    """The energy a job's grams use (J), how it was obtained, and whether it was measured."""

    energy_j: float
    method: str
    measured: bool


def measured_energy_bound_j(tdp_w: float, gpus: int, duration_s: float) -> float:
    """The most energy (J) a measurement of a run of ``duration_s`` on ``gpus`` GPUs of
    ``tdp_w`` may report: :data:`MEASURED_POWER_MARGIN` times their TDP, over the run plus one
    second (sacct's ``Elapsed`` is whole seconds)."""
    return MEASURED_POWER_MARGIN * tdp_w * max(1, gpus) * (max(0.0, duration_s) + 1.0)


def best_energy(
    duration_s: float,
    decision: DecisionRecord | None,
    reported_energy_j: float | None = None,
    reported_method: str | None = None,
    max_energy_j: float | None = None,
) -> EnergySource | None:
    """The executor's measured energy when it reported a plausible one (finite, at most
    ``max_energy_j`` when given), else the dispatch-time power times ``duration_s``
    (``estimated``); None when neither is known."""
    if (
        reported_energy_j is not None
        and math.isfinite(reported_energy_j)
        and (max_energy_j is None or reported_energy_j <= max_energy_j)
    ):
        return EnergySource(max(0.0, reported_energy_j), reported_method or "executor", True)
    if decision is None:
        return None
    energy, expected_s = decision.expected_energy_j, decision.expected_duration_s
    if energy is None or not expected_s or not math.isfinite(energy) or expected_s <= 0:
        return None
    return EnergySource(energy / expected_s * max(0.0, duration_s), ESTIMATED, False)


def unmetered_columns(
    *,
    started_at: datetime,
    finished_at: datetime,
    gpu: str,
    gpus: int,
    gpu_embodied_g: float,
    pue: float,
    lifetime_years: float,
    decision: DecisionRecord | None,
    realised: RealisedIntensity | None,
    reported_energy_j: float | None = None,
    reported_method: str | None = None,
    gpu_tdp_w: float | None = None,
    reported_over_s: float = 0.0,
) -> dict[str, Any]:
    """The measured side of the ``outcomes`` row of an unmetered job.

    Realised intensity is always filled when ``realised`` is known; grams need an energy too
    (:func:`best_energy`). ``measured_energy_j`` stays NULL unless the executor measured it
    plausibly: with ``gpu_tdp_w`` (W, one GPU's), a reported energy above
    :func:`measured_energy_bound_j` is set aside for the estimate. ``reported_over_s``: the
    seconds of earlier runs the reported energy also covers (a Slurm job requeued after it
    started), added to this run's for that bound only.
    """
    # A wall clock stepped back while the job ran ends it before it started: count it as a
    # zero-length run rather than fail the job's ending (and every reconcile after it).
    finished_at = max(finished_at, started_at)
    duration_s = (finished_at - started_at).total_seconds()
    over_s = duration_s + reported_over_s
    bound = None if gpu_tdp_w is None else measured_energy_bound_j(gpu_tdp_w, gpus, over_s)
    source = best_energy(duration_s, decision, reported_energy_j, reported_method, bound)
    columns: dict[str, Any] = {
        "energy_j": None if source is None else source.energy_j,
        "measured_energy_j": source.energy_j if source and source.measured else None,
        "energy_method": None if source is None else source.method,
    }
    if realised is None:
        return columns
    columns |= {
        "realised_intensity_g_per_kwh": realised.intensity_g_per_kwh,
        "intensity_source": realised.rung,
        "intensity_age_s": realised.age_s,
    }
    if source is None:
        return columns
    grams = measured_footprint(
        source.energy_j, duration_s, realised.intensity_g_per_kwh, gpu_embodied_g, pue=pue,
        lifetime_years=lifetime_years, gpus=gpus,
    )  # fmt: skip
    power_w = source.energy_j / duration_s if not source.measured and duration_s > 0 else None
    return columns | {
        "operational_g": grams.operational_g,
        "embodied_g": grams.embodied_g,
        "total_g": grams.total_g,
        "details_json": _details_json(source.method, realised.coverage, power_w),
    }


def _details_json(energy_source: str, coverage: float, power_w: float | None) -> str:
    """``json.dumps({"energy_source": ..., "intensity_coverage": ..., "estimated_power_w":
    ...}, allow_nan=False)``, without its per-call work when the figures are finite floats
    (a float's ``repr`` is its JSON then)."""
    if (
        type(coverage) is float
        and math.isfinite(coverage)
        and (power_w is None or (type(power_w) is float and math.isfinite(power_w)))
    ):
        power = "null" if power_w is None else repr(power_w)
        return (
            f'{{"energy_source": {_json_string(energy_source)}, "intensity_coverage": '
            f'{coverage!r}, "estimated_power_w": {power}}}'
        )
    details = {
        "energy_source": energy_source,
        "intensity_coverage": coverage,
        "estimated_power_w": power_w,
    }
    return json.dumps(details, allow_nan=False)


@functools.lru_cache(maxsize=64)
def _json_string(value: str) -> str:
    return json.dumps(value)


def predicted_alternative(decision: DecisionRecord | None, started_at: datetime) -> Alternative:
    """The prediction made at dispatch as an :class:`Alternative` (NaN where not recorded)."""

    def num(value: float | None) -> float:
        return math.nan if value is None else value

    d = decision
    return Alternative(
        device_ids=d.device_ids if d else (),
        region=(d.region or "") if d else "",
        gpu=(d.gpu or "") if d else "",
        start=(d.planned_start or started_at) if d else started_at,
        duration_s=num(d.expected_duration_s if d else None),
        energy_j=num(d.expected_energy_j if d else None),
        intensity_g_per_kwh=num(d.expected_intensity_g_per_kwh if d else None),
        operational_g=num(d.expected_operational_g if d else None),
        embodied_g=num(d.expected_embodied_g if d else None),
    )
