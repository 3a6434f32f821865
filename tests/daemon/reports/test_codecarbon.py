"""``carbond export --format codecarbon``: CodeCarbon's emissions.csv columns (issue 14 item 9)."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest

from tests.daemon.reports.conftest import Run

# CodeCarbon 2.x ``EmissionsData`` field order (codecarbon/output_methods/emissions_data.py),
# the header its file output writes to emissions.csv: the contract, written out by hand.
EMISSIONS_CSV = [
    "timestamp",
    "project_name",
    "run_id",
    "experiment_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "on_cloud",
    "pue",
]


def test_finished_jobs_export_as_codecarbon_rows(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    path = tmp_path / "emissions.csv"
    carbond("export", "--state-dir", str(demo_state), "--format", "codecarbon", str(path))
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == EMISSIONS_CSV
        rows = list(reader)
    db = sqlite3.connect(demo_state / "ledger.db")
    outcomes = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT job_id, operational_g, energy_j, realised_intensity_g_per_kwh, duration_s,"
            " energy_method FROM outcomes"
        )
    }
    db.close()
    assert {r["run_id"] for r in rows} == set(outcomes)
    for row in rows:
        operational_g, energy_j, intensity, duration_s, method = outcomes[row["run_id"]]
        assert float(row["emissions"]) * 1000 == pytest.approx(operational_g)
        assert float(row["gpu_energy"]) * 3.6e6 == pytest.approx(energy_j)
        assert float(row["energy_consumed"]) * intensity == pytest.approx(
            float(row["emissions"]) * 1000
        )
        assert float(row["duration"]) == pytest.approx(duration_s)
        assert row["codecarbon_version"] == f"carbond-{method}"
        assert row["country_iso_code"] in {"CAN", "USA"}
        assert row["timestamp"][4] == "-" and "+" not in row["timestamp"]


def test_a_table_export_still_works_and_a_missing_table_is_named(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    carbond("export", "--state-dir", str(demo_state), "outcomes", str(tmp_path / "o.csv"))
    assert (tmp_path / "o.csv").read_text().startswith("job_id,")
    err = carbond("export", "--state-dir", str(demo_state), str(tmp_path / "x.csv"), code=2)
    assert "name a table" in err
