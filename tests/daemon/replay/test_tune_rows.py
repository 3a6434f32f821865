"""``carbond tune``'s rows are ``carbond replay``'s (docs/policies.md says so): the same fields
in ``--json``, plus the front's, and the table's counts of jobs as replay's table has them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from tests.daemon.replay.replay_argv import input_options


def _table(out: str) -> tuple[list[str], list[list[str]]]:
    """A piped table's header and rows of cells (a piped table folds long headers)."""
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("|")]
    rule = next(i for i, cells in enumerate(rows) if cells[0].startswith("-"))
    header = ["".join(cells).replace(" ", "") for cells in zip(*rows[:rule], strict=True)]
    return header, [[cell.strip() for cell in cells] for cells in rows[rule + 1 :]]


def test_a_tune_row_has_the_fields_of_the_replay_row_of_the_same_setting(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """tune's rows lacked the ``spatial_saving`` and ``temporal_saving`` that replay's rows
    carry; they have them now, with replay's values."""
    inputs = [*input_options(trace, cluster_file, intensity_files), "--days", "0.1",
              "--slack", "4h", "--model", "llama-1b", "--requests-per-job", "64",
              "--tick", "300", "--workers", "1", "--json"]  # fmt: skip
    assert main(["replay", *inputs, "--policy", "run-now,carbon-window:min_saving=0.5"]) == 0
    replayed = json.loads(capsys.readouterr().out)[1]
    assert main(["tune", *inputs, "--policy", "carbon-window", "--grid", "min_saving=0.5"]) == 0
    [tuned] = json.loads(capsys.readouterr().out)
    assert set(tuned) - set(replayed) == {"pareto", "excluded"}
    assert set(replayed) - set(tuned) == set()
    for key in ("total_g", "savings_vs_run_now", "spatial_saving", "temporal_saving"):
        assert tuned[key] == replayed[key], key
    assert tuned["spatial_saving"] is not None


def test_the_tune_table_counts_the_unfinished_jobs_as_the_json_does(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["tune", *input_options(trace, cluster_file, intensity_files),
            "--days", str(45 / 1440), "--slack", "0", "--policy", "run-now",
            "--requests-per-job", "64", "--model", "llama-1b", "--tick", "300",
            "--forecaster", "seasonal-24h", "--workers", "1"]  # fmt: skip
    assert main([*argv, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["unfinished"] > 0
    assert main(argv) == 0
    header, [values] = _table(capsys.readouterr().out)
    assert values[header.index("unfinished")] == str(row["unfinished"])
    assert values[header.index("jobs_run")] == str(row["jobs"])
