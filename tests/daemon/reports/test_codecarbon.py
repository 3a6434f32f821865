"""``carbond export --format codecarbon``: CodeCarbon's emissions.csv columns (issue 14 item 9)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.reports.codecarbon import codecarbon_csv
from daemon.reports.lines import JobLine
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service
from tests.daemon.reports.conftest import Run
from tests.daemon.reports.ledgers import migrated_v1_ledger

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
        assert float(row["gpu_energy"]) * 3.6e6 == pytest.approx(energy_j)  # the demo's PUE is 1
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
    # a table and no file: it said "name a table (jobs, ..., outcomes, ...)"
    err = carbond("export", "--state-dir", str(demo_state), "outcomes", code=2)
    assert err == (
        "carbond: error: export outcomes: name the file to write "
        "(carbond export outcomes outcomes.csv)\n"
    )


def test_energy_includes_the_pue_in_every_column_as_codecarbon_does() -> None:
    """CodeCarbon multiplies each component's energy by its ``pue``, so ``energy_consumed`` is
    ``cpu_energy + gpu_energy + ram_energy``; ``gpu_energy`` was the GPUs' kWh without PUE
    while ``energy_consumed`` had it: at PUE 1.4 the components fell 29 % short of the total."""
    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    energy_j, intensity, pue = 7_200_000.0, 50.0, 1.4  # 2 kWh at 50 g/kWh
    operational_g = energy_j / 3_600_000 * intensity * pue
    line = JobLine(
        job_id="j", name="j", state="succeeded", user="alice", model="llama-3.2-1b",
        region="qc", zone="CA-QC", gpu="T4", gpus=1, submitted_at=at, started_at=at,
        finished_at=at + timedelta(hours=1), duration_s=3600.0, energy_j=energy_j,
        energy_method="nvml-counter", predicted_energy_j=energy_j, intensity_g_per_kwh=intensity,
        intensity_source="electricitymaps", pue=pue, operational_g=operational_g,
        embodied_g=1.0, total_g=operational_g + 1.0, run_now_total_g=None, requests=1,
        output_tokens=150,
    )  # fmt: skip
    [row] = list(csv.DictReader(io.StringIO(codecarbon_csv([line]))))
    parts = sum(float(row[f"{c}_energy"]) for c in ("cpu", "gpu", "ram"))
    assert float(row["energy_consumed"]) == pytest.approx(parts) == pytest.approx(2 * pue)
    assert float(row["emissions"]) * 1000 == pytest.approx(
        float(row["energy_consumed"]) * intensity
    )
    assert float(row["gpu_power"]) == pytest.approx(2000.0)  # the GPU's own watts
    assert float(row["pue"]) == pue


HOSTILE_NAMES = ['=cmd|" /C calc"!A0', "+SUM(1,2)", "-2+3", "@x", "\tTAB", 'a,b "c"\nd',
                 "'=cmd|\" /C calc\"!A0", "'quoted"]  # fmt: skip


def test_a_submitters_job_name_reaches_no_spreadsheet_as_a_formula(
    tmp_path: Path, carbond: Run
) -> None:
    """Any user names their job; the operator opens the exports in a spreadsheet, which ran a
    name like ``=cmd|...`` as a formula. Such cells now start with ``'``; JSON is as stored.
    A name that starts with ``'`` gets one more (until 2026-12-07 it was kept as it was, so
    ``'=cmd...`` read as the marked ``=cmd...``): drop one leading ``'`` to have any name."""
    clock, executor = FakeClock(), RecordingExecutor()
    service = make_service(tmp_path, executor)
    service.start(clock())
    for i, name in enumerate(HOSTILE_NAMES):
        append(service.queue.path, job_line(id=f"j{i}", name=name))
    for _ in range(4):
        service.tick(clock.advance(3600))
    assert service.ledger.counts_by_state() == {"succeeded": len(HOSTILE_NAMES)}
    service.ledger.close()
    state = ("--state-dir", str(tmp_path))
    carbond("export", *state, "--format", "codecarbon", str(tmp_path / "emissions.csv"))
    carbond("export", *state, "jobs", str(tmp_path / "jobs.csv"))
    carbond("export", *state, "jobs", str(tmp_path / "jobs.json"))
    with (tmp_path / "emissions.csv").open(newline="") as f:
        emissions = {row["run_id"]: row["experiment_id"] for row in csv.DictReader(f)}
    with (tmp_path / "jobs.csv").open(newline="") as f:
        jobs = {row["job_id"]: row["name"] for row in csv.DictReader(f)}
    as_json = json.loads((tmp_path / "jobs.json").read_text())
    stored = {row["job_id"]: row["name"] for row in as_json}
    expected = {f"j{i}": name for i, name in enumerate(HOSTILE_NAMES)}
    assert stored == expected
    safe = {k: v if k == "j5" else "'" + v for k, v in expected.items()}  # j5 starts with "a"
    assert emissions == jobs == safe


@pytest.mark.parametrize(
    ("table", "fmt", "name", "message"),
    [((), "codecarbon", "x.json", "--format codecarbon writes CSV (name it {d}/x.csv)"),
     (("outcomes",), "csv", "x.JSON", "--format csv writes CSV (name it {d}/x.csv)"),
     (("outcomes",), "json", "x.csv", "--format json writes JSON (name it {d}/x.json)")],
)  # fmt: skip
def test_a_suffix_naming_the_other_format_is_refused(
    demo_state: Path, carbond: Run, tmp_path: Path, table: tuple[str, ...], fmt: str,
    name: str, message: str,
) -> None:  # fmt: skip
    """``export --format codecarbon x.json`` wrote CSV into x.json (and ``--format csv`` or
    ``json`` likewise into a file named for the other format); it is now refused, exit 2, and
    nothing is written. A suffix that names no format is taken as asked."""
    state = ("--state-dir", str(demo_state))
    target = tmp_path / name
    err = carbond("export", *state, *table, str(target), "--format", fmt, code=2)
    assert err == f"carbond: error: {target}: a .{target.suffix[1:].lower()} file, but " + (
        message.format(d=tmp_path) + "\n"
    )
    assert not target.exists()
    carbond("export", *state, *table, str(tmp_path / "x.txt"), "--format", fmt)
    header = {"codecarbon": "timestamp,", "csv": "job_id,", "json": "[\n"}[fmt]
    assert (tmp_path / "x.txt").read_text().startswith(header)


def test_dash_writes_to_stdout_not_to_a_file_named_dash(
    demo_state: Path, carbond: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``carbond export outcomes -`` wrote a file named ``-`` (and ``--format codecarbon -``
    too); ``-`` is stdout, as for ``submit --file -``: the rows only, CSV unless ``--format
    json``. ``--json`` (a summary on the same stdout) is refused."""
    monkeypatch.chdir(tmp_path)
    state = ("--state-dir", str(demo_state))
    rows = list(csv.DictReader(io.StringIO(carbond("export", *state, "outcomes", "-"))))
    outcomes = json.loads(carbond("export", *state, "outcomes", "-", "--format", "json"))
    assert [r["job_id"] for r in rows] == [r["job_id"] for r in outcomes] and len(rows) > 1
    emissions = carbond("export", *state, "--format", "codecarbon", "-")
    assert next(csv.reader(io.StringIO(emissions))) == EMISSIONS_CSV
    assert len(emissions.splitlines()) == len(rows) + 1
    err = carbond("export", *state, "outcomes", "-", "--json", code=2)
    assert "drop --json" in err
    assert list(tmp_path.iterdir()) == []


