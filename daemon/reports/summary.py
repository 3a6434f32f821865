"""Grouping job lines into report rows: sums, shares, intensity used, SCI and savings (pure).

Every figure of a group is a sum (or a ratio of sums) over its jobs, so the totals row is the
same aggregation over all jobs and equals the sum of the groups. Conventions:

- energy: the energy the grams use (kWh), with ``measured_share`` the fraction of it measured
  (``nvml-*``, ``simulated-*``, ``slurm-sacct``); the rest is ``estimated``;
- intensity: the mean realised grid intensity (g/kWh) weighted by the energy each job drew
  from the grid (facility energy, energy x PUE, less on-site PV and battery), so that grid kWh
  x intensity gives the grid's operational grams, and the signal rungs seen;
- SCI (Green Software Foundation): (operational + embodied) per functional unit, per request
  and per 1,000 output tokens, over the jobs that declare them;
- savings: run-now counterfactual grams (stored at submission) minus real grams, over jobs that
  have both; ``saved_share`` is their ratio to the counterfactual;
- on-site energy (regions with a site, docs/sites.md): facility energy (energy x PUE) from the
  grid, PV and battery (kWh) and ``offset``, the share covered on site; a job at a region
  without a site is all grid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from daemon.reports.lines import JobLine

__all__ = ["COLUMNS", "GROUPINGS", "Grouping", "ReportRow", "group_key", "summarise"]

J_PER_KWH: Final = 3_600_000
G_PER_KG: Final = 1000.0

Grouping = Literal["job", "user", "model", "gpu", "region", "day"]
GROUPINGS: Final[tuple[Grouping, ...]] = ("job", "user", "model", "gpu", "region", "day")

_KEYS: Final[dict[str, Callable[[JobLine], str]]] = {
    "job": lambda line: line.job_id,
    "user": lambda line: line.user,
    "model": lambda line: line.model,
    "gpu": lambda line: line.gpu,
    "region": lambda line: line.region,
    "day": lambda line: (line.finished_at or line.submitted_at).date().isoformat(),
}


def group_key(by: Grouping) -> Callable[[JobLine], str]:
    """The function naming a line's group for ``--by``."""
    return _KEYS[by]


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One group's figures (``key`` is the group's name, ``TOTAL`` for the totals row)."""

    key: str
    jobs: int
    gpu_hours: float
    energy_kwh: float
    measured_share: float | None
    operational_kg: float
    embodied_kg: float
    total_kg: float
    unaccounted_jobs: int
    intensity_g_per_kwh: float | None
    intensity_sources: str
    energy_methods: str
    sci_g_per_request: float | None
    sci_g_per_1k_output_tokens: float | None
    run_now_kg: float | None
    saved_kg: float | None
    saved_share: float | None
    grid_kwh: float = 0.0
    pv_kwh: float = 0.0
    battery_kwh: float = 0.0
    offset: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain fields, in column order (``dataclasses.asdict`` deep-copies each value: a
        third of ``report --by job --json``'s time over many jobs)."""
        return {name: getattr(self, name) for name in COLUMNS}


COLUMNS: Final = tuple(ReportRow.__dataclass_fields__)


def _row(key: str, lines: Sequence[JobLine]) -> ReportRow:
    energy_j = sum(line.energy_j or 0.0 for line in lines)
    measured_j = sum(line.energy_j or 0.0 for line in lines if line.measured)
    with_grams = [line for line in lines if line.total_g is not None]
    total_g = sum(line.total_g or 0.0 for line in with_grams)
    weighted = [
        (line.grid_j, line.intensity_g_per_kwh)
        for line in lines
        if line.grid_j and line.intensity_g_per_kwh is not None
    ]
    weight = sum(e for e, _ in weighted)
    per_request = [line for line in with_grams if line.requests > 0]
    per_token = [line for line in with_grams if line.output_tokens > 0]
    paired = [line for line in with_grams if line.run_now_total_g is not None]
    run_now_g = sum(line.run_now_total_g or 0.0 for line in paired)
    saved_g = sum(line.saved_g or 0.0 for line in paired)
    return ReportRow(
        key=key,
        jobs=len(lines),
        gpu_hours=sum((line.gpu_hours for line in lines), 0.0),
        energy_kwh=energy_j / J_PER_KWH,
        measured_share=measured_j / energy_j if energy_j > 0 else None,
        operational_kg=sum(line.operational_g or 0.0 for line in with_grams) / G_PER_KG,
        embodied_kg=sum(line.embodied_g or 0.0 for line in with_grams) / G_PER_KG,
        total_kg=total_g / G_PER_KG,
        unaccounted_jobs=len(lines) - len(with_grams),
        intensity_g_per_kwh=sum(e * i for e, i in weighted) / weight if weight > 0 else None,
        intensity_sources=_names(line.intensity_source for line in lines),
        energy_methods=_names(line.energy_method for line in lines),
        sci_g_per_request=_ratio(per_request, lambda line: line.requests),
        sci_g_per_1k_output_tokens=_ratio(per_token, lambda line: line.output_tokens / 1000),
        run_now_kg=run_now_g / G_PER_KG if paired else None,
        saved_kg=saved_g / G_PER_KG if paired else None,
        saved_share=saved_g / run_now_g if paired and run_now_g > 0 else None,
        **_onsite(lines),
    )


def _onsite(lines: Sequence[JobLine]) -> dict[str, Any]:
    """Grid, PV and battery kWh of the group's facility energy and the on-site offset."""
    pv = sum(line.site_pv_j or 0.0 for line in lines)
    battery = sum(line.site_battery_j or 0.0 for line in lines)
    facility = sum(line.facility_j for line in lines)
    return {
        "grid_kwh": max(facility - pv - battery, 0.0) / J_PER_KWH,
        "pv_kwh": pv / J_PER_KWH,
        "battery_kwh": battery / J_PER_KWH,
        "offset": (pv + battery) / facility if facility > 0 else None,
    }


def _names(values: Iterable[str]) -> str:
    return "+".join(sorted({part for value in values for part in value.split("+") if part}))


def _ratio(lines: Sequence[JobLine], unit: Callable[[JobLine], float]) -> float | None:
    units = sum(unit(line) for line in lines)
    return sum(line.total_g or 0.0 for line in lines) / units if units > 0 else None


def summarise(lines: Sequence[JobLine], by: Grouping) -> tuple[list[ReportRow], ReportRow]:
    """Rows per group (sorted by key) and the totals row over every line."""
    key = group_key(by)
    groups: dict[str, list[JobLine]] = {}
    for line in lines:
        groups.setdefault(key(line), []).append(line)
    rows = [_row(name, groups[name]) for name in sorted(groups)]
    return rows, _row("TOTAL", lines)
