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
