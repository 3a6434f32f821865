"""Grouping job lines into report rows: sums, shares, intensity used, SCI and savings (pure).

Every figure of a group is a sum (or a ratio of sums) over its jobs, so the totals row is the
same aggregation over all jobs and equals the sum of the groups. Conventions:

- energy: the energy the grams use (kWh), with ``measured_share`` the fraction of it measured
  (``nvml-*``, ``simulated-*``, ``slurm-sacct``); the rest is ``estimated``;
- intensity: the mean realised grid intensity (g/kWh) weighted by the energy each job drew
  from the grid (facility energy, energy x PUE, less on-site PV and battery), so that grid kWh
  x intensity gives the grid's operational grams, and the signal rungs seen;
- SCI (Green Software Foundation): (operational + embodied) per functional unit, per request
  and per 1,000 output tokens: the grams of every job that declares them over the units of
  the jobs that succeeded (a failed or cancelled job's grams were spent, its requests not
  served; a group with none succeeded has no SCI);
- savings: run-now counterfactual grams (stored at submission) minus real grams, over jobs that
  have both; ``saved_share`` is their ratio to the counterfactual;
- deadlines: ``deadlines_missed``, the jobs that ended after their deadline (a job that
  expired unstarted has no line: the report's ``expired_unstarted`` counts those);
- on-site energy (regions with a site, docs/sites.md): facility energy (energy x PUE) from the
  grid, PV and battery (kWh) and ``offset_share``, the share covered on site (as
  ``measured_share`` and ``saved_share`` are shares); a job at a region
  without a site is all grid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from daemon.reports.lines import JobLine, in_order

__all__ = [
    "COLUMNS", "GROUPINGS", "TOTALS_KEY", "Grouping", "ReportRow", "group_key", "job_row",
    "summarise", "totals_row",
]  # fmt: skip

TOTALS_KEY: Final = "TOTAL"  # the totals row's key

J_PER_KWH: Final = 3_600_000
G_PER_KG: Final = 1000.0

Grouping = Literal["job", "user", "model", "gpu", "region", "day"]
GROUPINGS: Final[tuple[Grouping, ...]] = ("job", "user", "model", "gpu", "region", "day")

# A group's name; None: the jobs whose user, model, GPU or region the ledger did not record
# (``unknown`` in text, ``null`` in JSON: never a name a real group may have).
_KEYS: Final[dict[str, Callable[[JobLine], str | None]]] = {
    "job": lambda line: line.job_id,
    "user": lambda line: line.user,
    "model": lambda line: line.model,
    "gpu": lambda line: line.gpu,
    "region": lambda line: line.region,
    "day": lambda line: (line.finished_at or line.submitted_at).date().isoformat(),
}


def group_key(by: Grouping) -> Callable[[JobLine], str | None]:
    """The function naming a line's group for ``--by``."""
    return _KEYS[by]


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One group's figures (``key`` is the group's name, ``TOTAL`` for the totals row, None
    for the jobs whose user, model, GPU or region was not recorded)."""

    key: str | None
    jobs: int
    gpu_hours: float
    energy_kwh: float
    measured_share: float | None
    operational_kg: float
    embodied_kg: float
    total_kg: float
    unaccounted_jobs: int
    deadlines_missed: int
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
    offset_share: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain fields, in column order (``dataclasses.asdict`` deep-copies each value: a
        third of ``report --by job --json``'s time over many jobs)."""
        return {name: getattr(self, name) for name in COLUMNS}


COLUMNS: Final = tuple(ReportRow.__dataclass_fields__)


