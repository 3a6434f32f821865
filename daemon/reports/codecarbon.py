"""``carbond export --format codecarbon``: finished jobs as rows of CodeCarbon's ``emissions.csv``.

Columns and order are CodeCarbon 2.x's ``EmissionsData`` (the ``emissions.csv`` its file output
writes and its dashboards read; 3.x appends utilisation and water columns, which readers treat
as optional). One row per finished job, with CodeCarbon's units and meanings:

- ``emissions`` (kg) is operational only (energy x intensity x PUE), as CodeCarbon computes it;
  the embodied share carbond also accounts is in ``carbond report``;
- energy (kWh) is the GPUs' times the site's PUE, as CodeCarbon applies its ``pue`` to each
  component's energy: ``gpu_energy`` and ``energy_consumed`` (their sum with CPU and RAM, which
  are not measured: 0) are equal, and ``emissions = energy_consumed x intensity`` (at a region
  with on-site PV or batteries, ``emissions`` is the grid part's grams plus the PV and battery
  energy's life-cycle grams, docs/sites.md); ``gpu_power`` (W) is the GPUs' own mean power;
- ``timestamp`` is the job's end in UTC, without an offset as CodeCarbon writes it (CodeCarbon
  writes its host's local time: rows of a tracker on a host not on UTC are that far apart);
- ``tracking_mode`` is ``process`` (energy attributed per job) and ``codecarbon_version`` names
  carbond and the energy method (``carbond-nvml-counter``, ``carbond-estimated``, ...);
- ``country_*`` and ``region`` come from the grid zone (``US-CAL-CISO``: USA, ``CAL-CISO``;
  a country carbond cannot name, ``BR-CS``: empty country fields, region ``br-cs``);
- what carbond does not know is left empty, never 0: the energy (``gpu_energy``,
  ``energy_consumed``, ``gpu_power``) of a job nothing metered that an older carbond recorded
  (ledger schema 1 stored only the prediction for it: no energy, no grams, no method, which
  ``codecarbon_version`` names ``carbond-unknown``), its ``emissions`` and ``emissions_rate``
  (also those of a job whose intensity was unknown: ``carbond report`` counts both under
  ``no grams``), and ``region`` where the grid zone was not recorded (schema 1 did not);
- ``experiment_id`` is the job's name, which its submitter chose: a name that would start a
  spreadsheet formula is written with a leading ``'`` (:func:`daemon.ledger.export.csv_cell`).
"""

from __future__ import annotations

import csv
import io
import platform
from collections.abc import Iterable, Iterator
from typing import Any, Final, TextIO

from daemon.ledger.export import csv_cell
from daemon.reports.lines import UNKNOWN_ZONE, JobLine

__all__ = ["CODECARBON_COLUMNS", "codecarbon_csv", "codecarbon_rows", "write_codecarbon"]

CODECARBON_COLUMNS: Final = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions",
    "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy",
    "ram_energy", "energy_consumed", "country_name", "country_iso_code", "region",
    "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version", "cpu_count",
    "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude", "ram_total_size",
    "tracking_mode", "on_cloud", "pue",
)  # fmt: skip

J_PER_KWH: Final = 3_600_000

# ISO 3166 alpha-2 of the zone keys carbond knows -> (alpha-3, name), as CodeCarbon writes them.
_COUNTRIES: Final = {
    "CA": ("CAN", "Canada"), "DE": ("DEU", "Germany"), "ES": ("ESP", "Spain"),
    "FR": ("FRA", "France"), "GB": ("GBR", "United Kingdom"), "NO": ("NOR", "Norway"),
    "US": ("USA", "United States"), "IE": ("IRL", "Ireland"), "NL": ("NLD", "Netherlands"),
    "SE": ("SWE", "Sweden"), "FI": ("FIN", "Finland"), "JP": ("JPN", "Japan"),
    "AU": ("AUS", "Australia"), "IN": ("IND", "India"), "SG": ("SGP", "Singapore"),
}  # fmt: skip


def _country(zone: str) -> tuple[str, str, str]:
    """``(name, alpha-3, region)`` of an Electricity Maps zone key. A country not in
    :data:`_COUNTRIES` has an empty name and code, as CodeCarbon writes a country it cannot
    name (its column is alpha-3: ``BR`` would be no code at all), and the whole zone key as
    its region, so that where the job ran is not lost."""
    if zone == UNKNOWN_ZONE:  # not recorded (schema 1): CodeCarbon leaves it empty
        return "", "", ""
    code, _, rest = zone.partition("-")
    known = _COUNTRIES.get(code.upper())
    if known is None:
        return "", "", zone
    alpha3, name = known
    return name, alpha3, rest


def codecarbon_rows(lines: Iterable[JobLine]) -> Iterator[dict[str, Any]]:
    """One CodeCarbon row per line that has an end (see the module docstring), made as they
    are iterated."""
    system = platform.platform()
    python = platform.python_version()
    for line in lines:
        if line.finished_at is None:
            continue
        pue = line.pue or 1.0
        energy_kwh = None if line.energy_j is None else line.energy_j / J_PER_KWH * pue
        emissions_kg = None if line.operational_g is None else line.operational_g / 1000
        duration = line.duration_s
        name, alpha3, region = _country(line.zone)
        yield {
            "timestamp": line.finished_at.strftime("%Y-%m-%dT%H:%M:%S"),
            "project_name": "carbond",
            "run_id": line.job_id,
            "experiment_id": line.name or line.job_id,
            "duration": duration,
            "emissions": emissions_kg,
            "emissions_rate": _per_s(emissions_kg, duration),
            "cpu_power": 0.0,
            "gpu_power": _per_s(line.energy_j, duration),
            "ram_power": 0.0,
            "cpu_energy": 0.0,
            "gpu_energy": energy_kwh,
            "ram_energy": 0.0,
            "energy_consumed": energy_kwh,
            "country_name": name,
            "country_iso_code": alpha3,
            "region": region.lower(),
            "cloud_provider": "",
            "cloud_region": "",
            "os": system,
            "python_version": python,
            "codecarbon_version": f"carbond-{line.energy_method}",
            "cpu_count": 0,
            "cpu_model": "",
            "gpu_count": line.gpus,
            "gpu_model": "" if line.gpu is None else f"{line.gpus} x {line.gpu}",
            "longitude": "",
            "latitude": "",
            "ram_total_size": 0,
            "tracking_mode": "process",
            "on_cloud": "N",
            "pue": pue,
        }  # fmt: skip


def _per_s(value: float | None, duration_s: float) -> float | None:
    """``value`` per second of the run (None: unknown; 0 for a run of no duration)."""
    if value is None:
        return None
    return value / duration_s if duration_s > 0 else 0.0


def write_codecarbon(lines: Iterable[JobLine], out: TextIO) -> int:
    """:func:`codecarbon_rows` written to ``out`` as ``emissions.csv`` (header first), one row
    at a time (200,000 jobs held as rows and then as one text took 0.7 GB); returns how many
    rows were written."""
    writer = csv.DictWriter(out, fieldnames=CODECARBON_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in codecarbon_rows(lines):
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
        count += 1
    return count


def codecarbon_csv(lines: Iterable[JobLine]) -> str:
    """:func:`write_codecarbon` as text."""
    out = io.StringIO()
    write_codecarbon(lines, out)
    return out.getvalue()
