"""A piped or written report table shows every figure on one line."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from tests.daemon.reports.conftest import Run


def _with_site(demo_state: Path, tmp_path: Path) -> str:
    """A copy of the demo's ledger whose jobs drew a share of their energy on site (the
    report then has its 22 columns, the on-site four too)."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:
        db.execute(
            "UPDATE outcomes SET site_pv_j = energy_j * pue * 0.3,"
            " site_battery_j = energy_j * pue * 0.2, site_grid_j = energy_j * pue * 0.5"
        )
    db.close()
    return str(tmp_path)


def test_no_figure_is_folded_over_two_lines(demo_state: Path, tmp_path: Path, carbond: Run) -> None:
    """``carbond report | less`` and ``report -o report.txt`` laid the table out for 220
    columns, narrower than its 22 columns need: rich folded the cells, so a total of
    0.005108 kg read ``0.00510`` with an ``8`` on the line below and 4.744e-05 kg read
    ``4.744e-``. A pipe or a file has no edge: the table is as wide as its cells."""
    state = _with_site(demo_state, tmp_path)
    args = ("report", "--state-dir", state, "--by", "job")
    totals = json.loads(carbond(*args, "--json"))["totals"]
    piped = carbond(*args)
    carbond(*args, "-o", str(tmp_path / "report.txt"))
    for text in (piped, (tmp_path / "report.txt").read_text()):
        lines = [line for line in text.splitlines() if line.startswith("| ")]
        assert len(lines) == totals["jobs"] + 2, text  # the headings, each job, TOTAL
        headings = [c.strip() for c in lines[0].split("|")[1:-1]]
        total = dict(zip(headings, (c.strip() for c in lines[-1].split("|")[1:-1]), strict=True))
        assert total["total kgCO2e"] == f"{totals['total_kg']:.4g}"
        assert total["batt. kWh"] == f"{totals['battery_kwh']:.4g}"
        assert total["run-now kg"] == f"{totals['run_now_kg']:.4g}"
