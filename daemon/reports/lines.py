"""One accounted line per finished job, from the ledger's outcome rows (pure).

A line holds what every report, plot and export reads: where and when the job ran, the energy
its grams use and how it was obtained, the intensity it saw, its grams, its functional units
(requests, output tokens) and the run-now counterfactual stored at submission.
"""

from __future__ import annotations

import functools
import json
import math
import pwd
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from daemon.accounting import is_measured
from daemon.ledger.accounting import Accounting
from daemon.ledger.values import dt, req_dt
from daemon.natural_order import natural_key

__all__ = [
    "UNKNOWN",
    "UNKNOWN_ZONE",
    "JobLine",
    "in_order",
    "job_lines",
    "ledger_lines",
    "read_lines",
    "shown",
    "signal_sources",
    "user_name",
]


# What reports write for anything the ledger did not record (a job's user, model, region, GPU,
# grid zone, energy method or signal rung): one word in text; ``null`` in JSON, an empty cell
# in CSV (a report's group, :mod:`daemon.reports.render`).
UNKNOWN: Final = "unknown"
# The grid zone of a job whose outcome did not record one (ledger schema 1), as reports show it.
UNKNOWN_ZONE: Final = UNKNOWN


@dataclass(frozen=True, slots=True)
class JobLine:
    """A finished job's accounting. Grams and energies are None where unknown, and so are the
    user, model, region and GPU the ledger did not record (:func:`shown` writes them);
    ``gpus`` is the number of GPUs it held."""

    job_id: str
    name: str
    state: str
    user: str | None
    model: str | None
    region: str | None
    zone: str
    gpu: str | None
    gpus: int
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float
    energy_j: float | None
    energy_method: str
    predicted_energy_j: float | None
    intensity_g_per_kwh: float | None
    intensity_source: str
    pue: float | None
    operational_g: float | None
    embodied_g: float | None
    total_g: float | None
    run_now_total_g: float | None
    requests: int
    output_tokens: int
    # On-site energy at a region with a site (facility J); None elsewhere (all grid).
    site_pv_j: float | None = None
    site_battery_j: float | None = None
    site_grid_j: float | None = None
    deadline: datetime | None = None

    @property
    def facility_j(self) -> float:
        """The job's facility energy (``energy_j`` x PUE), 0 when unknown."""
        return (self.energy_j or 0.0) * (self.pue or 1.0)

    @property
    def onsite_j(self) -> float:
        """Facility energy the site covered (PV + battery), 0 without a site."""
        return (self.site_pv_j or 0.0) + (self.site_battery_j or 0.0)

    @property
    def grid_j(self) -> float:
        """Facility energy drawn from the grid (J): all of it at a region without a site."""
        return self.site_grid_j if self.site_grid_j is not None else self.facility_j

    @property
    def gpu_hours(self) -> float:
        """GPU-hours held (GPUs x hours)."""
        return self.gpus * self.duration_s / 3600.0

    @property
    def measured(self) -> bool:
        """Whether the energy was measured (not estimated)."""
        return self.energy_j is not None and is_measured(self.energy_method)

    @property
    def deadline_missed(self) -> bool:
        """Whether the job ended after its deadline (False without one)."""
        return (
            self.deadline is not None
            and self.finished_at is not None
            and self.finished_at > self.deadline
        )

    @property
    def saved_g(self) -> float | None:
        """Grams saved against the run-now counterfactual (negative: cost more)."""
        if self.run_now_total_g is None or self.total_g is None:
            return None
        return self.run_now_total_g - self.total_g


@functools.lru_cache(maxsize=4096)  # a report reads one name per job: 100,000 passwd lookups
def user_name(uid: int) -> str:
    """The login name of ``uid`` (its number when unknown)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def shown(value: str | None) -> str:
    """``value`` as text: :data:`UNKNOWN` for None (not recorded)."""
    return UNKNOWN if value is None else value


def in_order(names: Iterable[str | None]) -> list[str | None]:
    """The distinct ``names``, in natural order (:mod:`daemon.natural_order`: ``r2`` before
    ``r10``), None (not recorded) last."""
    return sorted(set(names), key=lambda name: (name is None, natural_key(name or ""), name or ""))


def job_lines(
    rows: Iterable[Mapping[str, Any]], users: Callable[[int], str] = user_name
) -> list[JobLine]:
    """Lines of ``rows`` (:meth:`daemon.ledger.Ledger.finished_outcomes`), in order."""
    return [_line(row, users) for row in rows]


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _line(row: Mapping[str, Any], users: Callable[[int], str]) -> JobLine:
    spec = json.loads(row.get("spec_json") or "{}")
    model = spec.get("model") or (f"{spec['params_b']}B" if spec.get("params_b") else None)
    requests = int(spec.get("requests") or 0)
    return JobLine(
        job_id=str(row["job_id"]),
        name=str(row.get("name") or ""),
        state=str(row.get("state") or ""),
        user=users(int(row["uid"])) if row.get("uid") is not None else None,
        model=None if model is None else str(model),
        region=_text(row.get("region")),
        zone=str(row.get("zone") or UNKNOWN_ZONE),
        gpu=_text(row.get("gpu")),
        gpus=int(row.get("gpus") or 0),
        submitted_at=req_dt(str(row["submitted_at"])),
        started_at=dt(row.get("started_at")),
        finished_at=dt(row.get("finished_at")),
        duration_s=_num(row.get("duration_s")) or 0.0,
        energy_j=_num(row.get("energy_j")),
        energy_method=str(row.get("energy_method") or UNKNOWN),
        predicted_energy_j=_num(row.get("predicted_energy_j")),
        intensity_g_per_kwh=_num(row.get("realised_intensity_g_per_kwh")),
        intensity_source=str(row.get("intensity_source") or UNKNOWN),
        pue=_num(row.get("pue")),
        operational_g=_num(row.get("operational_g")),
        embodied_g=_num(row.get("embodied_g")),
        total_g=_num(row.get("total_g")),
        run_now_total_g=_num(row.get("run_now_total_g")),
        requests=requests,
        output_tokens=requests * int(spec.get("output_tokens") or 0),
        site_pv_j=_num(row.get("site_pv_j")),
        site_battery_j=_num(row.get("site_battery_j")),
        site_grid_j=_num(row.get("site_grid_j")),
        deadline=dt(row.get("deadline")),
    )


def ledger_lines(
    ledger: Accounting, since: datetime | None = None, until: datetime | None = None
) -> list[JobLine]:
    """The lines of the jobs that finished in ``[since, until)``."""
    return job_lines(ledger.finished_outcomes(since, until))


def read_lines(
    ledger: Accounting,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    by_job: bool = False,
) -> Iterator[JobLine]:
    """:func:`ledger_lines`, made one at a time as they are read (``by_job``: in job id
    order, not the order they finished in)."""
    return (_line(row, user_name) for row in ledger.finished_outcomes(since, until, by_job=by_job))


def signal_sources(
    ledger: Accounting, since: datetime | None = None, until: datetime | None = None
) -> str:
    """The intensity signal sources recorded over the period, e.g. ``electricitymaps (CA-QC,
    US-CAL-CISO)``, or ``none recorded``. The daemon's signal is the lifecycle (LCA) average
    intensity; sources name where each sample came from."""
    zones: dict[str, list[str]] = {}
    for row in ledger.intensity_sources(since, until):
        zones.setdefault(str(row["source"]), []).append(str(row["zone"]))
    if not zones:
        return "none recorded"
    return "; ".join(f"{source} ({', '.join(z)})" for source, z in sorted(zones.items()))
