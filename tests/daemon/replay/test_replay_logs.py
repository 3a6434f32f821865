"""What a replay leaves on stderr: its results are the report, not the daemon's per-job log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from tests.daemon.replay.conftest import START


@pytest.mark.parametrize("command", ["replay", "tune"])
def test_late_jobs_are_counted_in_the_results_not_logged_one_by_one(
    trace: Path, intensity_files: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], command: str,
) -> None:  # fmt: skip
    """One T4 for bursts of jobs with no slack, runs six times their estimate: jobs run on
    past their deadlines. The daemon's ``deadline_missed`` warning, one JSON line per late job
    and replay, filled stderr around the table (thousands of lines for a week of an overloaded
    cluster). The results count those jobs (``deadline_misses``); stderr keeps none of them."""
    cluster_file = tmp_path / "one-t4.toml"
    cluster_file.write_text('[[regions]]\nname = "qc"\nzone = "CA-QC"\ngpus = ["T4"]\n')
    argv = [command, "--jobs", str(trace), "--jobs-format", "azure", "--cluster",
            str(cluster_file), "--start", START.date().isoformat(), "--days", "0.5",
            "--slack", "0", "--model", "llama-1b", "--requests-per-job", "64", "--tick", "60",
            "--truth-factor", "6", "--policy", "run-now", "--workers", "1", "--json"]  # fmt: skip
    for path in intensity_files:
        argv += ["--intensity", str(path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert sum(r["deadline_misses"] for r in rows) > 0  # there were late jobs to log
    assert "deadline_missed" not in captured.err
    assert captured.err == ""
