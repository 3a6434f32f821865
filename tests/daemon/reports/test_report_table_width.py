"""A piped or written report table shows every figure on one line; a terminal's table fits its
width."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from daemon.cli.context import open_ledger
from daemon.reports.lines import ledger_lines
from daemon.reports.render import fixed, render
from daemon.reports.summary import COLUMNS, Grouping, summarise
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
        assert total["total kgCO2e"] == fixed(totals["total_kg"])
        assert total["batt. kWh"] == fixed(totals["battery_kwh"])
        assert total["run-now kg"] == fixed(totals["run_now_kg"])


@pytest.mark.parametrize(("by", "width"), [("region", 80), ("job", 80), ("gpu", 100)])
def test_a_terminal_table_fits_its_width(
    demo_state: Path, tmp_path: Path, by: Grouping, width: int
) -> None:
    """At an 80-column terminal the report's 18 columns were folded a character or two wide,
    every figure read down over up to nine lines. The table keeps the columns that fit (the
    group and its carbon first), each row on one line, and says which it left out; CSV and
    JSON keep every column."""
    with open_ledger(Path(_with_site(demo_state, tmp_path))) as ledger:
        lines = ledger_lines(ledger)
    rows, totals = summarise(lines, by)
    text = render("table", rows, totals, {"title": f"carbond report by {by}"}, width=width,
                  tty=True)  # fmt: skip
    table = [line for line in text.splitlines() if line.startswith(("┃", "│"))]
    assert all(len(line) <= width for line in text.splitlines() if line[:1] in "┏┃│└"), text
    assert len(table) == len(rows) + 2, text  # the headings, each group, TOTAL: one line each
    headings = [c.strip() for c in table[0].strip("┃").split("┃")]
    total = dict(zip(headings, (c.strip() for c in table[-1].strip("│").split("│")), strict=True))
    assert total["group"] == "TOTAL" and total["total kgCO2e"] == fixed(totals.total_kg)
    left = text.split("left_out: ", 1)[1].split(" (at ", 1)[0].split(", ")
    assert left and not set(left) & set(headings)
    assert len(left) + len(headings) == len(COLUMNS)  # the on-site four too: every column
    csv_header = render("csv", rows, totals, {}).splitlines()[0]
    assert csv_header == ",".join(COLUMNS)
    assert set(json.loads(render("json", rows, totals, {}))["totals"]) == set(COLUMNS)


def test_a_terminal_wide_enough_shows_every_column(demo_state: Path) -> None:
    with open_ledger(demo_state) as ledger:
        rows, totals = summarise(ledger_lines(ledger), "region")
    text = render("table", rows, totals, {}, width=300, tty=True)
    assert "left_out" not in text and "g/1k tok" in text and "signal rung" in text
