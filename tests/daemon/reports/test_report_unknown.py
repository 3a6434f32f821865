"""What the ledger did not record reads one way in every report: ``unknown`` in text, ``null``
in JSON (an empty cell in CSV), for a job's model, GPU and region as for its energy method,
signal rung and grid zone."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.daemon.reports.conftest import Run


@pytest.fixture
def unrecorded(demo_state: Path, tmp_path: Path) -> tuple[Path, str]:
    """The demo's ledger with one finished job's region, GPU, zone, energy method and signal
    rung unrecorded (as ledger schema 1 left them) and its model undeclared; returns the state
    dir and the job's id."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:
        (job_id,) = db.execute("SELECT job_id FROM outcomes ORDER BY job_id LIMIT 1").fetchone()
        db.execute(
            "UPDATE outcomes SET region = NULL, gpu = NULL, zone = NULL, energy_method = NULL,"
            " intensity_source = NULL WHERE job_id = ?",
            (job_id,),
        )
        (spec,) = db.execute("SELECT spec_json FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        spec = {k: v for k, v in json.loads(spec).items() if k not in ("model", "params_b")}
        db.execute("UPDATE jobs SET spec_json = ? WHERE job_id = ?", (json.dumps(spec), job_id))
    db.close()
    return tmp_path, str(job_id)


@pytest.mark.parametrize("by", ["model", "gpu", "region"])
def test_an_unrecorded_group_is_unknown_in_text_and_null_in_json(
    unrecorded: tuple[Path, str], carbond: Run, by: str
) -> None:
    state, _ = unrecorded
    args = ("report", "--state-dir", str(state), "--until", "2100-01-01", "--by", by)
    report = json.loads(carbond(*args, "--json"))
    keys = [row["key"] for row in report["rows"]]
    assert keys[-1] is None and None not in keys[:-1]  # one group, listed last
    assert "?" not in keys and "unknown" not in keys
    (unknown,) = [row for row in report["rows"] if row["key"] is None]
    assert unknown["jobs"] == 1
    table = carbond(*args, "--format", "table")
    md = carbond(*args, "--format", "md")
    for text in (table, md):
        assert " unknown " in text
        assert "?" not in text  # no group, method or rung reads "?"
    rows = list(csv.DictReader(io.StringIO(carbond(*args, "--format", "csv"))))
    assert [r["key"] for r in rows][-2:] == ["", "TOTAL"]  # unknown: empty, as every null


def test_methods_and_rungs_not_recorded_read_the_same_word(
    unrecorded: tuple[Path, str], carbond: Run
) -> None:
    state, job_id = unrecorded
    args = ("report", "--state-dir", str(state), "--until", "2100-01-01", "--by", "job")
    (row,) = [r for r in json.loads(carbond(*args, "--json"))["rows"] if r["key"] == job_id]
    assert row["energy_methods"] == "unknown"
    assert row["intensity_sources"] == "unknown"  # was "none": a rung, not "not recorded"


def test_the_audit_and_the_codecarbon_export_name_no_group_none_or_question_mark(
    unrecorded: tuple[Path, str], carbond: Run, tmp_path: Path
) -> None:
    state, _ = unrecorded
    out = tmp_path / "statement.md"
    carbond("report", "--state-dir", str(state), "--until", "2100-01-01", "--audit", "-o",
            str(out))  # fmt: skip
    statement = out.read_text()
    assert "| unknown |" in statement and "| None |" not in statement
    assert "| ? |" not in statement
    exported = carbond("export", "--state-dir", str(state), "--format", "codecarbon", "-")
    models = [r["gpu_model"] for r in csv.DictReader(io.StringIO(exported))]
    assert "" in models and not any("None" in m or "?" in m for m in models)
