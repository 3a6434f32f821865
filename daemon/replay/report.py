"""Replay results: the per-job CSVs (``--out``). The summaries are in
:mod:`daemon.replay.summary`, the savings split in :mod:`daemon.replay.attribution`, the solver
rows in :mod:`daemon.replay.solvers` and the figures in :mod:`daemon.replay.plots`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from daemon.ledger.export import csv_cell, write_replacing
from daemon.replay.driver import JobOutcome, PolicyRun
from daemon.replay.summary import run_label
from policies.optimum import IntegerOptimum

__all__ = [
    "CSV_FIELDS",
    "OPTIMUM_CSV_FIELDS",
    "write_jobs_csv",
    "write_optimum_csv",
]

CSV_FIELDS = (
    "policy", "job_id", "arrival", "deadline", "started_at", "ended_at", "wait_s", "region",
    "zone", "gpu", "energy_j", "planned_intensity_g_per_kwh", "intensity_g_per_kwh",
    "operational_g", "embodied_g", "total_g", "missed_deadline", "grid_j", "pv_j", "battery_j",
    "offset_share",  # the share of the job's facility energy covered on site, as the report's
    "offset",  # deprecated: offset_share's name until 2026-12-07, written one release more
)  # fmt: skip


OPTIMUM_CSV_FIELDS = (
    "job_id", "started_at", "ended_at", "wait_s", "region", "zone", "gpu", "total_g",
)  # fmt: skip


def write_optimum_csv(path: Path, optimum: IntegerOptimum) -> None:
    """The best schedule's jobs (``--optimum --out``), one row each: where and when each
    starts and its grams (written to a temp file, then renamed)."""
    rows = (
        (s.job_id, s.start.isoformat(), (s.start + timedelta(seconds=s.duration_s)).isoformat(),
         round(s.wait_s, 3), s.region, s.zone, s.gpu, round(s.total_g, 6))
        for s in optimum.schedule
    )  # fmt: skip
    _write_csv(path, OPTIMUM_CSV_FIELDS, rows)


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """``header`` and ``rows`` as CSV at ``path`` (a temp file, then renamed), each text cell
    through :func:`~daemon.ledger.export.csv_cell`, the rule of every CSV carbond writes: job
    ids, region, zone and policy names come from the user's files, and one a spreadsheet
    would run as a formula (``=cmd|...``) is written with a leading ``'``."""

    def write(handle: Any) -> None:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([csv_cell(value) for value in row] for row in rows)

    path.parent.mkdir(parents=True, exist_ok=True)
    write_replacing(path, write)


def _row(policy: str, o: JobOutcome) -> list[object]:
    return [
        policy, o.job_id, o.arrival.isoformat(),
        o.deadline.isoformat() if o.deadline else "", o.started_at.isoformat(),
        o.ended_at.isoformat(), round(o.wait_s, 3), o.region, o.zone, o.gpu,
        round(o.energy_j, 3), round(o.planned_intensity_g_per_kwh, 3),
        round(o.intensity_g_per_kwh, 3), round(o.operational_g, 6), round(o.embodied_g, 6),
        round(o.total_g, 6), int(o.missed_deadline), round(o.grid_j, 3), round(o.pv_j, 3),
        round(o.battery_j, 3), round(o.offset, 6), round(o.offset, 6),
    ]  # fmt: skip


def write_jobs_csv(path: Path, runs: Sequence[PolicyRun]) -> None:
    """Every job of every run, one row each (written to a temp file, then renamed)."""
    _write_csv(path, CSV_FIELDS, (_row(run_label(run), o) for run in runs for o in run.outcomes))
