"""Outcomes of jobs that no GPU meter of this node measured (jobs run by Slurm elsewhere).

The energy comes from the executor's own accounting when it has one — Slurm's ``sacct``
``ConsumedEnergyRaw``, flagged ``energy_method = "slurm-sacct"`` — and otherwise from the
prediction made at dispatch, scaled to the job's real duration (the planned power held for as
long as the job really ran), flagged ``estimated`` and never passed off as measured. Realised
intensity and grams are computed in both cases, from the intensity series the service holds
when the job ends (time-weighted over the run; ``intensity_coverage`` says how much of the run
the series covered).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from daemon.ledger import DecisionRecord
from policies import Alternative, Device, ZoneIntensity
from policies.errors import PoliciesError
from policies.footprint.outcome import MeasuredRun, compute_outcome, realised_intensity

__all__ = ["ESTIMATED", "SLURM_SACCT", "unmetered_outcome"]

SLURM_SACCT = "slurm-sacct"
ESTIMATED = "estimated"


def unmetered_outcome(
    *,
    device: Device,
    gpus: int,
    started_at: datetime,
    finished_at: datetime,
    decision: DecisionRecord,
    forecasts: Mapping[str, ZoneIntensity],
    lifetime_years: float,
    energy_j: float | None,
    energy_method: str = SLURM_SACCT,
) -> dict[str, Any]:
    """The ``outcomes`` columns of a job on ``gpus`` GPUs like ``device`` that ran from
    ``started_at`` to ``finished_at``. ``energy_j`` (J) is what the executor measured, flagged
    ``energy_method``; None: estimated from ``decision``. Empty when nothing can be said (no
    prediction to scale, or no intensity series for the zone)."""
    duration_s = max(0.0, (finished_at - started_at).total_seconds())
    method = energy_method
    if energy_j is None:
        predicted_j, predicted_s = decision.expected_energy_j, decision.expected_duration_s
        if predicted_j is None or not predicted_s:
            return {}
        energy_j, method = predicted_j * duration_s / predicted_s, ESTIMATED
    series = forecasts.get(device.zone)
    if series is None:
        return {"measured_energy_j": energy_j, "energy_method": method}
    age_s = float(getattr(series, "age_s", 0.0))
    rung = str(getattr(series, "rung", getattr(series, "source", "series")))
    try:
        realised = realised_intensity(
            series, started_at, max(finished_at, started_at), rung=rung,
            signal_time=finished_at - timedelta(seconds=age_s),
        )  # fmt: skip
        outcome = compute_outcome(
            MeasuredRun(
                started_at, max(finished_at, started_at), device.gpu.name, gpus, energy_j, method
            ),
            _predicted(decision, started_at),
            realised,
            gpu_embodied_g=device.gpu.embodied_g,
            pue=device.pue,
            lifetime_years=lifetime_years,
        )
    except PoliciesError:
        return {"measured_energy_j": energy_j, "energy_method": method}
    details = {"measured_duration_s": duration_s, "intensity_coverage": realised.coverage}
    return {
        "measured_energy_j": outcome.measured_energy_j,
        "energy_method": method,
        "realised_intensity_g_per_kwh": _finite(outcome.realised_intensity_g_per_kwh),
        "intensity_source": outcome.intensity_rung,
        "intensity_age_s": outcome.intensity_age_s,
        "operational_g": _finite(outcome.operational_g),
        "embodied_g": outcome.embodied_g,
        "total_g": _finite(outcome.total_g),
        "details_json": json.dumps(details, allow_nan=False),
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _predicted(d: DecisionRecord, started_at: datetime) -> Alternative:
    def num(value: float | None) -> float:
        return math.nan if value is None else value

    return Alternative(
        device_ids=d.device_ids,
        region=d.region or "",
        gpu=d.gpu or "",
        start=d.planned_start or started_at,
        duration_s=num(d.expected_duration_s),
        energy_j=num(d.expected_energy_j),
        intensity_g_per_kwh=num(d.expected_intensity_g_per_kwh),
        operational_g=num(d.expected_operational_g),
        embodied_g=num(d.expected_embodied_g),
    )
