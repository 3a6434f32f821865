"""The replay's ``jobs.csv`` and ``optimum.csv`` (``--out``) follow the rule of every CSV
carbond writes: a text cell a spreadsheet would run as a formula gets a leading ``'``. Job ids
come from the trace's file name (and a ledger's from its users), so ``=cmd|...`` reached
the files as it was (until 2026-12-07), to run when an operator opened them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from daemon.cli import main
from tests.daemon.replay.conftest import write_azure

EVIL = "=cmd|' -C calc'!A0"  # no / in a file name


def test_a_job_id_a_spreadsheet_would_run_is_written_as_text(
    tmp_path: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    rows = [(minute * 60.0 + i, 800, 150) for minute in (0, 20) for i in range(40)]
    trace = write_azure(tmp_path / f"AzureLLMInferenceTrace_{EVIL}.csv", rows)
    out = tmp_path / "out"
    argv = ["replay", "--jobs", str(trace), "--jobs-format", "azure", "--cluster",
            str(cluster_file), "--start", "2023-06-05", "--days", "0.1", "--slack", "2h",
            "--policy", "run-now", "--model", "llama-1b", "--requests-per-job", "64",
            "--tick", "300", "--forecaster", "seasonal-24h", "--workers", "1", "--optimum",
            "--json", "--out", str(out)]  # fmt: skip
    for path in intensity_files:
        argv += ["--intensity", str(path)]
    assert main(argv) == 0
    capsys.readouterr()

    for name in ("jobs.csv", "optimum.csv"):
        with (out / "slack_2h" / name).open(encoding="utf-8", newline="") as handle:
            written = list(csv.DictReader(handle))
        assert written, name
        ids = {row["job_id"] for row in written}
        assert all(i.startswith(f"'{EVIL}-") for i in ids), (name, ids)
        assert {row["region"] for row in written} <= {"quebec", "california"}  # unchanged
        assert all(float(row["total_g"]) > 0 for row in written)  # numbers stay numbers
