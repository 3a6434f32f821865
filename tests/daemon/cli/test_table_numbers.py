"""Numbers in the tables: a whole number reads the same above 100 as below it."""

from __future__ import annotations

import pytest

from daemon.cli import main


def test_the_gpus_table_writes_whole_watts_alike(capsys: pytest.CaptureFixture[str]) -> None:
    """The T4's TDP read ``70`` and the V100's ``300.0`` in one column."""
    assert main(["gpus"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.split("|")[1:-1]]
                                          for line in lines)}  # fmt: skip
    tdp = rows["name"].index("tdp_w")
    assert (rows["T4"][tdp], rows["V100"][tdp]) == ("70", "300")
    bandwidth = rows["name"].index("memory_bandwidth_gb_s")
    assert rows["A100-40GB"][bandwidth] == "1,555"


@pytest.mark.parametrize(
    ("grams", "shown"),
    [(12_345_678.9, "12,345,678.90"), (1.5, "1.50"), (0.0976, "0.0976"), (4.13e-05, "0.0000413"),
     (-2.5e-05, "-0.000025"), (1e-9, "0.00")],
)  # fmt: skip
def test_the_jobs_totals_line_writes_grams_in_fixed_notation(grams: float, shown: str) -> None:
    """``carbond jobs``' totals line wrote a few tens of micrograms saved as ``4.13e-05``."""
    from daemon.cli.jobs_cmd import _grams_line

    totals = {"jobs": 2.0, "expected_total_g": grams, "measured_total_g": grams,
              "finished": 2.0, "ended_without_run": 0.0, "saved_g": grams}  # fmt: skip
    line = _grams_line(totals)
    assert f"expected {shown} g; measured {shown} g" in line and f"saved {shown} g" in line
