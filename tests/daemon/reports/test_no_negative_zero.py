"""A saving that rounds to zero is shown as zero: `carbond jobs` printed "saved -0.00 g" and
`carbond report` "-0%" (and `carbond demo` could) for a loss of a thousandth of a gram."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from daemon.reports.render import unsigned_zero
from tests.daemon.reports.conftest import Run


def test_a_saving_that_rounds_to_zero_has_no_minus_sign(
    demo_state: Path, tmp_path: Path, carbond: Run
) -> None:
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:  # every job ran as run-now would have, one at a thousandth of a gram more
        db.execute("UPDATE outcomes SET run_now_total_g = total_g")
        db.execute(
            "UPDATE outcomes SET run_now_total_g = total_g - 0.001"
            " WHERE job_id = (SELECT min(job_id) FROM outcomes)"
        )
    db.close()
    state = str(tmp_path)
    jobs = carbond("jobs", "--state-dir", state)
    assert "saved -0.001 g against" in jobs  # a milligram lost, shown as it is (3 digits)
    assert "saved -0.00 g" not in jobs
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:  # a loss below a microgram is a sum's float noise: zero, unsigned
        db.execute("UPDATE outcomes SET run_now_total_g = total_g - 1e-12")
    db.close()
    assert "saved 0.00 g against" in carbond("jobs", "--state-dir", state)
    for by in ("region", "job"):
        for fmt in ("table", "md"):
            report = carbond("report", "--state-dir", state, "--by", by, "--format", fmt)
            assert "-0.0%" not in report
            assert " 0.0% |" in report or " 0.0% " in report


@pytest.mark.parametrize(
    ("text", "shown"),
    [("-0.00", "0.00"), ("-0%", "0%"), ("-0", "0"), ("-0.01", "-0.01"), ("-1%", "-1%"),
     ("-10", "-10"), ("0.00", "0.00"), ("-1,000.00", "-1,000.00"), ("-0.000e+00", "0.000e+00")],
)  # fmt: skip
def test_only_a_zero_loses_its_sign(text: str, shown: str) -> None:
    assert unsigned_zero(text) == shown