class _Sums:
    """The running sums of one group's lines, added one at a time in the order they are read
    (the same additions in the same order as summing a list of them: the same floats)."""

    __slots__ = (
        "battery_j", "embodied_g", "energy_j", "facility_j", "gpu_hours", "jobs", "late",
        "measured_j", "methods", "operational_g", "paired", "pv_j", "request_g", "requests",
        "run_now_g", "saved_g", "sources", "token_g", "tokens_k", "total_g", "weight_j",
        "weighted", "with_grams",
    )  # fmt: skip

    def __init__(self) -> None:
        self.jobs = self.with_grams = self.paired = self.requests = self.late = 0
        self.gpu_hours = 0.0
        self.energy_j: float = 0
        self.measured_j: float = 0
        self.operational_g: float = 0
        self.embodied_g: float = 0
        self.total_g: float = 0
        self.weight_j: float = 0
        self.weighted: float = 0
        self.request_g: float = 0
        self.token_g: float = 0
        self.tokens_k: float = 0
        self.run_now_g: float = 0
        self.saved_g: float = 0
        self.pv_j: float = 0
        self.battery_j: float = 0
        self.facility_j: float = 0
        self.sources: set[str] = set()
        self.methods: set[str] = set()

    def add(self, line: JobLine) -> None:
        """Count ``line`` in."""
        self.jobs += 1
        self.late += line.deadline_missed
        self.gpu_hours += line.gpu_hours
        self.energy_j += line.energy_j or 0.0
        if line.measured:
            self.measured_j += line.energy_j or 0.0
        if line.total_g is not None:
            self.with_grams += 1
            self.total_g += line.total_g
            self.operational_g += line.operational_g or 0.0
            self.embodied_g += line.embodied_g or 0.0
            served = line.state == "succeeded"  # else its requests were not (all) served
            if line.requests > 0:
                self.request_g += line.total_g
                self.requests += line.requests if served else 0
            if line.output_tokens > 0:
                self.token_g += line.total_g
                self.tokens_k += line.output_tokens / 1000 if served else 0.0
            if line.run_now_total_g is not None:
                self.paired += 1
                self.run_now_g += line.run_now_total_g
                self.saved_g += line.saved_g or 0.0
        grid_j = line.grid_j
        if grid_j and line.intensity_g_per_kwh is not None:
            self.weight_j += grid_j
            self.weighted += grid_j * line.intensity_g_per_kwh
        self.pv_j += line.site_pv_j or 0.0
        self.battery_j += line.site_battery_j or 0.0
        self.facility_j += line.facility_j
        self.sources.add(line.intensity_source)
        self.methods.add(line.energy_method)

    def row(self, key: str | None) -> ReportRow:
        """The group's figures under ``key``."""
        paired, pv, battery, facility = self.paired, self.pv_j, self.battery_j, self.facility_j
        return ReportRow(
            key=key,
            jobs=self.jobs,
            gpu_hours=self.gpu_hours,
            energy_kwh=self.energy_j / J_PER_KWH,
            measured_share=self.measured_j / self.energy_j if self.energy_j > 0 else None,
            operational_kg=self.operational_g / G_PER_KG,
            embodied_kg=self.embodied_g / G_PER_KG,
            total_kg=self.total_g / G_PER_KG,
            unaccounted_jobs=self.jobs - self.with_grams,
            deadlines_missed=self.late,
            intensity_g_per_kwh=self.weighted / self.weight_j if self.weight_j > 0 else None,
            intensity_sources=_names(self.sources),
            energy_methods=_names(self.methods),
            sci_g_per_request=self.request_g / self.requests if self.requests > 0 else None,
            sci_g_per_1k_output_tokens=self.token_g / self.tokens_k if self.tokens_k > 0 else None,
            run_now_kg=self.run_now_g / G_PER_KG if paired else None,
            saved_kg=self.saved_g / G_PER_KG if paired else None,
            saved_share=self.saved_g / self.run_now_g if paired and self.run_now_g > 0 else None,
            grid_kwh=max(facility - pv - battery, 0.0) / J_PER_KWH,
            pv_kwh=pv / J_PER_KWH,
            battery_kwh=battery / J_PER_KWH,
            offset_share=(pv + battery) / facility if facility > 0 else None,
        )


def _names(values: Iterable[str]) -> str:
    return "+".join(sorted({part for value in values for part in value.split("+") if part}))


def job_row(line: JobLine) -> ReportRow:
    """The row of ``--by job`` of ``line`` (a job is its own group): made as it is read."""
    sums = _Sums()
    sums.add(line)
    return sums.row(line.job_id)


def totals_row(lines: Iterable[JobLine]) -> ReportRow:
    """The totals row over ``lines``, summed in their order as they are read."""
    sums = _Sums()
    for line in lines:
        sums.add(line)
    return sums.row(TOTALS_KEY)


def summarise(lines: Iterable[JobLine], by: Grouping) -> tuple[list[ReportRow], ReportRow]:
    """Rows per group (sorted by key, the unknown group last) and the totals row over every
    line, summed in one pass as the lines are read (none is held)."""
    key = group_key(by)
    groups: dict[str | None, _Sums] = {}
    totals = _Sums()
    for line in lines:
        name = key(line)
        sums = groups.get(name)
        if sums is None:
            sums = groups[name] = _Sums()
        sums.add(line)
        totals.add(line)
    return [groups[name].row(name) for name in in_order(groups)], totals.row(TOTALS_KEY)
