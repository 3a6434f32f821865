"""``carbond report --audit``'s "Emissions by month": what its energy columns are, and how they
reconcile with the grams."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.daemon.reports.conftest import Run


def _table(statement: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """The headings and the rows (cells stripped) of the first table under ``heading``."""
    section = statement.split(f"## {heading}\n\n", 1)[1].split("\n## ", maxsplit=1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    return cells[0], cells[1:]


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_the_monthly_energy_columns_say_gpu_and_facility_and_reconcile_with_the_grams(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    """The column read "energy kWh": the GPUs' own energy, before PUE, beside grams that include
    PUE, so an auditor multiplying it by the emission factor came out short by the PUE. The
    columns say GPU energy, and the facility energy (GPU energy x PUE) is beside it: times the
    energy-weighted factor of each region it is the operational grams."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:  # one region's site at PUE 1.5, its grams charged on it as the daemon does
        db.execute("UPDATE outcomes SET pue = 1.5, operational_g = operational_g * 1.5,"
                   " total_g = operational_g * 1.5 + embodied_g WHERE zone = 'CA-QC'")  # fmt: skip
    text = carbond("report", "--state-dir", str(tmp_path), "--audit")
    headings, rows = _table(text, "Emissions by month")
    assert "energy kWh" not in headings
    assert headings[2:6] == ["GPU energy kWh", "GPU measured kWh", "GPU estimated kWh",
                             "facility energy kWh (GPU x PUE)"]  # fmt: skip
    gpu_j, facility_j = db.execute(
        "SELECT sum(energy_j), sum(energy_j * coalesce(pue, 1)) FROM outcomes"
    ).fetchone()
    db.close()
    month = next(row for row in rows if row[0] == "2026-03")
    assert _number(month[2]) == pytest.approx(gpu_j / 3.6e6, rel=1e-5)
    assert _number(month[5]) == pytest.approx(facility_j / 3.6e6, rel=1e-5)
    assert facility_j > gpu_j
    operational_kg = _number(month[headings.index("operational kgCO2e")])
    factor_headings, factors = _table(text, "Emission factors and PUE")
    grid = factor_headings.index("grid kWh (facility energy from the grid)")
    summed = sum(_number(r[grid]) * _number(r[3]) for r in factors if r[0] == "2026-03") / 1000
    assert summed == pytest.approx(operational_kg, rel=1e-3)
    assert "facility energy" in text.split("## Emissions by month", 1)[1].split("|", 1)[0]
    assert "GPU kWh" in _table(text, "Energy measured and estimated")[0]


def _two_months(demo_state: Path, tmp_path: Path) -> Path:
    """A copy of the demo ledger whose CA-QC jobs finished a month later (2026-04), at a site
    of PUE 1.5 (their grams charged on it)."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:
        db.execute("UPDATE outcomes SET started_at = replace(started_at, '-03-', '-04-'),"
                   " finished_at = replace(finished_at, '-03-', '-04-'), pue = 1.5,"
                   " operational_g = operational_g * 1.5,"
                   " total_g = operational_g * 1.5 + embodied_g WHERE zone = 'CA-QC'")  # fmt: skip
    db.close()
    return tmp_path


def test_the_statement_has_a_total_row_where_the_columns_add(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    """A year's statement had twelve monthly rows and no total: the auditor added them by hand.
    Each table by month ends in a ``total`` row: the sums where the columns add (jobs, kWh,
    kgCO2e), the energy-weighted means where they do not (the emission factor; the PUE, as
    facility over GPU energy), "-" where neither means anything."""
    state = _two_months(demo_state, tmp_path)
    text = carbond("report", "--state-dir", str(state), "--audit", "--since", "2026-03-01",
                   "--until", "2026-06-01")  # fmt: skip
    headings, rows = _table(text, "Emissions by month")
    assert [row[0] for row in rows] == ["2026-03", "2026-04", "2026-05", "total"]
    months, total = rows[:-1], rows[-1]
    for i in range(1, len(headings)):
        assert _number(total[i]) == pytest.approx(sum(_number(r[i]) for r in months), rel=1e-5)
    db = sqlite3.connect(state / "ledger.db")
    jobs, grams, gpu_j, grid_j, operational_g = db.execute(
        "SELECT count(*), sum(total_g), sum(energy_j), sum(energy_j * coalesce(pue, 1)),"
        " sum(operational_g) FROM outcomes"
    ).fetchone()
    db.close()
    assert total[1] == str(jobs) and _number(total[8]) == pytest.approx(grams / 1000, rel=1e-5)
    f_headings, factors = _table(text, "Emission factors and PUE")
    assert [row[:2] for row in factors][-1] == ["total", "all"]
    assert len({row[0] for row in factors[:-1]}) == 2  # two months, then the total
    last = dict(zip(f_headings, factors[-1], strict=True))
    weighted = operational_g / (grid_j / 3.6e6)
    assert _number(last["emission factor gCO2e/kWh (energy-weighted)"]) == pytest.approx(
        weighted, rel=1e-3
    )
    assert _number(last["grid kWh (facility energy from the grid)"]) == pytest.approx(
        grid_j / 3.6e6, rel=1e-5
    )
    assert _number(last["PUE"]) == pytest.approx(grid_j / gpu_j, rel=1e-3)
    methods = _table(text, "Energy measured and estimated")[1]
    assert methods[-1][0] == "total" and methods[-1][1] == str(jobs)
    assert _number(methods[-1][2]) == pytest.approx(gpu_j / 3.6e6, rel=1e-5)


@pytest.mark.parametrize(
    ("since", "months"),
    [("1970-01-01", ["2026-03", "2026-04", "2026-05"]),
     ("2026-01-15", ["2026-03", "2026-04", "2026-05"]),
     ("2026-03-02T05:00:00Z", ["2026-03", "2026-04", "2026-05"]),
     ("2026-04-01", ["2026-04", "2026-05"])],
)  # fmt: skip
def test_months_before_the_ledgers_first_record_are_not_listed_and_the_statement_says_so(
    demo_state: Path, carbond: Run, since: str, months: list[str]
) -> None:
    """``--since 1970-01-01`` listed more than 670 months of zeros from 1970, each read as a
    month with no emissions though the ledger knew nothing of them (no job, no sample).
    Months start at the later of ``--since``'s and that of the ledger's first record (its
    first job's submission or intensity sample: 2026-03-02 in the demo), and the statement says
    from when and why; months of the ledger with no job are still listed as 0."""
    text = carbond("report", "--state-dir", str(demo_state), "--audit", "--since", since,
                   "--until", "2026-06-01")  # fmt: skip
    rows = [row[0] for row in _table(text, "Emissions by month")[1]]
    assert rows == [*months, "total"]
    note = ("Months before 2026-03 are not listed: the ledger's first record (a job's "
            "submission or an intensity sample) is at 2026-03-02T00:00:00+00:00, and it knows "
            "nothing before.")  # fmt: skip
    assert (note in text) == (since < "2026-03")