def test_a_reader_that_leaves_an_export_to_stdout_early_is_no_error(
    demo_state: Path, tmp_path: Path
) -> None:
    """``carbond export intensity_samples - | head -1``: the reader went away mid-table and
    the rows' generator, dropped after the ledger closed, printed 'Exception ignored ...
    LedgerError: Cannot operate on a closed database' on stderr."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:  # far more than a pipe holds: carbond is still writing when the reader leaves
        db.executemany(
            "INSERT INTO intensity_samples VALUES ('XX', ?, 100.0, 'test', ?)",
            ((f"2020-01-01T00:00:{i:07d}", "2020-01-01T00:00:00+00:00") for i in range(20_000)),
        )
    db.close()
    exe = Path(sys.executable).with_name("carbond")
    with subprocess.Popen(
        [str(exe), "export", "intensity_samples", "-", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"zone,at,intensity_g_per_kwh,source,recorded_at\r\n"
        proc.stdout.close()  # as head -1 does
        err = proc.stderr.read()
        assert (proc.wait(timeout=60), err) == (0, b"")


@pytest.mark.parametrize(
    ("zone", "country"),
    [("US-CAL-CISO", ("United States", "USA", "cal-ciso")), ("FR", ("France", "FRA", "")),
     ("BR-CS", ("", "", "br-cs")), ("DK-DK1", ("", "", "dk-dk1")), ("ZZ", ("", "", "zz"))],
)  # fmt: skip
def test_a_country_carbond_cannot_name_has_no_iso_code(
    zone: str, country: tuple[str, str, str]
) -> None:
    """CodeCarbon's ``country_iso_code`` is ISO 3166-1 alpha-3 (``USA``, ``FRA``), and empty
    when it cannot name the country; a zone of a country outside carbond's table (``BR-CS``)
    got the 2-letter ``BR`` as its code and its name, and lost the country from ``region``."""
    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    line = JobLine(
        job_id="j", name="j", state="succeeded", user="alice", model="llama-3.2-1b",
        region="r", zone=zone, gpu="T4", gpus=1, submitted_at=at, started_at=at,
        finished_at=at + timedelta(hours=1), duration_s=3600.0, energy_j=3.6e6,
        energy_method="nvml-counter", predicted_energy_j=3.6e6, intensity_g_per_kwh=50.0,
        intensity_source="electricitymaps", pue=1.0, operational_g=50.0, embodied_g=1.0,
        total_g=51.0, run_now_total_g=None, requests=1, output_tokens=150,
    )  # fmt: skip
    [row] = list(csv.DictReader(io.StringIO(codecarbon_csv([line]))))
    assert (row["country_name"], row["country_iso_code"], row["region"]) == country


def test_what_a_schema_1_ledger_did_not_record_is_exported_empty_not_zero(
    tmp_path: Path, carbond: Run
) -> None:
    """A ledger from before every job got carbon figures (schema 1) has, for a job nothing
    metered, the prediction only; migrated, it exported as 0.0 kg from 0.0 kWh (a dashboard
    summing emissions.csv counted it as free), and every schema-1 row's region was ``?``.
    Unknown figures are empty, as ``carbond report`` counts that job under ``no grams``."""
    migrated_v1_ledger(tmp_path)  # a schema-1 ledger, migrated as the daemon does

    out = carbond("export", "--state-dir", str(tmp_path), "--format", "codecarbon", "-")
    rows = {row["run_id"]: row for row in csv.DictReader(io.StringIO(out))}
    unknown = ("emissions", "emissions_rate", "gpu_power", "gpu_energy", "energy_consumed")
    assert {name: rows["slurm"][name] for name in unknown} == dict.fromkeys(unknown, "")
    assert rows["slurm"]["codecarbon_version"] == "carbond-unknown"
    assert float(rows["metered"]["emissions"]) == pytest.approx(0.030)
    assert float(rows["metered"]["energy_consumed"]) == pytest.approx(1.0)
    assert rows["metered"]["region"] == rows["slurm"]["region"] == ""
    report = json.loads(carbond("report", "--state-dir", str(tmp_path), "--json"))
    assert report["totals"]["unaccounted_jobs"] == 1


def test_a_file_that_cannot_be_written_is_named_before_the_ledger_is_read(
    tmp_path: Path, carbond: Run
) -> None:
    """``export --format codecarbon /typo/emissions.csv`` read every finished job (18 s on
    200,000) before saying it cannot write; it says so first, before the ledger is opened."""
    target = tmp_path / "missing-dir" / "emissions.csv"
    err = carbond("export", "--state-dir", str(tmp_path), "--format", "codecarbon", str(target),
                  code=1)  # fmt: skip
    assert err == f"carbond: error: {target}: cannot write: No such file or directory\n"


def test_the_count_is_of_the_rows_written(demo_state: Path, carbond: Run, tmp_path: Path) -> None:
    """An outcome without an end (an older carbond's, or one recorded by hand) has no
    CodeCarbon row, yet was counted: ``wrote 7 finished jobs`` over 6 rows. The rows are now
    written one at a time as they are made (200,000 jobs: 0.73 GB held, now 0.39) and
    counted as written."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:
        db.execute("UPDATE outcomes SET finished_at = NULL WHERE job_id = 'late-1b'")
    db.close()
    path = tmp_path / "emissions.csv"
    out = carbond("export", "--state-dir", str(tmp_path), "--format", "codecarbon", str(path),
                  "--json")  # fmt: skip
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert json.loads(out)["rows"] == len(rows) == len(_outcomes_of(tmp_path)) - 1


def _outcomes_of(state: Path) -> list[str]:
    db = sqlite3.connect(state / "ledger.db")
    try:
        return [r[0] for r in db.execute("SELECT job_id FROM outcomes")]
    finally:
        db.close()


def test_one_row_is_one_finished_job(demo_state: Path, carbond: Run, tmp_path: Path) -> None:
    """The line counted its noun in the plural whatever the count: ``wrote 1 finished jobs``
    (until 2026-12-07); it says ``1 finished job``, as ``export outcomes`` says ``1 row``."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:
        db.execute("UPDATE outcomes SET finished_at = NULL WHERE job_id != 'late-1b'")
    db.close()
    path = tmp_path / "emissions.csv"
    out = carbond("export", "--state-dir", str(tmp_path), "--format", "codecarbon", str(path))
    assert out == f"wrote 1 finished job to {path} (CodeCarbon emissions.csv)\n"
