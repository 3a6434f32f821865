"""How the report's table, Markdown and audit statement write a figure: fixed notation with
thousands separators (a year of GPU-hours read ``1.235e+04``); CSV and JSON keep the values
exact."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from daemon.reports.render import counted, fixed, render, share
from daemon.reports.summary import summarise
from tests.daemon.reports.conftest import Run

# A figure in exponent notation, as ``.4g`` writes one past 9,999 or below 0.0001.
_EXPONENT = re.compile(r"\d[eE][+-]\d")


def _scaled(demo_state: Path, tmp_path: Path) -> str:
    """A copy of the demo's ledger whose jobs ran 100,000 times as long and drew 10 million
    times the energy and grams: a big site's year."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:
        db.execute(
            "UPDATE outcomes SET duration_s = duration_s * 1e5,"
            " measured_energy_j = measured_energy_j * 1e7, operational_g = operational_g * 1e7,"
            " embodied_g = embodied_g * 1e7, total_g = total_g * 1e7,"
            " run_now_total_g = run_now_total_g * 1e7"
        )
    db.close()
    return str(tmp_path)


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [(12345.6, 4, "12,346"), (1234.5, 4, "1,234"), (123.456, 4, "123.5"), (1.5, 4, "1.5"),
     (0.000123456, 4, "0.0001235"), (4.744e-05, 4, "0.00004744"), (-98765.4, 4, "-98,765"),
     (9999.6, 4, "10,000"), (0.99996, 4, "1"), (1234567.891, 6, "1,234,568"),
     (1234.5678, 6, "1,234.57"), (0.0, 4, "0"), (float("nan"), 4, "-"),
     (-3.553e-15, 4, "0"), (9e-13, 4, "0"), (1.2345e-8, 4, "0.00000001235"),
     (6.4939e-10, 3, "0.000000000649"), (-2.5e-11, 4, "-0.000000000025")],
)  # fmt: skip
def test_fixed_writes_significant_digits_without_an_exponent(
    value: float, digits: int, text: str
) -> None:
    assert fixed(value, digits) == text


def test_table_and_markdown_write_large_figures_in_fixed_notation(
    demo_state: Path, tmp_path: Path, carbond: Run
) -> None:
    state = _scaled(demo_state, tmp_path)
    args = ("report", "--state-dir", state, "--by", "job")
    totals = json.loads(carbond(*args, "--json"))["totals"]
    assert totals["gpu_hours"] > 10_000 and totals["total_kg"] > 10_000  # .4g: 1.2e+04
    for fmt in ("table", "md"):
        text = carbond(*args, "--format", fmt)
        lines = [line for line in text.splitlines() if line.startswith("| ")]
        assert not _EXPONENT.search("\n".join(lines)), text
        headings = [c.strip() for c in lines[0].split("|")[1:-1]]
        total = dict(zip(headings, (c.strip() for c in lines[-1].split("|")[1:-1]), strict=True))
        assert total["GPU-h"] == fixed(totals["gpu_hours"]) and "," in total["GPU-h"]
        assert total["total kgCO2e"] == fixed(totals["total_kg"])
    rows = list(csv.DictReader(io.StringIO(carbond(*args, "--format", "csv"))))
    assert float(rows[-1]["total_kg"]) == totals["total_kg"]  # exact, as stored
    assert float(rows[-1]["gpu_hours"]) == totals["gpu_hours"]


def test_the_audit_statement_writes_large_figures_in_fixed_notation(
    demo_state: Path, tmp_path: Path, carbond: Run
) -> None:
    text = carbond("report", "--state-dir", _scaled(demo_state, tmp_path), "--audit")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert not _EXPONENT.search("\n".join(rows)), text
    db = sqlite3.connect(tmp_path / "ledger.db")
    total_g, month = db.execute(
        "SELECT sum(total_g), substr(min(finished_at), 1, 7) FROM outcomes"
    ).fetchone()
    db.close()
    row = next(line for line in rows if line.startswith(f"| {month} |"))
    assert row.split("|")[9].strip() == fixed(total_g / 1000, 6)


def test_the_emissions_plot_titles_its_total_in_fixed_notation(
    demo_state: Path, tmp_path: Path
) -> None:
    from daemon.ledger import Ledger
    from daemon.reports.lines import ledger_lines
    from daemon.reports.plots import report_figure

    _scaled(demo_state, tmp_path)
    with Ledger.open_readonly(tmp_path / "ledger.db") as ledger:
        lines = ledger_lines(ledger)
        figure = report_figure(ledger, lines)
    try:
        title = figure.axes[0].get_title()
        total_g = sum((line.operational_g or 0.0) + (line.embodied_g or 0.0) for line in lines)
        assert total_g > 10_000 and not _EXPONENT.search(title), title
        assert f": {fixed(total_g)} gCO2e" in title
    finally:
        import matplotlib.pyplot as plt  # after report_figure chose the Agg backend

        plt.close(figure)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0028, "0.3%"), (0.5, "50.0%"), (1.0, "100.0%"), (0.0, "0.0%"), (-0.0, "0.0%"),
     (0.99996, "99.996%"), (0.9996, "99.96%"), (0.00004, "0.004%"), (-0.00004, "-0.004%"),
     (-0.25, "-25.0%"), (-0.9996, "-99.96%"), (1 - 1e-16, "100.0%"), (-1e-14, "0.0%")],
)  # fmt: skip
def test_a_share_shows_one_decimal_and_more_where_one_would_hide_it(
    value: float, text: str
) -> None:
    assert share(value) == text


@pytest.mark.parametrize("fmt", ["table", "md"])
def test_shares_in_the_table_and_markdown_hide_no_estimated_energy_nor_saving(fmt: str) -> None:
    """``measured 100%`` hid the estimated energy of a job in thousands, and ``saved 0%``
    was a saving of 0.28 %."""
    _, totals = summarise([], "region")
    row = dataclasses.replace(
        totals, key="r1", measured_share=0.99996, saved_share=0.0028, offset_share=0.5
    )
    text = render(fmt, [row], dataclasses.replace(row, key="TOTAL"), {})
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    headings = [c.strip() for c in lines[0].split("|")[1:-1]]
    cells = dict(zip(headings, (c.strip() for c in lines[-1].split("|")[1:-1]), strict=True))
    assert (cells["measured"], cells["saved"]) == ("99.996%", "0.3%")


@pytest.mark.parametrize(
    ("n", "noun", "plural", "text"),
    [(1, "job", None, "1 job"), (0, "job", None, "0 jobs"), (2, "file", None, "2 files"),
     (12_345, "row", None, "12,345 rows"), (1, "finished job", None, "1 finished job"),
     (3, "job has", "jobs have", "3 jobs have"), (1, "job has", "jobs have", "1 job has")],
)  # fmt: skip
def test_a_count_names_its_noun_in_the_number_it_takes(
    n: int, noun: str, plural: str | None, text: str
) -> None:
    """``carbond prune-logs`` printed ``of 1 jobs``."""
    assert counted(n, noun, plural) == text
